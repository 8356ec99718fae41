"""The local-mode training jobs of one lesson: same data, store, MLflow server and work folder.

Each job gets one name, used everywhere a learner looks for it: the MLflow run, the SageMaker job
(``ncf-<name>``), the store prefix of its ``model.tar.gz``, its log file and its model folder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestration.lessons.job_outputs import fetch_model, read_metrics
from orchestration.lessons.joblog import captured
from orchestration.sagemaker_local.jobs import run_training

if TYPE_CHECKING:
    from sagemaker.local import LocalSession


@dataclass(frozen=True)
class TrainingJob:
    name: str
    model_data: str  # s3:// URI of model.tar.gz
    folder: Path  # the unpacked model on this machine
    metrics: dict[str, Any]  # its metrics.json
    seconds: float  # wall time of the job, container start-up included
    log: Path | None  # the captured console output; None when it was shown live


@dataclass
class TrainingJobs:
    session: LocalSession
    train_uri: str  # the processed split, an s3:// URI
    output_prefix: str  # s3:// prefix under which each job writes <name>/.../model.tar.gz
    work_dir: Path
    instance_type: str = "local"
    environment: dict[str, str] = field(default_factory=dict)  # e.g. MLFLOW_TRACKING_URI

    @staticmethod
    def job_name(name: str) -> str:
        return f"ncf-{name}"

    def log_file(self, name: str) -> Path:
        """Where a captured job's console output goes; there also when the job failed."""
        return self.work_dir / "logs" / f"{name}.log"

    def run(
        self,
        name: str,
        hyperparameters: dict[str, Any],
        *,
        live: bool = False,
        instance_count: int = 1,
        checkpoint_dir: Path | None = None,
        pretrained: dict[str, TrainingJob] | None = None,
    ) -> TrainingJob:
        """One job, its log shown as it runs (``live``) or kept in ``work_dir/logs/<name>.log``.
        ``pretrained``: earlier jobs whose models it starts from, by channel (``gmf``, ``mlp``)."""
        log = None if live else self.log_file(name)
        channels = {"train": self.train_uri}
        channels |= {channel: job.model_data for channel, job in (pretrained or {}).items()}
        started = time.perf_counter()
        with captured(log):
            model_data = run_training(
                self.session,
                channels=channels,
                hyperparameters=hyperparameters | {"run_name": name},
                output_path=f"{self.output_prefix}/{name}",
                instance_type=self.instance_type,
                instance_count=instance_count,
                checkpoint_dir=checkpoint_dir,
                environment=self.environment,
                job_name=self.job_name(name),
            )
        seconds = time.perf_counter() - started
        folder = fetch_model(self.session, model_data, self.work_dir / "models" / name)
        return TrainingJob(name, model_data, folder, read_metrics(folder), seconds, log)

    def train_for_metrics(self, name: str, hyperparameters: dict[str, Any]) -> dict[str, Any]:
        """Run a captured job; return its metrics.json (what ``lessons.tuning`` calls)."""
        return self.run(name, hyperparameters).metrics
