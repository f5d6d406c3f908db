"""Benchmarks of the deployd server against a bare Flask baseline (`python bench/run.py`)."""
