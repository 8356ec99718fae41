"""The SageMaker local-mode backend: each stage a local-mode job in its own image.

Processing, training and a deployed endpoint, with the course's S3 store and MLflow server.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from orchestration.infra.services import LocalServices
from orchestration.lessons.job_outputs import fetch_model
from orchestration.main_job.stages import TrainedModel, preprocessing_flags
from orchestration.probes import choose_instance_type
from orchestration.sagemaker_local import endpoints, jobs
from orchestration.sagemaker_local.session import container_root, download, local_session, upload
from preprocessing.job import resolve_source


class LocalModeBackend:
    """Processing, training and a deployed endpoint, each a local-mode job in its own image."""

    def __init__(self, work_dir: Path, services: LocalServices) -> None:
        self.work_dir = work_dir
        self.services = services
        self.instance = choose_instance_type()
        scratch = container_root(work_dir / "sagemaker-local")
        self.session = local_session(services.s3, scratch)
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
            raw = upload(self.session, folder, f"{self.key_prefix}/raw")
        output = f"{self.prefix}/processed"
        jobs.run_processing(
            self.session,
            raw=raw,
            output=output,
            arguments=preprocessing_flags(args),
            instance_type=self.instance.instance_type,
            job_name=self._job_name("preprocessing"),
        )
        self.processed_uri = output
        return download(self.session, output, self.work_dir / "processed")

    def train(
        self, name: str, hyperparameters: dict[str, Any], pretrained: dict[str, TrainedModel]
    ) -> TrainedModel:
        channels = {"train": self.processed_uri}
        channels |= {channel: model.location for channel, model in pretrained.items()}
        model_data = jobs.run_training(
            self.session,
            channels=channels,
            hyperparameters=hyperparameters,
            output_path=f"{self.prefix}/models/{name}",
            instance_type=self.instance.instance_type,
            environment={"MLFLOW_TRACKING_URI": self.services.mlflow.tracking_uri},
            job_name=self._job_name(name),
        )
        folder = fetch_model(self.session, model_data, self.work_dir / "models" / name)
        return TrainedModel(folder, model_data)

    def recommend(self, model: TrainedModel, users: list[Any], k: int) -> list[dict[str, Any]]:
        predictor = endpoints.deploy(
            self.session, model.location, instance_type=self.instance.instance_type
        )
        try:
            return [endpoints.recommend(predictor, user, k) for user in users]
        finally:
            endpoints.teardown(predictor)

    def _job_name(self, stage: str) -> str:
        return f"ncf-{stage}-{time.strftime('%Y%m%d-%H%M%S')}"
