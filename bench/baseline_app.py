"""The yardstick: bare Flask answering constant bytes, run under the same gunicorn settings.

It answers each endpoint deployd is measured on with the exact status, headers and body deployd
gave for that kind of request (recorded by bench/run.py into the file named by
BENCH_RESPONSES), and does nothing else: no license, no lookup, no rate limit. deployd's figures
are reported as a ratio to this app's, measured side by side.
"""

from __future__ import annotations

import json
import os

from flask import Flask, Response, request

with open(os.environ["BENCH_RESPONSES"], encoding="utf-8") as file:
    RECORDED = json.load(file)

SPEC, NOT_MODIFIED, VALIDATE = RECORDED["spec"], RECORDED["not_modified"], RECORDED["validate"]
SPEC_BODY = SPEC["body"].encode()
VALIDATE_BODY = VALIDATE["body"].encode()

app = Flask(__name__)


@app.route("/api/v1/operator/channel", methods=["GET", "POST"])
def spec() -> Response:
    if "If-None-Match" in request.headers:
        return Response(status=304, headers=NOT_MODIFIED["headers"])
    return Response(SPEC_BODY, headers=SPEC["headers"])


@app.post("/api/v1/licenses/validate")
def validate() -> Response:
    return Response(VALIDATE_BODY, headers=VALIDATE["headers"])


@app.get("/healthz")
def healthz() -> Response:
    return Response(b'{"status":"ok"}', content_type="application/json")
