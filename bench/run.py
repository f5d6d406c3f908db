"""Benchmark deployd against the floor and the ceiling on loopback: `python bench/run.py [--quick]
[--server gunicorn|granian|both]`.

Starts redis-server, nginx serving the spec bytes as a static file, and, under each server in turn
(gunicorn with the checked-in gunicorn.conf.py, granian through deployd/server/granian.py), deployd
and two baselines answering the same bytes under the same settings (a bare WSGI callable and bare
Flask); drives them with wrk, checks deployd's figures against its targets and prints every
server's figures side by side. Exits 1 when a target is missed; the last line is a summary.
"""

import sys
from pathlib import Path


def main() -> int:
    # Run as a script from anywhere: the repository root holds the `bench` and `tests` packages.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.suite import main as run_suite

    return run_suite(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
