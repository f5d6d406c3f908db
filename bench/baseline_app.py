"""The yardsticks: apps answering constant bytes, run under the same server settings as deployd.

Each answers every endpoint deployd is measured on with the exact status, headers and body deployd
gave for that kind of request (recorded by bench/run.py into the file named by BENCH_RESPONSES),
and does nothing else: no license, no lookup, no rate limit. deployd's figures are reported as a
ratio to theirs, measured side by side.

- `bare`: a plain WSGI callable, the floor of the stack (server + WSGI): the main baseline;
- `app`: bare Flask, the second reference (what a Flask view costs on top of the floor).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, Response, request

from deployd.protocol import SPEC_PATH, VALIDATE_PATH

with open(os.environ["BENCH_RESPONSES"], encoding="utf-8") as file:
    RECORDED = json.load(file)

SPEC, NOT_MODIFIED, VALIDATE = RECORDED["spec"], RECORDED["not_modified"], RECORDED["validate"]
SPEC_BODY = SPEC["body"].encode()
VALIDATE_BODY = VALIDATE["body"].encode()
HEALTHZ_BODY = b'{"status":"ok"}'


def _answer(
    status: str, headers: list[list[str]], body: bytes
) -> tuple[str, list[tuple[str, str]], list[bytes]]:
    """A WSGI answer prepared once: the recorded headers with the body's length."""
    pairs = [(name, value) for name, value in headers]
    return status, [*pairs, ("Content-Length", str(len(body)))], [body]


SPEC_ANSWER = _answer("200 OK", SPEC["headers"], SPEC_BODY)
NOT_MODIFIED_ANSWER = _answer("304 Not Modified", NOT_MODIFIED["headers"], b"")
VALIDATE_ANSWER = _answer("200 OK", VALIDATE["headers"], VALIDATE_BODY)
HEALTHZ_ANSWER = _answer("200 OK", [["Content-Type", "application/json"]], HEALTHZ_BODY)
NOT_FOUND_ANSWER = _answer("404 Not Found", [["Content-Type", "application/json"]], b"{}")


def bare(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The bare WSGI baseline: a path lookup and the recorded bytes."""
    path = environ.get("PATH_INFO", "")
    if path == SPEC_PATH:
        answer = NOT_MODIFIED_ANSWER if "HTTP_IF_NONE_MATCH" in environ else SPEC_ANSWER
    elif path == VALIDATE_PATH:
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        answer = VALIDATE_ANSWER
    elif path == "/healthz":
        answer = HEALTHZ_ANSWER
    else:
        answer = NOT_FOUND_ANSWER
    status, headers, body = answer
    start_response(status, headers)
    return body


app = Flask(__name__)


@app.route(SPEC_PATH, methods=["GET", "POST"])
def spec() -> Response:
    if "If-None-Match" in request.headers:
        return Response(status=304, headers=NOT_MODIFIED["headers"])
    return Response(SPEC_BODY, headers=SPEC["headers"])


@app.post(VALIDATE_PATH)
def validate() -> Response:
    return Response(VALIDATE_BODY, headers=VALIDATE["headers"])


@app.get("/healthz")
def healthz() -> Response:
    return Response(HEALTHZ_BODY, content_type="application/json")
