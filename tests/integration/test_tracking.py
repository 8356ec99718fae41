"""MLflow tracking never stops training when the server is away or failing (real sockets)."""

import http.server
import logging
import threading

import pytest

from training.tracking import Tracker


def test_unreachable_server_warns_once_and_goes_on(caplog, free_port):
    tracker = Tracker(f"http://127.0.0.1:{free_port()}", "exp")
    with caplog.at_level(logging.WARNING):
        tracker.start({"a": 1})
        tracker.log_metrics({"loss": 1.0}, step=1)
        tracker.end()
    assert not tracker.enabled
    warnings = [r for r in caplog.records if "unavailable" in r.message]
    assert len(warnings) == 1
    assert "training continues without tracking" in warnings[0].message


class HealthyButBroken(http.server.BaseHTTPRequestHandler):
    """Answers /health, fails every API call: a server that dies after the run starts."""

    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 500)
        self.end_headers()
        self.wfile.write(b"OK")

    do_POST = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture
def broken_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HealthyButBroken)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_failing_calls_disable_tracking_once(broken_server, caplog):
    tracker = Tracker(broken_server, "exp")
    with caplog.at_level(logging.WARNING):
        tracker.start({"a": 1})
        tracker.log_metrics({"loss": 1.0}, step=1)
        tracker.end()
    assert not tracker.enabled
    assert len([r for r in caplog.records if "unavailable" in r.message]) == 1
