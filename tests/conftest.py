"""Shared fixtures: real MovieLens-100K when ../shared has it, and small generated splits.

The tests come in tiers, one folder each; the folder gives every test its marker, so
``pytest -m unit`` (or integration, docker, gpu) selects a tier wherever the tests are named:

  unit/         no subprocess, server, Docker or network; the whole tier in under a minute
  integration/  subprocesses, real servers (local S3, MLflow, uvicorn), whole stages, slow training
  docker/       a Docker engine and the course's images (skipped without, unless NCF_REQUIRE_DOCKER)
  gpu/          a CUDA device (skipped without)

A fixture lives in the conftest.py of the narrowest folder that holds all its users.
"""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from preprocessing.manifest import write_split
from preprocessing.split import leave_one_out
from preprocessing.synthetic import generate
from tests.helpers import CPU, REPO

TESTS = Path(__file__).resolve().parent
ML100K = REPO.parent / "shared" / "data" / "ml-100k"
TIERS = ("unit", "integration", "docker", "gpu")
UNIT_TIMEOUT = 60  # seconds a unit test may take; pyproject's `timeout` covers the rest


def _tier(path: Path) -> str | None:
    try:
        folder = path.relative_to(TESTS).parts[0]
    except ValueError:  # the notebooks
        return None
    return folder if folder in TIERS else None


def pytest_report_collectionfinish(items: list[pytest.Item]) -> str | None:
    """Where Docker cannot run local mode and a collected test needs it, say so once (the
    unit tier alone never asks the engine)."""
    needs_docker = any(
        _tier(item.path) == "docker" or (item.path.suffix == ".ipynb" and _needs_docker(item.path))
        for item in items
    )
    if not needs_docker or (problem := _docker_problem()) is None:
        return None
    return f"Docker: {problem}; the Docker tier and the lessons that need Docker are skipped"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The folder gives the tier's marker; unit tests get a tight timeout; GPU tests skip,
    saying why, where PyTorch sees no CUDA device; so do the lessons that run SageMaker jobs
    where Docker cannot (CI, with NCF_REQUIRE_DOCKER, fails them instead)."""
    timeouts = config.pluginmanager.hasplugin("timeout")
    gpu_problem = None
    for item in items:
        lesson = item.path.suffix == ".ipynb"
        if lesson and _needs_docker(item.path) and (problem := _docker_problem()):
            item.add_marker(pytest.mark.skip(reason=f"needs Docker: {problem}"))
        tier = _tier(item.path)
        if tier is not None:
            item.add_marker(tier)
        if tier == "unit" and timeouts:
            item.add_marker(pytest.mark.timeout(UNIT_TIMEOUT))
        if tier == "gpu" or item.get_closest_marker("gpu"):
            gpu_problem = gpu_problem or _gpu_problem()
            if gpu_problem:
                item.add_marker(pytest.mark.skip(reason=gpu_problem))


@functools.cache
def _docker_problem() -> str | None:
    """Why local mode cannot run here, None where it can or where CI requires it (a missing
    engine or image must then fail the tests that need it, never skip them)."""
    if os.environ.get("NCF_REQUIRE_DOCKER"):
        return None
    from orchestration.probes import local_mode_problem

    return local_mode_problem()


@functools.cache
def _needs_docker(lesson: Path) -> bool:
    """A lesson that drives Docker or SageMaker's local mode."""
    text = lesson.read_text()
    return "import docker" in text or "orchestration.sagemaker_local" in text


def _gpu_problem() -> str:
    """Why the GPU tests cannot run here, or "" where they can."""
    import torch

    if torch.cuda.is_available():
        return ""
    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU-only build"
    return f"needs a CUDA device: PyTorch ({build}) sees none"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def free_port() -> Callable[[], int]:
    """Call it for a TCP port on 127.0.0.1 that nothing listens on (the OS picks one)."""
    return _free_port


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


# --- training: unit/ and integration/test_training.py, test_training_cli.py ----------------------


@pytest.fixture(scope="module")
def data(processed_dir):
    """The processed split loaded for training on the CPU."""
    from training.data import TrainingData

    return TrainingData.load(processed_dir, CPU)


@pytest.fixture
def sm_env(monkeypatch, processed_dir, tmp_path):
    """``python -m training``'s SageMaker environment: the split as its train channel."""
    monkeypatch.setenv("SM_CHANNEL_TRAIN", str(processed_dir))
    monkeypatch.setenv("SM_MODEL_DIR", str(tmp_path / "model"))
    monkeypatch.setenv("SM_OUTPUT_DATA_DIR", str(tmp_path / "output-data"))
    monkeypatch.setenv("SM_INPUT_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


@pytest.fixture
def failure_file(sm_env, monkeypatch):
    """Where SageMaker reads a failed job's reason."""
    output = sm_env / "sm-output"
    output.mkdir()
    monkeypatch.setenv("SM_OUTPUT_DIR", str(output))
    return output / "failure"


# --- a small trained model: unit/ and integration/test_inference.py ----------------------------

TINY = {"epochs": 1, "batch_size": 512, "num_factors": 8, "layers": (16, 8), "patience": 1}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, processed_dir):
    from training.config import TrainConfig
    from training.job import run_training

    folder = tmp_path_factory.mktemp("model")
    config = TrainConfig(model="gmf", learning_rate=0.01, gpu="false", **TINY)
    run_training(config, processed_dir, folder, progress=False)
    return folder


@pytest.fixture(scope="module")
def split(processed_dir):
    from preprocessing.manifest import read_split

    return read_split(processed_dir)


@pytest.fixture(scope="module")
def recommender(model_dir):
    from inference.recommender import Recommender

    return Recommender.from_folder(model_dir, "cpu")


# --- the local S3 store and MLflow server as host processes: integration/ and docker/ ----------


@pytest.fixture(scope="module")
def s3(tmp_path_factory, free_port):
    from orchestration.infra.services import LocalS3

    with LocalS3(tmp_path_factory.mktemp("s3"), bucket="test-bucket", port=free_port()) as store:
        yield store


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory, s3, free_port):
    from orchestration.infra.services import MlflowServer

    with MlflowServer(tmp_path_factory.mktemp("mlflow"), s3, port=free_port()) as server:
        yield server


# --- Docker -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def docker_ready() -> None:
    """Docker tests skip on a laptop without the engine or images; CI makes that a failure."""
    from orchestration.probes import local_mode_problem

    problem = local_mode_problem()
    if problem is not None:
        _unavailable(f"SageMaker local mode cannot run here: {problem}")


@pytest.fixture(scope="session")
def service_images(docker_ready) -> None:
    """The compose services' images (built by ``make images`` like the stage images)."""
    from orchestration.names import SERVICE_IMAGES

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
