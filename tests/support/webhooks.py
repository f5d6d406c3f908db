"""A webhook receiver on 127.0.0.1 for tests, and the check a receiver makes of a delivery.

`WebhookReceiver` answers POSTs to a path with the statuses scripted for it (then 200), keeps
every request it got, and `verify_delivery` checks one the way docs/operating.md tells a
receiver to: the Deployd-Signature over the exact body, with the key of that id in the
server's JWKS.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from deployd.specs.signing import verify_signature

PATIENCE = 60.0  # seconds to wait for what must happen, however busy the machine


@dataclass(frozen=True)
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered

    @property
    def event(self) -> dict[str, Any]:
        event: dict[str, Any] = json.loads(self.body)["event"]
        return event


class WebhookReceiver:
    def __init__(self, statuses: Mapping[str, Iterable[int]] | None = None) -> None:
        self._scripts = {path: list(codes) for path, codes in (statuses or {}).items()}
        self._lock = threading.Lock()
        self.deliveries: list[Delivery] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = receiver._next_status(self.path)
                with receiver._lock:
                    receiver.deliveries.append(
                        Delivery(self.path, dict(self.headers.items()), body, status)
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_port}{path}"

    def _next_status(self, path: str) -> int:
        with self._lock:
            script = self._scripts.get(path)
            if script is None:
                return 200
            return script.pop(0) if len(script) > 1 else script[0]

    def received(self, path: str) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if d.path == path]

    def wait_for(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + PATIENCE
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {self.deliveries}"
            time.sleep(0.02)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def verify_delivery(delivery: Delivery, jwks: Mapping[str, Any]) -> str:
    """Check the delivery's signature with the JWKS's spec keys; return the key id (or raise
    deployd.specs.signing.SignatureError)."""
    keys = {
        jwk["kid"]: Ed25519PublicKey.from_public_bytes(_b64url(jwk["x"]))
        for jwk in jwks["keys"]
        if jwk.get("deployd_role") == "spec" and jwk.get("crv") == "Ed25519"
    }
    return verify_signature(delivery.headers.get("Deployd-Signature"), delivery.body, keys)


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
