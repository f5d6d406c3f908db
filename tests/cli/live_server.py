"""The real app (create_app on a memory store) served over HTTP on loopback, for CLI tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from flask import Flask
from werkzeug.serving import make_server

from deployd.store.memory import MemoryStore


@dataclass
class LiveServer:
    url: str
    store: MemoryStore
    app: Flask


@contextmanager
def serve(app: Flask, store: MemoryStore) -> Iterator[LiveServer]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield LiveServer(f"http://127.0.0.1:{server.server_port}", store, app)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
