"""Environment checks against services that do not answer (real connection attempts)."""

from __future__ import annotations

from types import SimpleNamespace

from orchestration.infra import checks


def test_services_that_do_not_answer_fail_with_how_to_start_them():
    services = SimpleNamespace(
        s3=SimpleNamespace(endpoint_url="http://127.0.0.1:9", bucket="course"),
        mlflow=SimpleNamespace(tracking_uri="http://127.0.0.1:9"),
    )
    s3, mlflow = checks.service_checks(services)
    assert not s3.ok and not mlflow.ok
    assert "nothing answers at http://127.0.0.1:9" in s3.detail
    assert "nothing answers at http://127.0.0.1:9" in mlflow.detail
    assert "python -m orchestration.infra.services up" in s3.fix
