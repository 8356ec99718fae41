"""Environment checks against the real Docker engine."""

from __future__ import annotations

import pytest
from docker.errors import DockerException

from orchestration.infra import checks


def test_docker_check_passes_where_an_engine_answers():
    import docker

    try:
        docker.from_env(timeout=10).ping()
    except DockerException as exc:
        pytest.skip(f"no Docker engine answers here ({exc})")
    check = checks.docker_engine()
    assert check.ok, check.detail
    assert check.detail.startswith("Docker ")
