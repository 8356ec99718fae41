"""The SageMaker facade against small real servers on 127.0.0.1: the endpoint's readiness wait
and port check, and the compose probe without a docker CLI."""

from __future__ import annotations

import http.server
import json
import socket
import threading

import pytest

from orchestration.infra.services import LocalS3
from orchestration.sagemaker_local import endpoints
from orchestration.sagemaker_local.endpoints import deploy, wait_until_ready
from orchestration.sagemaker_local.session import LocalModeError, local_session


def test_readiness_wait_names_the_url_and_last_answer():
    with pytest.raises(LocalModeError, match=r"127\.0\.0\.1:9/ping: ConnectionError"):
        wait_until_ready("http://127.0.0.1:9/ping", timeout=0.5)


def test_deploy_refuses_a_port_something_else_answers_on(tmp_path, monkeypatch):
    """Its answers would pass for the endpoint's; the SDK itself does not check."""
    with socket.create_server(("127.0.0.1", 0)) as squatter:
        monkeypatch.setattr(endpoints, "SERVING_PORT", squatter.getsockname()[1])
        session = local_session(LocalS3(tmp_path, port=1), tmp_path)
        with pytest.raises(LocalModeError, match=r"is taken, .* stop what listens"):
            deploy(session, "s3://ncf-course/model.tar.gz")


class _Answers(http.server.BaseHTTPRequestHandler):
    """/ping as the inference server answers it when its model could not be loaded."""

    def do_GET(self) -> None:
        body = json.dumps({"error": "model not loaded: model.pt is empty"}).encode()
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_readiness_wait_ends_at_once_with_the_reason_a_model_cannot_be_served():
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answers) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/ping"
        try:
            with pytest.raises(LocalModeError, match=r"serve .* model\.pt is empty"):
                wait_until_ready(url, timeout=60)
        finally:
            server.shutdown()


def test_compose_check_survives_a_missing_docker_cli(monkeypatch):
    from orchestration.probes import compose_version

    monkeypatch.setenv("PATH", "/nonexistent")
    assert compose_version() is None
