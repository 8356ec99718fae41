"""The processed split as tensors on the training device, read once."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from preprocessing.manifest import data_identity, read_split, sha256_of
from preprocessing.schema import MANIFEST_FILE
from preprocessing.split import Holdout


@dataclass(frozen=True)
class HoldoutTensors:
    users: torch.Tensor  # (N,)
    items: torch.Tensor  # (N,) the held-out positive
    negatives: torch.Tensor  # (N, M) never-seen candidates
    timestamps: torch.Tensor  # (N,)

    @classmethod
    def from_holdout(cls, holdout: Holdout, device: torch.device) -> HoldoutTensors:
        frame = holdout.frame
        return cls(
            users=torch.tensor(frame["user"].to_numpy(), dtype=torch.long, device=device),
            items=torch.tensor(frame["item"].to_numpy(), dtype=torch.long, device=device),
            negatives=torch.tensor(holdout.negatives, dtype=torch.long, device=device),
            timestamps=torch.tensor(frame["timestamp"].to_numpy(), device=device),
        )


@dataclass(frozen=True)
class TrainingData:
    n_users: int
    n_items: int
    users: torch.Tensor  # training positives
    items: torch.Tensor
    timestamps: torch.Tensor
    validation: HoldoutTensors | None
    test: HoldoutTensors
    manifest_sha256: str | None = None
    identity: str | None = None  # preprocessing.manifest.data_identity: kept by re-processing

    def with_validation_merged(self) -> TrainingData:
        """Validation positives become training data: the refit after model selection."""
        if self.validation is None:
            return self
        return replace(
            self,
            users=torch.cat([self.users, self.validation.users]),
            items=torch.cat([self.items, self.validation.items]),
            timestamps=torch.cat([self.timestamps, self.validation.timestamps]),
            validation=None,
        )

    def timeline_rank(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Where each positive sits in its user's history (0 the oldest), and that history's
        length, per positive.

        Order is by timestamp, ties by item id, as the split orders them."""
        order = torch.argsort(self.items, stable=True)
        order = order[torch.argsort(self.timestamps[order], stable=True)]
        order = order[torch.argsort(self.users[order], stable=True)]
        counts = torch.bincount(self.users, minlength=self.n_users)
        starts = torch.cumsum(counts, 0) - counts
        users = self.users[order]
        rank = torch.empty_like(order)
        rank[order] = torch.arange(len(order), device=order.device) - starts[users]
        return rank, counts[self.users]

    def trained(self, model_config: dict) -> bool:
        """Whether a model's config.json names this split: by its identity where the model
        recorded one (the same data processed again matches), else by the manifest's checksum."""
        data = model_config.get("data", {})
        if data.get("identity"):
            return data["identity"] == self.identity
        return data.get("manifest_sha256") == self.manifest_sha256

    @classmethod
    def load(cls, folder: Path, device: torch.device) -> TrainingData:
        split = read_split(folder)
        return cls(
            n_users=split.n_users,
            n_items=split.n_items,
            users=torch.tensor(split.train["user"].to_numpy(), dtype=torch.long, device=device),
            items=torch.tensor(split.train["item"].to_numpy(), dtype=torch.long, device=device),
            timestamps=torch.tensor(split.train["timestamp"].to_numpy(), device=device),
            validation=None
            if split.validation is None
            else HoldoutTensors.from_holdout(split.validation, device),
            test=HoldoutTensors.from_holdout(split.test, device),
            manifest_sha256=sha256_of(folder / MANIFEST_FILE),
            identity=data_identity(split.manifest),
        )
