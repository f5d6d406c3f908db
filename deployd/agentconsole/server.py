"""Serving the system console from the agent process: werkzeug's threaded WSGI server in a
daemon thread.

Why werkzeug's: it comes with Flask (no new dependency), serves each request in its own thread
(a slow page never holds up another, and never the agent's loop), takes a TLS certificate, and
stops cleanly with `shutdown()`. One administrator at a time needs no more; gunicorn would need
a process of its own, outside the agent that holds the state the console shows.

Binding: loopback by default. Any other address needs TLS (`cert` and `key`) or an explicit
`allow_plain_http`, so a password and a session cookie never cross a network in the clear by
accident.
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from deployd.errors import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_CONSOLE_HOST = "127.0.0.1"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True)
class ConsoleAddress:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> ConsoleAddress:
        """``HOST:PORT``, ``[IPv6]:PORT`` or ``PORT`` (loopback)."""
        host, sep, port = text.rpartition(":")
        if not sep:
            host, port = DEFAULT_CONSOLE_HOST, text
        host = host.strip("[]") or DEFAULT_CONSOLE_HOST
        if not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ConfigError(f"--console {text!r}: give HOST:PORT, e.g. 127.0.0.1:8700")
        return cls(host, int(port))

    @property
    def allowed_hosts(self) -> frozenset[str] | None:
        """The Host names to answer to: loopback names for a loopback console, else any."""
        return LOOPBACK_NAMES | {self.host} if self.is_loopback else None

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def check_bind(address: ConsoleAddress, *, tls: bool, allow_plain_http: bool) -> None:
    """Refuse a console reachable from the network without TLS, unless explicitly allowed."""
    if address.is_loopback or tls:
        return
    if not allow_plain_http:
        raise ConfigError(
            f"refusing to serve the system console on {address.host}, which is not loopback,"
            " without TLS: the password and the session would cross the network in the clear."
            " Give --console-cert and --console-key, bind to 127.0.0.1 (and reach it through"
            " kubectl port-forward or an SSH tunnel), or pass --console-allow-plain-http if a"
            " TLS proxy in front of it is all that can reach it"
        )
    logger.warning(
        "serving the system console over plain http on %s (--console-allow-plain-http)",
        address.host,
    )


class ConsoleServer:
    """The console's WSGI server, started in a daemon thread."""

    def __init__(
        self,
        app: Flask,
        address: ConsoleAddress,
        *,
        cert: Path | None = None,
        key: Path | None = None,
    ) -> None:
        context = None
        if cert is not None or key is not None:
            if cert is None or key is None:
                raise ConfigError("give both --console-cert and --console-key, or neither")
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            try:
                context.load_cert_chain(cert, key)
            except (OSError, ssl.SSLError) as e:
                raise ConfigError(f"cannot load the console's TLS certificate: {e}") from e
        self.scheme = "https" if context else "http"
        try:
            self._server: BaseWSGIServer = make_server(
                address.host, address.port, app, threaded=True, ssl_context=context
            )
        except OSError as e:
            raise ConfigError(
                f"cannot serve the system console on {address.host}:{address.port}: {e.strerror}"
            ) from e
        self.port = self._server.server_port
        self.host = address.host
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="deployd-console", daemon=True
        )

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}/"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
