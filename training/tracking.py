"""MLflow tracking that can never fail a training run.

Params once, metrics per epoch (``step=epoch``) and the final model folder as artifacts, to
``MLFLOW_TRACKING_URI`` when set, else a local store. If the server cannot be reached, or any call
fails later, training goes on and the learner is told once, with the reason.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from pathlib import Path
from typing import Any

import requests

log = logging.getLogger(__name__)

# Without these the MLflow client retries an unreachable server for minutes before failing.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")


def local_tracking_uri(folder: Path) -> str:
    """A SQLite store in ``folder`` (MLflow 3 keeps plain-file stores in maintenance mode)."""
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(folder / 'mlflow.db').resolve()}"


def default_tracking_uri(folder: Path) -> str | None:
    """Where runs go without ``MLFLOW_TRACKING_URI``: a local SQLite store where MLflow can keep
    one, nothing in the training image (it ships only the ``mlflow-skinny`` client) or where the
    folder cannot be made."""
    if importlib.util.find_spec("sqlalchemy") is None:
        log.info(
            "MLflow: no MLFLOW_TRACKING_URI and no local store in this environment; not tracking "
            "(give the job MLFLOW_TRACKING_URI to log to a server)"
        )
        return None
    try:
        return local_tracking_uri(folder)
    except OSError as exc:  # e.g. a read-only working directory
        log.warning("MLflow: cannot keep a local store in %s (%s); not tracking", folder, exc)
        return None


class Tracker:
    def __init__(self, tracking_uri: str, experiment: str, run_name: str | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.run_name = run_name
        self.run_id: str | None = None
        self.enabled = True
        self._client = None

    def _disable(self, reason: str) -> None:
        if self.enabled:
            log.warning(
                "MLflow tracking at %s is unavailable (%s); training continues without tracking.",
                self.tracking_uri,
                reason,
            )
        self.enabled = False

    def _call(self, action: str, *args: Any, **kwargs: Any) -> Any:
        if not self.enabled:
            return None
        try:
            return getattr(self._client, action)(*args, **kwargs)
        except Exception as exc:  # any tracking failure must not stop training
            self._disable(f"{action} failed: {exc}")
            return None

    def start(self, params: dict[str, Any], tags: dict[str, str] | None = None) -> None:
        if self.tracking_uri.startswith(("http://", "https://")) and not _server_answers(
            self.tracking_uri
        ):
            self._disable("the server did not answer /health")
            return
        try:
            from mlflow import MlflowClient

            self._client = MlflowClient(tracking_uri=self.tracking_uri)
            experiment = self._client.get_experiment_by_name(self.experiment)
            experiment_id = (
                experiment.experiment_id
                if experiment
                else self._client.create_experiment(
                    self.experiment, artifact_location=self._artifact_location()
                )
            )
            run = self._client.create_run(experiment_id, run_name=self.run_name, tags=tags)
        except Exception as exc:
            self._disable(f"could not start a run: {exc}")
            return
        self.run_id = run.info.run_id
        from mlflow.entities import Param

        self._call(
            "log_batch",
            self.run_id,
            params=[Param(key, str(value)) for key, value in params.items()],
        )

    def _artifact_location(self) -> str | None:
        """Next to a local SQLite store; a server decides for itself."""
        if not self.tracking_uri.startswith("sqlite:///"):
            return None
        return (Path(self.tracking_uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        if self.run_id is None:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._call(
            "log_batch",
            self.run_id,
            metrics=[Metric(metric_key(k), float(v), now, step) for k, v in metrics.items()],
        )

    def log_artifacts(self, folder: Path, artifact_path: str = "model") -> None:
        if self.run_id is not None:
            self._call("log_artifacts", self.run_id, str(folder), artifact_path)

    def end(self, status: str = "FINISHED") -> None:
        if self.run_id is not None:
            self._call("set_terminated", self.run_id, status)


def metric_key(name: str) -> str:
    """MLflow keys allow no '@'; ``hr@10`` becomes ``hr_at_10``."""
    return name.replace("@", "_at_")


def _server_answers(uri: str) -> bool:
    try:
        return requests.get(uri.rstrip("/") + "/health", timeout=3).ok
    except requests.RequestException:
        return False
