"""The model artifact contract: ``model.pt`` (a state_dict), ``config.json``, ``metrics.json``.

Loading uses ``torch.load(..., weights_only=True)``: a model file can never run code, which is
what lets the serving container load artifacts it did not build.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from training.models import build_model

MODEL_FILE = "model.pt"
SELECTION_FILE = "selection.pt"  # the model early stopping picked, before the refit
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"


class ArtifactError(ValueError):
    """A model folder is incomplete or does not match its config."""


def save_model(
    folder: Path,
    model: nn.Module,
    config: dict[str, Any],
    metrics: dict[str, Any],
    id_maps: list[Path] = (),
    selection: nn.Module | None = None,
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for path, weights in ((MODEL_FILE, model), (SELECTION_FILE, selection)):
        if weights is not None:
            state = {key: value.detach().cpu() for key, value in weights.state_dict().items()}
            torch.save(state, folder / path)
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    (folder / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    for path in id_maps:
        shutil.copyfile(path, folder / path.name)


def load_model(
    folder: Path, device: torch.device | str = "cpu", weights: str = MODEL_FILE
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the architecture from config.json and load the weights into it."""
    missing = [name for name in (weights, CONFIG_FILE) if not (folder / name).is_file()]
    if missing:
        raise ArtifactError(f"{folder} is not a model folder: {', '.join(missing)} missing")
    config = json.loads((folder / CONFIG_FILE).read_text())
    arch = config["architecture"]
    model = build_model(
        arch["model"], arch["n_users"], arch["n_items"], arch["num_factors"], tuple(arch["layers"])
    )
    state = torch.load(folder / weights, map_location=device, weights_only=True)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ArtifactError(f"{folder / weights} does not match config.json: {exc}") from exc
    return model.to(device), config
