"""Top-k recommendations from a model folder: what an endpoint answers with.

A score is the model's raw output, a logit. Every loss the course trains with (bce, bpr,
softmax) ranks by it, but only under bce is ``sigmoid(score)`` a probability, so the logit is
the one number that means the same for every model. Items the user interacted with in training
or validation (``seen_items.parquet``) are never recommended.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from torch import nn

from preprocessing.schema import ITEMS, USERS
from training.artifacts import (
    SEEN_ITEMS,
    SEEN_ITEMS_FILE,
    ArtifactError,
    load_model,
    read_artifact_table,
)


class UnknownUserError(LookupError):
    """The user id is not one the model was trained on (no cold-start fallback)."""

    def __init__(self, user_id: object) -> None:
        super().__init__(f"unknown user_id {user_id!r}: the model knows only its training users")
        self.user_id = user_id


class InvalidKError(ValueError):
    """k is outside 1..n_items."""


class NonFiniteScoresError(ArithmeticError):
    """The model scored some of a user's candidates NaN or infinite, so it cannot rank them.

    Its weights are finite (``load_model`` checks), so they are large enough to overflow."""


@dataclass(frozen=True)
class SeenItems:
    """Each user's seen item indices in CSR form: a few bytes per pair, O(1) lookup."""

    indptr: np.ndarray  # (n_users + 1,) int64: user u's items are indices[indptr[u]:indptr[u+1]]
    indices: np.ndarray  # int32 item indices, grouped by user

    @classmethod
    def from_pairs(cls, users: np.ndarray, items: np.ndarray, n_users: int) -> SeenItems:
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(users, minlength=n_users), out=indptr[1:])
        return cls(indptr, items[np.argsort(users, kind="stable")])

    def of(self, user: int) -> np.ndarray:
        return self.indices[self.indptr[user] : self.indptr[user + 1]]


class Recommender:
    """A trained model with its id maps and seen items, ready to rank the whole catalogue."""

    def __init__(
        self,
        model: nn.Module,
        user_ids: np.ndarray,
        item_ids: np.ndarray,
        seen: SeenItems,
        device: torch.device,
    ) -> None:
        self._model = model.eval()
        self._user_index = {user_id: index for index, user_id in enumerate(user_ids.tolist())}
        self._item_ids = item_ids
        self._seen = seen
        self._device = device
        self._all_items = torch.arange(len(item_ids), device=device).unsqueeze(0)

    @property
    def n_items(self) -> int:
        return len(self._item_ids)

    @classmethod
    def from_folder(cls, folder: Path, device: torch.device | str | None = None) -> Recommender:
        """Load a model folder (an unpacked ``model.tar.gz``); the GPU when there is one."""
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        model, config = load_model(folder, device)
        n_users, n_items = config["architecture"]["n_users"], config["architecture"]["n_items"]
        id_maps = config.get("data", {}).get("id_maps")
        if not isinstance(id_maps, dict) or not {"users", "items"} <= id_maps.keys():
            raise ArtifactError(
                f"{folder} config.json names no user and item id maps (data.id_maps): "
                "train the model again"
            )
        users = read_artifact_table(folder / id_maps["users"], USERS)
        items = read_artifact_table(folder / id_maps["items"], ITEMS)
        seen = read_artifact_table(folder / SEEN_ITEMS_FILE, SEEN_ITEMS)
        seen_users, seen_items = seen["user"].to_numpy(), seen["item"].to_numpy()
        if seen.num_rows and not (_within(seen_users, n_users) and _within(seen_items, n_items)):
            raise ArtifactError(f"{folder / SEEN_ITEMS_FILE} names users or items the model lacks")
        return cls(
            model,
            _ids_by_index(users, "user", "user_id", n_users),
            _ids_by_index(items, "item", "item_id", n_items),
            SeenItems.from_pairs(seen_users, seen_items, n_users),
            device,
        )

    def recommend(self, user_id: int, k: int = 10) -> list[tuple[int, float]]:
        """The k best unseen items as (item id, score), best first.

        k runs from 1 to the catalogue size; a user with fewer than k unseen items gets them
        all. Tied scores come back in no particular order.
        """
        user = self._user_index.get(user_id)
        if user is None:
            raise UnknownUserError(user_id)
        if not 1 <= k <= self.n_items:
            raise InvalidKError(f"k must be between 1 and {self.n_items} (the catalogue), got {k}")
        seen = torch.as_tensor(self._seen.of(user), dtype=torch.long, device=self._device)
        with torch.inference_mode():
            users = torch.tensor([user], device=self._device)
            scores = self._model(users, self._all_items).squeeze(0).float()
            scores[seen] = 0.0
            broken = int((~torch.isfinite(scores)).sum())
            if broken:
                raise NonFiniteScoresError(
                    f"the model gave non-finite scores to {broken} of the unseen items of user "
                    f"{user_id}: its weights are finite but large enough to overflow float32, "
                    "so it cannot rank them; retrain it (a lower --learning-rate or some --l2)"
                )
            scores[seen] = float("-inf")
            top = torch.topk(scores, min(k, self.n_items - len(seen)))
        item_ids = self._item_ids[top.indices.cpu().numpy()].tolist()
        return list(zip(item_ids, top.values.cpu().tolist(), strict=True))


def _ids_by_index(table: pa.Table, index: str, raw_id: str, size: int) -> np.ndarray:
    """Raw ids ordered by dense index, after checking the map covers 0..size-1 one to one."""
    frame = table.select([index, raw_id]).to_pandas().sort_values(index)
    ids = frame[raw_id].to_numpy()
    if not np.array_equal(frame[index].to_numpy(), np.arange(size)) or len(np.unique(ids)) != size:
        raise ArtifactError(
            f"the {index} id map does not match the model's {size} {index}s one to one: "
            "train the model again on the processed folder it came from"
        )
    return ids


def _within(indices: np.ndarray, size: int) -> bool:
    return bool(indices.min() >= 0 and indices.max() < size)
