"""One server process: its settings, services, view of the store, background refresh, rate
limits, shutdown drain and the Flask app that puts them together."""
