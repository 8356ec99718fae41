"""Shared fixtures: real MovieLens-100K when ../shared has it, and small generated splits."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from preprocessing.manifest import write_split
from preprocessing.split import leave_one_out
from preprocessing.synthetic import generate

REPO = Path(__file__).resolve().parents[1]
ML100K = REPO.parent / "shared" / "data" / "ml-100k"


@pytest.fixture(scope="session")
def ml100k_dir() -> Path:
    if not (ML100K / "u.data").is_file():
        pytest.skip("real MovieLens-100K not found at ../shared/data/ml-100k")
    return ML100K


@pytest.fixture(scope="session")
def small_interactions():
    """300 users, 400 items, 20k interactions with planted taste clusters."""
    return generate(300, 400, 20_000, seed=7)


@pytest.fixture(scope="session")
def processed_dir(tmp_path_factory, small_interactions) -> Path:
    """A processed split on disk, as the processing stage writes it."""
    folder = tmp_path_factory.mktemp("processed")
    write_split(leave_one_out(small_interactions, seed=1), folder, extra={"params": {"seed": 1}})
    return folder


@pytest.fixture(scope="session")
def docker_ready() -> None:
    """Docker tests skip on a laptop without the engine or images; CI makes that a failure."""
    from orchestration.course import docker_problem

    problem = docker_problem()
    if problem is not None:
        _unavailable(f"SageMaker local mode cannot run here: {problem}")


@pytest.fixture(scope="session")
def service_images(docker_ready) -> None:
    """The compose services' images (built by ``make images`` like the stage images)."""
    from orchestration.checks import SERVICE_IMAGES

    for image in SERVICE_IMAGES:
        _require_image(image)


@pytest.fixture(scope="session")
def jupyterlab_image(docker_ready) -> None:
    """The optional compose JupyterLab image (``WITH_JUPYTERLAB=1 make images``; CI builds it)."""
    _require_image("ncf-jupyterlab:latest", "build it with WITH_JUPYTERLAB=1")


def _require_image(image: str, how: str = "") -> None:
    import docker
    from docker.errors import ImageNotFound

    try:
        docker.from_env().images.get(image)
    except ImageNotFound:
        _unavailable(f"the image {image} is not built" + (f": {how}" if how else ""))


def _unavailable(message: str) -> None:
    message += " (make images; offline machines: sudo make bootstrap)"
    if os.environ.get("NCF_REQUIRE_DOCKER"):
        pytest.fail(message)
    pytest.skip(message)
