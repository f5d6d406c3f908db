"""What counting metrics adds to one poll, measured in one process: the WSGI app with metrics on and
the same app with them off, called directly (no server) in alternation.

Between two servers the difference is too small to see: identical deployds differ by more than
3% from run to run (bench/suite.py, `run_metrics`). Here both apps answer the same polls in the
same process, round after round, and the per-round differences are compared, so the machine's
other work and its drift cancel. With --gevent the process is patched as a gunicorn worker is.
Prints JSON: the extra microseconds per poll, 200 and 304.

    python -m bench.metrics_cost [--gevent]
"""

from __future__ import annotations

import sys

# --gevent: as in a gunicorn worker of gunicorn.conf.py, whose locks are gevent's (granian's
# workers run the app in native threads).
if "--gevent" in sys.argv[1:]:
    from gevent import monkey  # type: ignore[import-untyped]  # gevent ships no type hints

    monkey.patch_all()

import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

# prometheus-client decides at import whether values go to files (as under gunicorn): set the
# directory before anything imports it.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="deployd-metrics-"))

from werkzeug.test import EnvironBuilder  # noqa: E402

from bench.profile_poll import build, per_call  # noqa: E402
from bench.world import basic_auth, make_keys, sign_licenses  # noqa: E402
from deployd.protocol import SPEC_PATH  # noqa: E402

ROUNDS = 41
CALLS_PER_ROUND = 1000


def _environ(license: str, etag: str | None = None) -> dict[str, Any]:
    headers = [("Authorization", basic_auth(license))]
    if etag is not None:
        headers.append(("If-None-Match", etag))
    return EnvironBuilder(path=SPEC_PATH, headers=headers).get_environ()


def _polls(app: Any, license: str) -> dict[str, Callable[[], object]]:
    """A 200 and a 304 poll of `app`, each checked once."""
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        answer["status"], answer["headers"] = status, dict(headers)

    def poll(environ: dict[str, Any], expected: str) -> Callable[[], object]:
        b"".join(app(dict(environ), start_response))
        if not answer["status"].startswith(expected):
            raise RuntimeError(f"poll answered {answer['status']}, not {expected}")
        return lambda: b"".join(app(dict(environ), start_response))

    spec = poll(_environ(license), "200")
    poll(_environ(license), "200")  # the second poll of a license takes the fast path
    etag = answer["headers"]["ETag"]
    return {"spec 200": spec, "spec 304": poll(_environ(license, etag), "304")}


def extra_microseconds() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        keys = make_keys(root / "keys")
        polls = {}
        for mode in ("off", "open"):
            app, names = build(root / mode, keys, 3, 10, metrics=mode)
            license = sign_licenses(keys, names[:1], 1)[0]
            polls[mode] = _polls(app, license)
        differences: dict[str, list[float]] = {name: [] for name in polls["off"]}
        for _ in range(ROUNDS):
            for name in differences:
                off = per_call([polls["off"][name]] * CALLS_PER_ROUND)
                on = per_call([polls["open"][name]] * CALLS_PER_ROUND)
                differences[name].append(on - off)
        return {name: statistics.median(values) for name, values in differences.items()}


if __name__ == "__main__":
    print(json.dumps(extra_microseconds()))
