"""The plain-process backend: each stage a subprocess of its own entry point.

Each gets the same ``/opt/ml``-style folders and ``SM_*`` environment a container gets, so what
works here works in a job unchanged. Needs neither Docker nor the services: MLflow logs to a
file store under the work folder unless ``MLFLOW_TRACKING_URI`` names a server.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from orchestration.lessons.joblog import capturing_log
from orchestration.main_job.stages import TrainedModel, preprocessing_flags
from training.hyperparameters import hyperparameter_flags
from training.tracking import local_tracking_uri


def run_stage(module: str, args: list[str], env: dict[str, str]) -> float:
    """Run ``python -m module`` like a container runs its entry point; raise if it fails.

    Inside ``joblog.captured`` its output goes to that log, as a job's does; else to this
    process's stdout and stderr."""
    started = time.perf_counter()
    command = [sys.executable, "-m", module, *args]
    log = capturing_log()
    if log is not None:
        log.flush()  # what this process wrote before the stage stays before its output
    completed = subprocess.run(command, env=os.environ | env, stdout=log, stderr=log, check=False)
    if completed.returncode != 0:
        raise RuntimeError(
            f"stage {module} failed with exit code {completed.returncode}; its error is above"
        )
    return time.perf_counter() - started


def run_preprocessing(
    output_dir: Path, flags: list[str], *, data_dir: Path | None, cache_dir: Path
) -> float:
    """The preprocessing entry point as a subprocess: local files from ``data_dir``, else the
    official download into ``cache_dir``. Returns its wall time."""
    flags = [*flags, "--output-dir", str(output_dir), "--cache-dir", str(cache_dir)]
    if data_dir:
        flags += ["--data-dir", str(data_dir)]
    return run_stage("preprocessing", flags, {})


def recommendation(user: Any, items: list[tuple[Any, float]]) -> dict[str, Any]:
    return {"user_id": user, "items": [{"item_id": i, "score": s} for i, s in items]}


class ProcessBackend:
    """Each stage a subprocess of its entry point, with the ``SM_*`` contract of a container."""

    description = "plain processes"

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.processed = work_dir / "processed"
        self.tracking_uri = os.environ.get("MLFLOW_TRACKING_URI") or local_tracking_uri(
            work_dir / "mlflow"
        )

    def prepare(self, args: argparse.Namespace) -> Path:
        run_preprocessing(
            self.processed,
            preprocessing_flags(args),
            data_dir=args.data_dir,
            cache_dir=args.cache_dir,
        )
        return self.processed

    def train(
        self, name: str, hyperparameters: dict[str, Any], pretrained: dict[str, TrainedModel]
    ) -> TrainedModel:
        model_dir = self.work_dir / "models" / name
        env = {"SM_CHANNEL_TRAIN": str(self.processed), "SM_MODEL_DIR": str(model_dir)}
        for channel, model in pretrained.items():
            env[f"SM_CHANNEL_{channel.upper()}"] = model.location
        flags = hyperparameter_flags(hyperparameters | {"tracking_uri": self.tracking_uri})
        run_stage("training", flags, env)
        return TrainedModel(model_dir, str(model_dir))

    def recommend(self, model: TrainedModel, users: list[Any], k: int) -> list[dict[str, Any]]:
        """The serving code in this process: the same recommender the endpoint runs."""
        from inference.recommender import Recommender

        recommender = Recommender.from_folder(model.folder)
        return [recommendation(user, recommender.recommend(user, k)) for user in users]
