"""JSON-lines logging for the server process (the library itself never installs handlers)."""

from __future__ import annotations

import json
import logging
import re
import secrets
import time

from flask import g, has_request_context

# A client's X-Request-Id is echoed and logged only when it is this plain.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def request_id(given: str | None) -> str:
    """The id a request is logged and answered under: the client's X-Request-Id when it is
    safe to echo, else a new random one."""
    return given if given and _REQUEST_ID.fullmatch(given) else secrets.token_hex(16)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the process id (several workers share one log) and the
    request id when logged inside a request."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,  # which gunicorn worker
            "message": record.getMessage(),
        }
        if has_request_context() and "request_id" in g:
            entry["request_id"] = g.request_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "INFO") -> None:
    """Send every log record of the process to stderr as JSON lines."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
