"""The model artifact contract: what a model folder (later ``model.tar.gz``) holds.

- ``model.pt``: the weights as a state_dict, loaded with ``torch.load(..., weights_only=True)``
  so a model file can never run code, which is what lets the serving container load artifacts
  it did not build;
- ``config.json``: the architecture and sizes to rebuild the model, and the id-map file names;
- ``metrics.json``: what the training job measured;
- ``users.parquet`` / ``items.parquet``: the id maps, copied from the processed split
  (:data:`preprocessing.schema.USERS` / :data:`preprocessing.schema.ITEMS`);
- ``seen_items.parquet`` (:data:`SEEN_ITEMS`): every (user, item) pair of the training and
  validation data, so serving can leave out what a user already interacted with. Test positives
  are not in it: an endpoint then ranks exactly as the full-catalogue evaluation does.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import torch
from torch import nn

from preprocessing.schema import SchemaError, read_table, write_table
from training.checkpoint import UNREADABLE
from training.models import build_model

MODEL_FILE = "model.pt"
SELECTION_FILE = "selection.pt"  # the model early stopping picked, before the refit
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
SEEN_ITEMS_FILE = "seen_items.parquet"

# Dense 0-based indices, named as in the processed tables; one row per distinct pair, sorted.
SEEN_ITEMS = pa.schema(
    [
        pa.field("user", pa.int32(), nullable=False),
        pa.field("item", pa.int32(), nullable=False),
    ]
)


class ArtifactError(ValueError):
    """A model folder is incomplete or does not match its config."""


def save_model(
    folder: Path,
    model: nn.Module,
    config: dict[str, Any],
    metrics: dict[str, Any],
    id_maps: Sequence[Path] = (),
    selection: nn.Module | None = None,
    seen_items: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> None:
    """``seen_items``: the (users, items) index tensors a user has interacted with."""
    folder.mkdir(parents=True, exist_ok=True)
    for path, weights in ((MODEL_FILE, model), (SELECTION_FILE, selection)):
        if weights is not None:
            state = {key: value.detach().cpu() for key, value in weights.state_dict().items()}
            torch.save(state, folder / path)
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    (folder / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    for path in id_maps:
        shutil.copyfile(path, folder / path.name)
    if seen_items is not None:
        pairs = torch.unique(torch.stack(seen_items, dim=1).cpu(), dim=0).to(torch.int32)
        columns = {"user": pairs[:, 0].numpy(), "item": pairs[:, 1].numpy()}
        write_table(pa.table(columns, schema=SEEN_ITEMS), SEEN_ITEMS, folder / SEEN_ITEMS_FILE)


def load_model(
    folder: Path, device: torch.device | str = "cpu", weights: str = MODEL_FILE
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the architecture from config.json and load the weights into it."""
    missing = [name for name in (weights, CONFIG_FILE) if not (folder / name).is_file()]
    if missing:
        raise ArtifactError(f"{folder} is not a model folder: {', '.join(missing)} missing")
    try:
        config = json.loads((folder / CONFIG_FILE).read_text())
        arch = config["architecture"]
        model = build_model(
            arch["model"],
            arch["n_users"],
            arch["n_items"],
            arch["num_factors"],
            tuple(arch["layers"]),
        )
    # ValueError: bad JSON or model name; RuntimeError: sizes no tensor can have (n_users < 0)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ArtifactError(f"{folder / CONFIG_FILE} is not a model config: {exc!r}") from exc
    try:
        model.load_state_dict(_read_state_dict(folder / weights, device))
    except RuntimeError as exc:  # weights of another architecture
        raise ArtifactError(f"{folder / weights} does not match config.json: {exc}") from exc
    # NaN or infinite weights give NaN or infinite scores: rankings would be noise, and a JSON
    # answer could not even carry the scores.
    broken = [name for name, value in model.state_dict().items() if not value.isfinite().all()]
    if broken:
        raise ArtifactError(
            f"{folder / weights} holds NaN or infinite values in {', '.join(broken)}: the run "
            "that wrote it diverged; train the model again (e.g. with a lower --learning-rate)."
        )
    return model.to(device), config


def _read_state_dict(path: Path, device: torch.device | str) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except UNREADABLE as exc:
        raise ArtifactError(
            f"{path} is unreadable ({type(exc).__name__}): empty, cut short, not written by "
            "torch.save, or not open to this process; train the model again or copy it anew"
        ) from exc
    if not isinstance(state, dict):
        raise ArtifactError(f"{path} holds a {type(state).__name__}, not a state_dict of weights")
    return state


def read_artifact_table(path: Path, schema: pa.Schema) -> pa.Table:
    """A Parquet table of a model folder, checked against its written schema."""
    retrain = "train the model again with this version of the course code"
    if not path.is_file():
        raise ArtifactError(f"{path.parent} has no {path.name}: {retrain}")
    try:
        return read_table(path, schema)
    except (SchemaError, pa.ArrowException) as exc:
        raise ArtifactError(f"{path} is unreadable or has another schema: {retrain}") from exc


def extract_model_archive(archive: Path, target: Path) -> Path:
    """Unpack SageMaker's ``model.tar.gz``, refusing members that would land outside ``target``.

    Checked by hand rather than with ``extractall(filter="data")``: Debian bookworm's Python
    (3.11.2, the offline base image) predates extraction filters.
    """
    target.mkdir(parents=True, exist_ok=True)
    root = target.resolve()
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            inside = (root / member.name).resolve().is_relative_to(root)
            if not inside or not (member.isfile() or member.isdir()):
                raise ArtifactError(
                    f"{archive} holds an unsafe entry {member.name!r}; not unpacked"
                )
        tar.extractall(target)  # every member was checked above
    return target
