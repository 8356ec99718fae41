"""A spot interruption, staged: SIGTERM a running local-mode training job once it has checkpointed.

A managed spot job gets SIGTERM when its instance is reclaimed and later starts again with its
checkpoints restored. Here the job's own container gets the same signal through the Docker API;
starting a job again with the same ``checkpoints`` folder is the restart.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
from docker.models.containers import Container

from orchestration.names import IMAGES
from orchestration.sagemaker_local.session import LocalModeError
from training.checkpoint import CHECKPOINT_FILE

# training.job checkpoints its model-selection phase here, every epoch (the refit under refit/).
FIRST_CHECKPOINT = Path("selection") / CHECKPOINT_FILE


@dataclass(frozen=True)
class Interruption:
    exit_code: int  # 143 (128 + SIGTERM) when the job stopped itself after checkpointing
    error: LocalModeError | None  # how the launcher saw it end


def job_containers(client: docker.DockerClient, job_name: str) -> list[Container]:
    """The containers of one training job: local mode puts its name in TRAINING_JOB_NAME."""
    running = client.containers.list(filters={"ancestor": IMAGES["training"]})
    marker = f"TRAINING_JOB_NAME={job_name}"
    return [c for c in running if marker in (c.attrs["Config"].get("Env") or [])]


def sigterm_after_checkpoint(
    client: docker.DockerClient,
    job_name: str,
    checkpoint: Path,
    timeout: float = 180.0,
    ended: Callable[[], bool] = lambda: False,
) -> int:
    """Wait for ``checkpoint`` to appear, SIGTERM the job's containers, return the exit code.

    ``ended`` tells when the job is over anyway (its launcher returned), so that a job that
    fails before checkpointing is reported at once, not after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not checkpoint.exists():
        if ended():
            raise LookupError(f"job {job_name} ended before its first checkpoint ({checkpoint})")
        if time.monotonic() > deadline:
            raise TimeoutError(f"no checkpoint at {checkpoint} within {timeout:.0f} s")
        time.sleep(0.05)
    containers = job_containers(client, job_name)
    if not containers:
        raise LookupError(f"no running container of job {job_name}: it ended before the signal")
    for container in containers:
        container.kill(signal="SIGTERM")
    return max(container.wait(timeout=120)["StatusCode"] for container in containers)


def interrupt(
    launch: Callable[[], Any],
    job_name: str,
    checkpoint_dir: Path,
    client: docker.DockerClient | None = None,
) -> Interruption:
    """Run ``launch`` (a training job named ``job_name`` checkpointing to ``checkpoint_dir``) in
    a thread and stop it like a spot reclaim after its first checkpoint; returns when the
    launcher has given up on the job."""
    checkpoint = checkpoint_dir / FIRST_CHECKPOINT
    if checkpoint.exists():
        raise ValueError(f"{checkpoint} exists already: start from an empty checkpoint folder")
    outcome: dict[str, Exception] = {}

    def job() -> None:
        try:
            launch()
        except Exception as exc:  # raised in the caller's thread below
            outcome["error"] = exc

    thread = threading.Thread(target=job, name=f"spot-{job_name}")
    thread.start()
    early: LookupError | None = None
    try:
        exit_code = sigterm_after_checkpoint(
            client or docker.from_env(), job_name, checkpoint, ended=lambda: not thread.is_alive()
        )
    except LookupError as ended_first:
        early = ended_first
    finally:
        thread.join()
    error = outcome.get("error")
    if early is not None:
        raise LocalModeError(f"{early}: {error or 'it succeeded'}") from error
    if error is not None and not isinstance(error, LocalModeError):
        raise error
    return Interruption(exit_code, error)
