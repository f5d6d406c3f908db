"""A small HTTP server for fault injection: it answers with whatever a test scripts.

Each request runs the next behaviour of the script (the last one repeats). Behaviours serve
bytes captured from the real server, or misbehave: errors, slowness, oversize bodies, hang-ups.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Behaviour = Callable[[BaseHTTPRequestHandler], None]


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    headers: dict[str, str]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        self.server.fault.handle(self)

    do_POST = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    fault: FaultServer


class FaultServer:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[SeenRequest] = []
        self._script: list[Behaviour] = [error(503, "not_scripted", "no behaviour set")]
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fault = self
        self.scheme = "http"
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{self.scheme}://{host}:{port}"

    def script(self, *behaviours: Behaviour) -> None:
        """Answer the next requests with `behaviours` in turn; the last one repeats."""
        with self._lock:
            self._script = list(behaviours)

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.requests.append(
                SeenRequest(
                    handler.command, handler.path, {k: v for k, v in handler.headers.items()}
                )
            )
            behaviour = self._script.pop(0) if len(self._script) > 1 else self._script[0]
        behaviour(handler)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def closed_port_url() -> str:
    """A URL on loopback where nothing listens: the server is down."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --- behaviours ---------------------------------------------------------------------------------


def _send(handler, status, body=b"", headers=None):
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def serve(body: bytes, signature: str | None, etag: str | None = None) -> Behaviour:
    """Answer like the server: 200 with the body and its signature, 304 on a matching ETag."""

    def behaviour(handler):
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers["Deployd-Signature"] = signature
        if etag is not None:
            headers["ETag"] = etag
            if handler.headers.get("If-None-Match") == etag:
                handler.send_response(304)
                for name, value in headers.items():
                    handler.send_header(name, value)
                handler.end_headers()
                return
        _send(handler, 200, body, headers)

    return behaviour


def error(status: int, code: str, message: str, retry_after: str | None = None) -> Behaviour:
    def behaviour(handler):
        headers = {"Content-Type": "application/json"}
        if retry_after is not None:
            headers["Retry-After"] = retry_after
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        _send(handler, status, body, headers)

    return behaviour


def slow(seconds: float, then: Behaviour) -> Behaviour:
    """Think for `seconds` before answering (longer than the client's read timeout)."""

    def behaviour(handler):
        time.sleep(seconds)
        try:
            then(handler)
        except OSError:
            pass  # the client gave up, as it should

    return behaviour


def oversize(size: int, *, declare_length: bool, pause: float = 0.01) -> Behaviour:
    """A 200 of `size` bytes, announced in Content-Length or streamed in chunks without one.

    Chunks of 64 KiB leave `pause` seconds apart, so reading the whole body takes long enough
    (size / 64 KiB * pause) that a test can tell a cut-off client from one that read to the end
    with a wide margin instead of a tight clock.
    """

    def behaviour(handler):
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Deployd-Signature", 'keyid="x", alg="ed25519", sig="AAAA"')
        if declare_length:
            handler.send_header("Content-Length", str(size))
        else:
            handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        chunk = b" " * 65_536
        sent = 0
        try:
            while sent < size:
                if declare_length:
                    handler.wfile.write(chunk)
                else:
                    handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
                time.sleep(pause)
            if not declare_length:
                handler.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the client stopped reading at its limit
        handler.close_connection = True

    return behaviour


def drip(body: bytes, *, interval: float) -> Behaviour:
    """Send a 200 one byte at a time: each read is quick, the whole answer is not."""

    def behaviour(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        try:
            for byte in body:
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
                time.sleep(interval)
        except OSError:
            pass
        handler.close_connection = True

    return behaviour


def hang_up(handler: BaseHTTPRequestHandler) -> None:
    """Close the connection without answering."""
    handler.close_connection = True


def answer_json(status: int, document: object) -> Behaviour:
    """Answer `status` with `document` as JSON."""

    def behaviour(handler):
        _send(handler, status, json.dumps(document).encode(), {"Content-Type": "application/json"})

    return behaviour


def by_path(routes: dict[str, Behaviour], default: Behaviour) -> Behaviour:
    """Answer a request whose path starts with a key of `routes` with its behaviour."""

    def behaviour(handler):
        for prefix, route in routes.items():
            if handler.path.startswith(prefix):
                return route(handler)
        return default(handler)

    return behaviour


def clock_off(seconds: float, then: Behaviour) -> Behaviour:
    """Answer like `then`, with a Date header `seconds` off the real time (a wrong clock)."""

    def behaviour(handler):
        handler.date_time_string = lambda timestamp=None: formatdate(
            time.time() + seconds, usegmt=True
        )
        then(handler)

    return behaviour
