"""The course's trained models in MLflow's model registry: one registered model per architecture
(``ncf-gmf``, ``ncf-mlp``, ``ncf-neumf``), one version per training job, tagged with what the
later lessons need to find, trust and deploy it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric, Run
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from orchestration.lessons.training_jobs import TrainingJob
from preprocessing.manifest import data_identity
from training.tracking import metric_key

REGISTERED_MODELS = {"gmf": "ncf-gmf", "mlp": "ncf-mlp", "neumf": "ncf-neumf"}
# The figures a version carries as tags, so the registry alone can rank versions.
TAGGED_METRICS = ("val_hr@10", "test_hr@10", "test_ndcg@10")
# Lesson 06 decides, lesson 08 deploys: each alias names one version across the course's models.
ALIASES = ("champion", "challenger")


def manifest_sha256(processed: Path) -> str:
    """The processed split's identity: a hash of its manifest's schema version and table
    checksums, so the same data processed again (another day, another folder) keeps it."""
    return data_identity(json.loads((processed / "manifest.json").read_text()))


def register(
    client: MlflowClient, model: str, run: Run, job: TrainingJob, data_sha256: str
) -> ModelVersion:
    """A new version of ``model``'s registered model: the run's logged model folder, tagged with
    the data it learned from, the SageMaker ``model.tar.gz`` that serves it, and its metrics."""
    name = REGISTERED_MODELS[model]
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        client.create_registered_model(name, description=f"NCF {model.upper()} of the course")
    tags = {
        "data_manifest_sha256": data_sha256,
        "sagemaker_model_data": job.model_data,
        "training_job": job.name,
    }
    tags |= {metric_key(metric): f"{job.metrics[metric]:.4f}" for metric in TAGGED_METRICS}
    return client.create_model_version(
        name,
        source=f"{run.info.artifact_uri}/model",
        run_id=run.info.run_id,
        tags=tags,
        await_creation_for=0,  # the course's SQLite-backed server creates it at once
    )


def versions_table(client: MlflowClient, names: list[str]) -> pd.DataFrame:
    """Every version of these registered models, newest first: what lessons 06-08 choose from."""
    rows = [
        {"model": version.name, "version": int(version.version), "run": version.run_id[:8]}
        | {metric: version.tags.get(metric_key(metric)) for metric in TAGGED_METRICS}
        | {"data": version.tags.get("data_manifest_sha256", "")[:12]}
        for name in names
        for version in client.search_model_versions(f"name = '{name}'")
    ]
    return pd.DataFrame(rows).sort_values(["model", "version"], ascending=[True, False])


def log_evaluation(client: MlflowClient, version: ModelVersion, figures: dict[str, float]) -> None:
    """The evaluation stage's figures on the version's own training run, as ``eval_*`` metrics,
    so the run shows how it was judged beside how it trained."""
    stamp = int(time.time() * 1000)
    metrics = [
        Metric(f"eval_{metric_key(name)}", value, stamp, 0) for name, value in figures.items()
    ]
    client.log_batch(version.run_id, metrics=metrics)


def crown(client: MlflowClient, ranking: list[ModelVersion]) -> dict[str, ModelVersion]:
    """``champion`` for the first version of ``ranking``, ``challenger`` for the second, each
    alias first taken off every course model so it names exactly one version."""
    if len(ranking) < len(ALIASES):
        raise ValueError(f"a decision needs {len(ALIASES)} ranked versions, got {len(ranking)}")
    for name in REGISTERED_MODELS.values():
        for alias in ALIASES:
            try:
                client.delete_registered_model_alias(name, alias)
            except MlflowException:  # no such model, or no such alias on it
                continue
    for alias, version in zip(ALIASES, ranking, strict=False):
        client.set_registered_model_alias(version.name, alias, version.version)
    return dict(zip(ALIASES, ranking, strict=False))


# The evaluation figures logged to each version's run (eval_*), by lesson 06's table columns.
EVALUATION_METRICS = {
    "hr@10": "HR@10",
    "ndcg@10": "NDCG@10",
    "full_recall@10": "full recall@10",
    "coverage@10": "coverage@10",
}


def decide(
    client: MlflowClient, registered: dict[str, ModelVersion], figures: pd.DataFrame
) -> list[str]:
    """Log each registered version's evaluation ``figures`` (a row per candidate name) to its
    run, then crown them by test HR@10. Returns the candidate names, best first."""
    for name, version in registered.items():
        row = figures.loc[name]
        log_evaluation(client, version, {m: row[c] for m, c in EVALUATION_METRICS.items()})
    ranking = sorted(registered, key=lambda name: -figures.at[name, "HR@10"])
    crown(client, [registered[name] for name in ranking])
    return ranking


def holder(client: MlflowClient, alias: str) -> ModelVersion | None:
    """The version an alias names among the course's models (lesson 08 deploys it), or None."""
    for name in REGISTERED_MODELS.values():
        try:
            return client.get_model_version_by_alias(name, alias)
        except MlflowException:
            continue
    return None
