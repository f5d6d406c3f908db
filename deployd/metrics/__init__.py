"""Prometheus metrics (issue 14): every metric is defined in `registry`; `requests` counts HTTP
requests before Flask and the fast path; `hooks` are the one-line calls the rest of deployd makes;
`rounds` sets the gauges from each worker's background refresher; `exposition` serves
`GET /metrics` (one view over every gunicorn worker: `multiproc`); `access` decides who may read
it. docs/operating.md, "Metrics", lists what is measured.
"""
