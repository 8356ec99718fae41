"""One training job, the same whether a notebook, the main job or a SageMaker container runs it:
processed data in, a model folder (``model.pt``, ``config.json``, ``metrics.json``) out.

On several hosts every rank runs this whole function in lockstep (selection and refit alike);
rank 0 alone tracks to MLflow and writes the model folder."""

from __future__ import annotations

import logging
import platform
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from preprocessing.schema import TABLE_FILES
from training.artifacts import (
    MODEL_FILE,
    SELECTION_FILE,
    ArtifactError,
    load_model,
    save_model,
)
from training.checkpoint import CheckpointStore, stop_on_sigterm
from training.config import TrainConfig
from training.data import TrainingData
from training.distributed import LOCAL, ProcessGroup
from training.metrics import prefixed
from training.models import NeuMF, architecture
from training.tracking import Tracker
from training.train import FitResult, evaluate_untrained, fit, resolve_device

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
    group: ProcessGroup = LOCAL,
) -> dict[str, Any]:
    device = resolve_device(config.gpu)
    log.info(
        "training %s on %s as rank %d of %d", config.model, device, group.rank, group.world_size
    )
    data = TrainingData.load(train_dir, device)
    tracked = tracking_uri and group.is_primary
    tracker = Tracker(tracking_uri, experiment, run_name or config.model) if tracked else None
    if tracker:
        tracker.start(
            config.to_dict() | {"n_users": data.n_users, "n_items": data.n_items},
            tags={"device": str(device), "pretrained": str(pretrained_gmf is not None)},
        )
    status = "FAILED"
    try:
        with stop_on_sigterm() as stop:
            selected = fit(
                config,
                data,
                device=device,
                model=_initial_model(config, data, pretrained_gmf, pretrained_mlp, selection=True),
                checkpoints=_store(checkpoint_dir, "selection", group),
                tracker=tracker,
                stop=stop,
                progress=progress,
                group=group,
            )
            final = selected
            start = _initial_model(config, data, pretrained_gmf, pretrained_mlp)
            # An untrained fresh model never wins; a pre-trained NeuMF at epoch 0 may, and then
            # its refit is the blend of the refitted halves, with no further training.
            refit = config.refit and data.validation is not None
            refit = refit and (selected.best_epoch > 0 or start is not None)
            if refit and selected.best_epoch == 0:
                final = evaluate_untrained(start, data.with_validation_merged(), config, device)
            elif refit:
                log.info("refit on train + validation for %d epochs", selected.best_epoch)
                final = fit(
                    replace(config, epochs=selected.best_epoch, patience=selected.best_epoch),
                    data.with_validation_merged(),
                    device=device,
                    model=start,
                    checkpoints=_store(checkpoint_dir, "refit", group),
                    stop=stop,
                    progress=progress,
                    group=group,
                )
        metrics = _job_metrics(selected, final, refit)
        if not group.is_primary:
            return metrics
        seen = data.with_validation_merged()
        save_model(
            model_dir,
            final.model,
            _model_config(config, data, device),
            metrics,
            id_maps=[train_dir / TABLE_FILES["users"], train_dir / TABLE_FILES["items"]],
            selection=selected.model if refit else None,
            seen_items=(seen.users, seen.items),
        )
        status = "FINISHED"
        if tracker:
            final_test = {k: v for k, v in metrics.items() if k.startswith("test_")}
            tracker.log_metrics(prefixed("final", final_test), step=selected.best_epoch)
            tracker.log_artifacts(model_dir)
        return metrics
    finally:
        if tracker:
            tracker.end(status)


def _store(checkpoint_dir: Path | None, phase: str, group: ProcessGroup) -> CheckpointStore | None:
    if checkpoint_dir is None:
        return None
    return CheckpointStore(checkpoint_dir / phase, read_only=not group.is_primary)


def _job_metrics(selected: FitResult, final: FitResult, refit: bool) -> dict[str, Any]:
    """Validation figures from model selection; test figures from the model that is shipped."""
    metrics = {
        "best_epoch": selected.best_epoch,
        "selected_on": selected.metrics["selected_on"],
        "refit": refit,
        **{k: v for k, v in selected.metrics.items() if k.startswith("val_")},
        **{k: v for k, v in final.metrics.items() if k.startswith("test_")},
        "epochs_run": selected.metrics["epochs_run"]
        + (final.metrics["epochs_run"] if refit else 0),
        "mean_epoch_seconds": selected.metrics["mean_epoch_seconds"],
        "history": selected.history,
    }
    if refit:
        selection_test = {k: v for k, v in selected.metrics.items() if k.startswith("test_")}
        metrics |= prefixed("selection", selection_test) | {"refit_history": final.history}
    return metrics


def _initial_model(
    config: TrainConfig,
    data: TrainingData,
    pretrained_gmf: Path | None,
    pretrained_mlp: Path | None,
    *,
    selection: bool = False,
) -> torch.nn.Module | None:
    """NeuMF from trained GMF and MLP (the paper's pre-training), else a fresh model.

    Model selection starts from the pre-trained halves' own selected weights, the refit from
    their refitted weights, so no phase sees data its validation is meant to hide.
    """
    if pretrained_gmf is None and pretrained_mlp is None:
        return None
    if config.model != "neumf" or pretrained_gmf is None or pretrained_mlp is None:
        raise ArtifactError(
            "pre-training needs --model neumf with both --pretrained-gmf and --pretrained-mlp"
        )
    gmf, _ = load_model(pretrained_gmf, weights=_weights_file(pretrained_gmf, selection))
    mlp, _ = load_model(pretrained_mlp, weights=_weights_file(pretrained_mlp, selection))
    neumf = NeuMF(data.n_users, data.n_items, config.num_factors, config.layers)
    _check_fits("GMF", pretrained_gmf, gmf, neumf.gmf)
    _check_fits("MLP", pretrained_mlp, mlp, neumf.mlp)
    neumf.load_pretrained(gmf, mlp, config.alpha)
    return neumf


def _check_fits(
    name: str, folder: Path, pretrained: torch.nn.Module, half: torch.nn.Module
) -> None:
    """Every weight of NeuMF's half must have its pre-trained counterpart's shape; else
    load_pretrained would fail with a bare size mismatch."""
    where = f"the pre-trained {name} ({name.lower()} channel, {folder})"
    if type(pretrained) is not type(half):
        raise ArtifactError(f"{where} is a {type(pretrained).__name__} model, not a {name}")
    got, want = _shapes(pretrained), _shapes(half)
    for key in [*want, *sorted(got.keys() - want.keys())]:  # the model's order: weight, bias
        if got.get(key) != want.get(key):
            raise ArtifactError(
                f"{where} does not fit: its {key} is "
                f"{got.get(key, 'missing')}, this run needs {want.get(key, 'none')} (same data, "
                "--num-factors and --layers as the pre-training)"
            )


def _shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    """The shapes of the weights NeuMF takes over (each half's own output layer is blended)."""
    state = model.state_dict()
    return {k: tuple(v.shape) for k, v in state.items() if not k.startswith("predict.")}


def _weights_file(folder: Path, selection: bool) -> str:
    return SELECTION_FILE if selection and (folder / SELECTION_FILE).is_file() else MODEL_FILE


def _model_config(config: TrainConfig, data: TrainingData, device: torch.device) -> dict[str, Any]:
    return {
        "architecture": architecture(
            config.model, data.n_users, data.n_items, config.num_factors, config.layers
        ),
        "hyperparameters": config.to_dict(),
        "data": {
            "manifest_sha256": data.manifest_sha256,
            "identity": data.identity,
            "id_maps": {"users": TABLE_FILES["users"], "items": TABLE_FILES["items"]},
        },
        "trained_on": {
            "device": str(device),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
    }
