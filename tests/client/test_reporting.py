"""The agent reports each reconcile's outcome: in the background, retried, dropped when the server
stays away, never blocking a poll or a reconcile, never sending a secret."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from deployd.client.poller import Poller, SyncAction
from deployd.client.reporting import ReportSender
from deployd.protocol import INSTANCE_ID_HEADER
from deployd.rollouts.records import OutcomeCounts
from tests.support.polling import Recorder, eventually


def sender(server: str, license: str, **kw) -> ReportSender:
    kw.setdefault("backoff_base", 0.01)
    kw.setdefault("backoff_ceiling", 0.05)
    return ReportSender(
        server=server, license=license, instance_id="cluster-1", user_agent="test", **kw
    )


def test_applied_and_failed_reconciles_are_counted_by_the_server(live, live_config) -> None:
    config = live_config()
    reporter = sender(live.url, live.license)
    with Poller(config, reporter=reporter) as poller:
        assert poller.sync_once(Recorder(failures=1)).action is SyncAction.FAILED
        eventually(
            lambda: live.store.outcome_counts("stable") == {"1.2.0": OutcomeCounts(failed=1)}
        )
        assert poller.sync_once(Recorder()).action is SyncAction.APPLIED
        eventually(
            lambda: live.store.outcome_counts("stable") == {"1.2.0": OutcomeCounts(applied=1)}
        )
    assert (reporter.sent, reporter.dropped) == (2, 0)


class _Capture(BaseHTTPRequestHandler):
    statuses: list[int] = []
    bodies: list[dict] = []
    headers_seen: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        length = int(self.headers["Content-Length"])
        type(self).bodies.append(json.loads(self.rfile.read(length)))
        type(self).headers_seen.append(dict(self.headers))
        status = type(self).statuses.pop(0) if type(self).statuses else 202
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def capture():
    handler = type("Handler", (_Capture,), {"statuses": [], "bodies": [], "headers_seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield handler, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_a_busy_server_is_retried_and_the_message_is_redacted(capture) -> None:
    handler, url = capture
    handler.statuses = [503, 429]
    license = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhY21lIn0.c2lnbmF0dXJlc2lnbmF0dXJl"
    reporter = sender(url, license)
    message = f"helm failed with --password hunter2 and license {license}\n" + "x" * 1000
    assert reporter.submit("1.2.0", "failed", message)
    eventually(lambda: reporter.sent == 1)
    reporter.close()
    assert len(handler.bodies) == 3  # two refusals, then taken
    body = handler.bodies[-1]
    assert (body["instance"], body["release"], body["outcome"]) == ("cluster-1", "1.2.0", "failed")
    assert license not in json.dumps(body) and "hunter2" not in body["message"]
    assert len(body["message"]) == 500
    assert handler.headers_seen[-1][INSTANCE_ID_HEADER] == "cluster-1"


def test_a_refused_report_is_dropped_at_once(capture) -> None:
    handler, url = capture
    handler.statuses = [400]
    reporter = sender(url, "lic")
    reporter.submit("9.9.9", "applied")
    eventually(lambda: reporter.dropped == 1)
    reporter.close()
    assert len(handler.bodies) == 1


def test_an_unreachable_server_blocks_nothing_and_reports_are_dropped(
    live, live_config, tmp_path
) -> None:
    # A listening socket nobody answers: a report to it hangs until its timeout.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    url = f"http://127.0.0.1:{silent.getsockname()[1]}"
    reporter = sender(url, live.license, timeout=60.0, max_queued=2)
    try:
        with Poller(live_config(), reporter=reporter) as poller:
            for _ in range(4):
                assert poller.sync_once(Recorder(), force=True).action is SyncAction.APPLIED
            # Four reconciles done while the first report still hangs: one in flight, two
            # queued, one dropped for want of room.
            assert reporter.sent == 0
            assert reporter.dropped == 1
            reporter.close(drain=0)
            assert reporter.dropped == 3  # the queued ones too; the one in flight when it ends
    finally:
        silent.close()
