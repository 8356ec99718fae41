"""The training image run by hand with ``docker run``: a SageMaker training job minus SageMaker.

SageMaker's side of the bring-your-own-container contract is small: write three JSON files under
``/opt/ml/input/config``, mount each channel at ``/opt/ml/input/data/<channel>``, give the
container ``/opt/ml/model`` and ``/opt/ml/output``, run ``train``, then tar ``/opt/ml/model``
into ``model.tar.gz``. Doing that here shows what local mode automates, and makes a broken image
quick to debug without the SDK in the way.

Folders are mounted one by one, never ``/opt/ml`` as a whole: the image keeps its code in
``/opt/ml/code``, which a whole-tree mount would hide.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
from docker.types import DeviceRequest

from orchestration.names import IMAGES
from training.hyperparameters import hyperparameter_strings
from training.sagemaker_contract import CHECKPOINT_CHANNEL

OPT_ML = "/opt/ml"
HOST = "algo-1"  # what local mode calls the first instance


@dataclass(frozen=True)
class OptMlTree:
    """A host folder laid out like the container's ``/opt/ml``."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "input" / "config"

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def output(self) -> Path:
        return self.root / "output"


@dataclass(frozen=True)
class ContainerRun:
    exit_code: int
    logs: str
    tree: OptMlTree

    @property
    def failure(self) -> str | None:
        """What the job wrote to ``/opt/ml/output/failure`` (SageMaker's FailureReason)."""
        path = self.tree.output / "failure"
        return path.read_text().strip() if path.is_file() else None


def training_environment(instance_count: int) -> dict[str, str]:
    """Threads for each instance of a local training job: an equal share of the host's cores.

    The instances of a local job run side by side on one machine; more threads than their share
    stall each other. The image itself sets no thread count, so on SageMaker, where each instance
    is a machine of its own, PyTorch uses all of that machine's cores.
    """
    share = max(1, (os.cpu_count() or 1) // instance_count)
    return {"OMP_NUM_THREADS": str(share)}


def write_opt_ml(root: Path, hyperparameters: dict[str, Any], channels: list[str]) -> OptMlTree:
    """A fresh tree with the config files exactly as local mode writes them for one instance."""
    if root.exists():
        shutil.rmtree(root)  # an old model or failure file would mislead
    tree = OptMlTree(root)
    for folder in (tree.config, tree.model, tree.output / "data"):
        folder.mkdir(parents=True)
    files = {
        # every value a string, as the Estimator sends them
        "hyperparameters.json": hyperparameter_strings(hyperparameters),
        "inputdataconfig.json": {name: {"TrainingInputMode": "File"} for name in channels},
        "resourceconfig.json": {
            "current_host": HOST,
            "hosts": [HOST],
            "network_interface_name": "eth0",
            "current_instance_type": "local",
        },
    }
    for name, content in files.items():
        (tree.config / name).write_text(json.dumps(content, indent=2) + "\n")
    return tree


def device_requests(gpu: bool) -> list[DeviceRequest]:
    """``docker run --gpus all``: every GPU, which needs the NVIDIA Container Toolkit."""
    return [DeviceRequest(count=-1, capabilities=[["gpu"]])] if gpu else []


def volumes(tree: OptMlTree, channels: dict[str, Path]) -> dict[str, dict[str, str]]:
    """Config and data read-only (a job must not change its inputs); checkpoints read-write."""
    mounts = {
        tree.config: (f"{OPT_ML}/input/config", "ro"),
        tree.model: (f"{OPT_ML}/model", "rw"),
        tree.output: (f"{OPT_ML}/output", "rw"),
    }
    for name, path in channels.items():
        mode = "rw" if name == CHECKPOINT_CHANNEL else "ro"
        mounts[path] = (f"{OPT_ML}/input/data/{name}", mode)
    return {
        str(host.resolve()): {"bind": bind, "mode": mode} for host, (bind, mode) in mounts.items()
    }


def host_user() -> str | None:
    """The caller's uid:gid, so the files the job writes are the learner's to delete (SageMaker
    runs jobs as root, harmless on a throwaway instance); None where there are no uids."""
    return f"{os.getuid()}:{os.getgid()}" if hasattr(os, "getuid") else None


def run_training_container(
    tree: OptMlTree,
    channels: dict[str, Path],
    *,
    gpu: bool = False,
    environment: dict[str, str] | None = None,
    job_name: str = "ncf-docker-run",
    image: str = IMAGES["training"],
    client: docker.DockerClient | None = None,
) -> ContainerRun:
    """``docker run <image> train`` with the tree and channels mounted; waits for the exit."""
    client = client or docker.from_env()
    container = client.containers.run(
        image,
        "train",
        detach=True,
        volumes=volumes(tree, channels),
        environment=training_environment(1) | {"TRAINING_JOB_NAME": job_name} | (environment or {}),
        device_requests=device_requests(gpu),
        user=host_user(),
    )
    try:
        exit_code = container.wait()["StatusCode"]
        logs = container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)
    return ContainerRun(exit_code, logs, tree)


def package_model(model_dir: Path, archive: Path) -> Path:
    """What SageMaker does with ``/opt/ml/model`` after a job: its contents, gzipped at the root."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(model_dir.iterdir()):
            tar.add(path, arcname=path.name)
    return archive
