"""Lesson 07's model: the newest registered version of a course model whose ``model.tar.gz`` is
still in the local S3 store, brought back as a model folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from orchestration.lessons.candidates import in_store
from orchestration.lessons.job_outputs import fetch_model

if TYPE_CHECKING:
    from sagemaker.local import LocalSession


def registered_model(
    client: MlflowClient, session: LocalSession, name: str, target: Path
) -> tuple[ModelVersion, Path]:
    versions = sorted(
        client.search_model_versions(f"name = '{name}'"), key=lambda v: -int(v.version)
    )
    for version in versions:
        uri = version.tags.get("sagemaker_model_data")
        if in_store(session, uri):
            return version, fetch_model(session, uri, target)
    raise LookupError(
        f"no version of {name} in the registry has its model.tar.gz in the store: run lessons 05 "
        "and 06 first (they train and register the course's models)"
    )
