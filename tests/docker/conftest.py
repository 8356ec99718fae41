"""Fixtures of the Docker tier."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def services(docker_ready, tmp_path_factory):
    """The local S3 store and MLflow server for the local-mode jobs and pipeline runs, started
    once. Ports of their own (not 8333 and 5000), so a store another run started is never shared.
    """
    from orchestration.infra.services import LocalServices

    with LocalServices(tmp_path_factory.mktemp("services"), s3_port=8373, mlflow_port=5073) as up:
        yield up
