"""What a finished local-mode training job left in the store, brought back as a model folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestration.sagemaker_local.session import download
from training.artifacts import METRICS_FILE, extract_model_archive

if TYPE_CHECKING:
    from sagemaker.local import LocalSession


def fetch_model(session: LocalSession, model_data: str, target: Path) -> Path:
    """Download ``model.tar.gz`` (an ``s3://`` URI) and unpack it into ``target/model``."""
    archive = download(session, model_data, target / "archive") / "model.tar.gz"
    return extract_model_archive(archive, target / "model")


def read_metrics(model_folder: Path) -> dict[str, Any]:
    """The job's ``metrics.json``: validation figures from model selection, test figures of the
    shipped model, per-epoch history."""
    return json.loads((model_folder / METRICS_FILE).read_text())
