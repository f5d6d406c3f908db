"""Benchmark deployd against bare Flask on loopback: `python bench/run.py [--quick]`.

Starts redis-server, deployd under gunicorn (the checked-in gunicorn.conf.py) and a bare Flask app
answering the same bytes under the same settings, drives both with wrk, and checks deployd's
figures against its targets. Exits 1 when a target is missed; the last line is a summary.
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
