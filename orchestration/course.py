"""The main job as SageMaker local-mode jobs, and the choice between that and plain processes.

Local mode needs a Docker engine, docker compose and the course's images; when any is missing
the main job still runs, as plain processes, after one line that says how to get local mode.
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from orchestration.pipeline import ProcessBackend, TrainedModel, preprocessing_flags
from preprocessing.job import resolve_source

ENABLE_HINT = (
    "to run every stage as a SageMaker local-mode job, start Docker and build the images with "
    "`make images` (offline machines: `sudo make bootstrap`)"
)


def docker_problem() -> str | None:
    """Why local mode cannot run here, or None when it can."""
    try:
        import docker
        from docker.errors import DockerException, ImageNotFound

        from orchestration.localmode import IMAGES
    except ImportError as missing:
        return (
            f"the localmode extra is not installed ({missing.name} is missing: "
            "pip install -e '.[localmode]')"
        )
    try:
        client = docker.from_env()
        client.ping()
    except DockerException:
        return "no Docker engine answers"
    if not _has_compose():
        return "neither `docker compose` nor `docker-compose` is installed"
    for image in IMAGES.values():
        try:
            client.images.get(image)
        except ImageNotFound:
            return f"the image {image} is not built"
    return None


def _has_compose() -> bool:
    from orchestration.localmode import command_output

    plugin = command_output(["docker", "compose", "version"])
    return plugin is not None or shutil.which("docker-compose") is not None


@contextmanager
def open_backend(mode: str, work_dir: Path) -> Iterator[Any]:
    """Local-mode jobs when asked for or possible (``auto``), plain processes otherwise."""
    if mode == "processes":
        yield ProcessBackend(work_dir)
        return
    problem = docker_problem()
    if problem is not None:
        if mode == "local-mode":
            raise RuntimeError(f"SageMaker local mode cannot run: {problem}; {ENABLE_HINT}")
        print(f"SageMaker local mode unavailable ({problem}): plain processes; {ENABLE_HINT}")
        yield ProcessBackend(work_dir)
        return
    from orchestration.cleanup import clean
    from orchestration.services import LocalServices

    with LocalServices(work_dir / "services") as services:
        try:
            yield LocalModeBackend(work_dir, services)
        finally:
            clean([], network=False)


class LocalModeBackend:
    """Processing, training and a deployed endpoint, each a local-mode job in its own image."""

    def __init__(self, work_dir: Path, services: Any) -> None:
        from orchestration import localmode

        self.localmode = localmode
        self.work_dir = work_dir
        self.services = services
        self.instance = localmode.choose_instance_type()
        scratch = localmode.container_root(work_dir / "sagemaker-local")
        self.session = localmode.local_session(services.s3, scratch)
        self.key_prefix = f"course/{time.strftime('%Y%m%d-%H%M%S')}"
        self.prefix = f"s3://{services.s3.bucket}/{self.key_prefix}"
        self.description = (
            f"SageMaker local-mode jobs on instance type {self.instance.instance_type} "
            f"({self.instance.reason})"
        )

    def prepare(self, args: argparse.Namespace) -> Path:
        raw = None
        if args.dataset != "synthetic":
            source = resolve_source(
                args.dataset, data_dir=args.data_dir, cache_dir=args.cache_dir, progress=False
            )
            folder = source.path if source.path.is_dir() else source.path.parent
            raw = self.localmode.upload(self.session, folder, f"{self.key_prefix}/raw")
        output = f"{self.prefix}/processed"
        self.localmode.run_processing(
            self.session,
            raw=raw,
            output=output,
            arguments=preprocessing_flags(args),
            instance_type=self.instance.instance_type,
            job_name=self._job_name("preprocessing"),
        )
        self.processed_uri = output
        return self.localmode.download(self.session, output, self.work_dir / "processed")

    def train(
        self, name: str, hyperparameters: dict[str, Any], pretrained: dict[str, TrainedModel]
    ) -> TrainedModel:
        started = time.perf_counter()
        channels = {"train": self.processed_uri}
        channels |= {channel: model.location for channel, model in pretrained.items()}
        model_data = self.localmode.run_training(
            self.session,
            channels=channels,
            hyperparameters=hyperparameters,
            output_path=f"{self.prefix}/models/{name}",
            instance_type=self.instance.instance_type,
            environment={"MLFLOW_TRACKING_URI": self.services.mlflow.container_tracking_uri},
            job_name=self._job_name(name),
        )
        seconds = time.perf_counter() - started
        from orchestration.job_outputs import fetch_model

        folder = fetch_model(self.session, model_data, self.work_dir / "models" / name)
        return TrainedModel(folder, model_data, seconds)

    def recommend(self, model: TrainedModel, users: list[Any], k: int) -> list[dict[str, Any]]:
        predictor = self.localmode.deploy(
            self.session, model.location, instance_type=self.instance.instance_type
        )
        try:
            return [self.localmode.recommend(predictor, user, k) for user in users]
        finally:
            self.localmode.teardown(predictor)

    def _job_name(self, stage: str) -> str:
        return f"ncf-{stage}-{time.strftime('%Y%m%d-%H%M%S')}"
