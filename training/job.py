"""One training job, the same whether a notebook, the main job or a SageMaker container runs it:
processed data in, a model folder (``model.pt``, ``config.json``, ``metrics.json``) out."""

from __future__ import annotations

import logging
import platform
from pathlib import Path
from typing import Any

import torch

from preprocessing.schema import TABLE_FILES
from training.artifacts import ArtifactError, load_model, save_model
from training.checkpoint import CheckpointStore, stop_on_sigterm
from training.config import TrainConfig
from training.data import TrainingData
from training.models import GMF, MLP, NeuMF, architecture
from training.tracking import Tracker
from training.train import fit, resolve_device

log = logging.getLogger(__name__)


def run_training(
    config: TrainConfig,
    train_dir: Path,
    model_dir: Path,
    *,
    checkpoint_dir: Path | None = None,
    pretrained_gmf: Path | None = None,
    pretrained_mlp: Path | None = None,
    tracking_uri: str | None = None,
    experiment: str = "ncf",
    run_name: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    device = resolve_device(config.gpu)
    log.info("training %s on %s", config.model, device)
    data = TrainingData.load(train_dir, device)
    model = _initial_model(config, data, pretrained_gmf, pretrained_mlp)
    tracker = Tracker(tracking_uri, experiment, run_name or config.model) if tracking_uri else None
    if tracker:
        tracker.start(
            config.to_dict() | {"n_users": data.n_users, "n_items": data.n_items},
            tags={"device": str(device), "pretrained": str(pretrained_gmf is not None)},
        )
    checkpoints = CheckpointStore(checkpoint_dir) if checkpoint_dir else None
    status = "FAILED"
    try:
        with stop_on_sigterm() as stop:
            result = fit(
                config,
                data,
                device=device,
                model=model,
                checkpoints=checkpoints,
                tracker=tracker,
                stop=stop,
                progress=progress,
            )
        metrics = result.metrics | {"history": result.history}
        save_model(
            model_dir,
            result.model,
            _model_config(config, data, device),
            metrics,
            id_maps=[train_dir / TABLE_FILES["users"], train_dir / TABLE_FILES["items"]],
        )
        status = "FINISHED"
        if tracker:
            tracker.log_artifacts(model_dir)
        return metrics
    finally:
        if tracker:
            tracker.end(status)


def _initial_model(
    config: TrainConfig,
    data: TrainingData,
    pretrained_gmf: Path | None,
    pretrained_mlp: Path | None,
) -> torch.nn.Module | None:
    """NeuMF from trained GMF and MLP (the paper's pre-training), else a fresh model."""
    if pretrained_gmf is None and pretrained_mlp is None:
        return None
    if config.model != "neumf" or pretrained_gmf is None or pretrained_mlp is None:
        raise ArtifactError(
            "pre-training needs --model neumf with both --pretrained-gmf and --pretrained-mlp"
        )
    gmf, _ = load_model(pretrained_gmf)
    mlp, _ = load_model(pretrained_mlp)
    expected = {
        "GMF": (gmf, GMF, (data.n_users, config.num_factors), gmf.user_embedding.weight.shape),
        "MLP": (mlp, MLP, (data.n_users, config.layers[0] // 2), mlp.user_embedding.weight.shape),
    }
    for name, (model, kind, want, got) in expected.items():
        if not isinstance(model, kind) or tuple(got) != want:
            raise ArtifactError(
                f"the pre-trained {name} does not fit: its user embedding is {tuple(got)}, this "
                f"run needs {want} (same data, --num-factors and --layers as the pre-training)"
            )
    if len(mlp.tower) != len(config.layers) - 1:
        raise ArtifactError("the pre-trained MLP has other --layers than this run")
    neumf = NeuMF(data.n_users, data.n_items, config.num_factors, config.layers)
    neumf.load_pretrained(gmf, mlp, config.alpha)
    return neumf


def _model_config(config: TrainConfig, data: TrainingData, device: torch.device) -> dict[str, Any]:
    return {
        "architecture": architecture(
            config.model, data.n_users, data.n_items, config.num_factors, config.layers
        ),
        "hyperparameters": config.to_dict(),
        "data": {
            "manifest_sha256": data.manifest_sha256,
            "id_maps": {"users": TABLE_FILES["users"], "items": TABLE_FILES["items"]},
        },
        "trained_on": {
            "device": str(device),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
    }
