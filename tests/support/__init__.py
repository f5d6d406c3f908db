"""Helpers shared by the test suites: worlds, live servers, key rings, licenses, stores."""
