"""Top-k recommendations from a model folder: what an endpoint answers with.

A score is the model's raw output, a logit. Every loss the course trains with (bce, bpr,
softmax) ranks by it, but only under bce is ``sigmoid(score)`` a probability, so the logit is
the one number that means the same for every model. Items the user interacted with in training
or validation (``seen_items.parquet``) are never recommended.

Ranking is exact and deterministic: every unseen item is scored (:mod:`inference.scoring`), and
equal scores are ordered by the catalogue's item index, lower first, also at the k-th place. A
user the model never saw gets the most popular items (training interactions, ties again by
index) with no score, marked as a popularity fallback, unless the caller turns the fallback off.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import torch

from inference.scoring import CatalogueScorer
from preprocessing.schema import ITEMS, USERS
from training.artifacts import (
    SEEN_ITEMS,
    SEEN_ITEMS_FILE,
    ArtifactError,
    load_model,
    read_artifact_table,
)
from training.precision import bf16_pays_on_cpu

POPULARITY = "popularity"
# How many more items than k a bf16 pass hands to the fp32 ranking: a bf16 score is good to
# about three digits, far finer than the gap between the 10th and the 74th item of a user.
SHORTLIST = 64


class UnknownUserError(LookupError):
    """The user id is not one the model was trained on, and the fallback is off."""

    def __init__(self, user_id: object) -> None:
        super().__init__(
            f"unknown user_id {user_id!r}: the model knows only its training users "
            "(leave the popularity fallback on to answer new users)"
        )
        self.user_id = user_id


class UnknownItemError(LookupError):
    """The item id is not in the model's catalogue."""

    def __init__(self, item_id: object) -> None:
        super().__init__(f"unknown item_id {item_id!r}: not in the model's catalogue")


class InvalidKError(ValueError):
    """k is outside 1..n_items."""


class NonFiniteScoresError(ArithmeticError):
    """The model scored some of a user's candidates NaN or infinite, so it cannot rank them.

    Its weights are finite (``load_model`` checks), so they are large enough to overflow."""


@dataclass(frozen=True)
class Query:
    user_id: int
    k: int = 10
    fallback: bool = True


@dataclass(frozen=True)
class Ranking:
    """One user's answer: (item id, score) best first; the score is None in a fallback."""

    user_id: int
    items: list[tuple[int, float | None]]
    fallback: Literal["popularity"] | None = None


@dataclass(frozen=True)
class Item:
    item_id: int
    title: str | None
    n_train: int  # training interactions: the popularity the fallback ranks by
    mean_rating: float | None


class SeenItems:
    """Each user's seen item indices in CSR form, on the scoring device: a few bytes per pair,
    and a batch's mask is gathered there without copying constant data per request."""

    def __init__(self, users: np.ndarray, items: np.ndarray, n_users: int, device) -> None:
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(users, minlength=n_users), out=indptr[1:])
        self.indptr = torch.as_tensor(indptr, device=device)
        order = np.argsort(users, kind="stable")
        self.indices = torch.as_tensor(items[order].astype(np.int64), device=device)

    def counts(self, users: torch.Tensor) -> torch.Tensor:
        return self.indptr[users + 1] - self.indptr[users]

    def mask(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(row in the batch, item index) of every seen pair of ``users``."""
        starts, counts = self.indptr[users], self.counts(users)
        rows = torch.repeat_interleave(torch.arange(len(users), device=users.device), counts)
        first_of_row = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
        offsets = torch.arange(len(rows), device=users.device) - first_of_row
        return rows, self.indices[torch.repeat_interleave(starts, counts) + offsets]


class Recommender:
    """A trained model with its id maps, seen items and catalogue, ready to rank all items."""

    def __init__(
        self,
        model: torch.nn.Module,
        user_ids: np.ndarray,
        items: pa.Table,
        seen: tuple[np.ndarray, np.ndarray],
        device: torch.device,
        rows_per_pass: int | None = None,
        model_name: str = "ncf",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self._model = model.eval()
        self.model_name = model_name
        self._scorer = CatalogueScorer(model, rows_per_pass, dtype)
        self._user_index = {user_id: index for index, user_id in enumerate(user_ids.tolist())}
        self._item_ids = items["item_id"].to_numpy()
        self._item_index = {item_id: index for index, item_id in enumerate(self._item_ids.tolist())}
        self._items = items
        n_train = items["n_train"].to_numpy()
        self._popular = self._item_ids[np.lexsort((np.arange(len(n_train)), -n_train))]
        self._seen = SeenItems(*seen, len(user_ids), device)
        self._device = device

    @property
    def n_items(self) -> int:
        return len(self._item_ids)

    @property
    def n_users(self) -> int:
        return len(self._user_index)

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def precision(self) -> str:
        return "fp32" if self._scorer.exact else "bf16 shortlist, fp32 ranking"

    @classmethod
    def from_folder(
        cls,
        folder: Path,
        device: torch.device | str | None = None,
        rows_per_pass: int | None = None,
        precision: str = "fp32",
    ) -> Recommender:
        """Load a model folder (an unpacked ``model.tar.gz``); the GPU when there is one.

        ``precision``: ``fp32``; ``bf16`` for the tower's pass; ``auto``: bf16 on a CPU with bf16
        units for a model with an MLP tower (``training.precision.bf16_pays_on_cpu``)."""
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        model, config = load_model(folder, device)
        if precision == "auto":
            precision = "bf16" if device.type == "cpu" and bf16_pays_on_cpu(model) else "fp32"
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be fp32, bf16 or auto, got {precision!r}")
        n_users, n_items = config["architecture"]["n_users"], config["architecture"]["n_items"]
        id_maps = config.get("data", {}).get("id_maps")
        if not isinstance(id_maps, dict) or not {"users", "items"} <= id_maps.keys():
            raise ArtifactError(
                f"{folder} config.json names no user and item id maps (data.id_maps): "
                "train the model again"
            )
        users = _by_index(read_artifact_table(folder / id_maps["users"], USERS), "user", n_users)
        items = _by_index(read_artifact_table(folder / id_maps["items"], ITEMS), "item", n_items)
        seen = read_artifact_table(folder / SEEN_ITEMS_FILE, SEEN_ITEMS)
        seen_users, seen_items = seen["user"].to_numpy(), seen["item"].to_numpy()
        if seen.num_rows and not (_within(seen_users, n_users) and _within(seen_items, n_items)):
            raise ArtifactError(f"{folder / SEEN_ITEMS_FILE} names users or items the model lacks")
        return cls(
            model,
            users["user_id"].to_numpy(),
            items,
            (seen_users, seen_items),
            device,
            rows_per_pass,
            config["architecture"]["model"],
            torch.bfloat16 if precision == "bf16" else torch.float32,
        )

    def recommend(self, user_id: int, k: int = 10) -> list[tuple[int, float]]:
        """The k best unseen items of a known user as (item id, score), best first; a user with
        fewer than k unseen items gets them all."""
        return self.rank([Query(user_id, k, fallback=False)])[0].items  # type: ignore[return-value]

    @property
    def model(self) -> torch.nn.Module:
        return self._model

    def user_ids(self) -> list[int]:
        """The raw ids of the users the model knows, in its index order."""
        return list(self._user_index)

    def first_ids(self) -> tuple[int, int]:
        """A user id and an item id the model knows: examples for its API's document."""
        return next(iter(self._user_index)), int(self._item_ids[0])

    def check(self, queries: Sequence[Query]) -> None:
        """InvalidKError for a k outside the catalogue, UnknownUserError for an unknown user
        whose query has the fallback off."""
        for query in queries:
            if not 1 <= query.k <= self.n_items:
                raise InvalidKError(
                    f"k must be between 1 and {self.n_items} (the catalogue), got {query.k}"
                )
            if not query.fallback and query.user_id not in self._user_index:
                raise UnknownUserError(query.user_id)

    def rank(self, queries: Sequence[Query]) -> list[Ranking]:
        """Every query answered, in order, with the known users scored in one batched pass;
        ``check``'s errors before anything is scored."""
        self.check(queries)
        known = [q for q in queries if q.user_id in self._user_index]
        ranked = iter(self._top_k(known))
        return [
            next(ranked) if query.user_id in self._user_index else self._popularity(query)
            for query in queries
        ]

    def _popularity(self, query: Query) -> Ranking:
        items = [(int(item_id), None) for item_id in self._popular[: query.k]]
        return Ranking(query.user_id, items, POPULARITY)

    @torch.inference_mode()
    def _top_k(self, queries: Sequence[Query]) -> list[Ranking]:
        if not queries:
            return []
        index = [self._user_index[query.user_id] for query in queries]
        users = torch.tensor(index, device=self._device)
        scores = self._scorer.scores(users)
        rows, columns = self._seen.mask(users)
        scores[rows, columns] = 0.0
        finite = torch.isfinite(scores).all(dim=1)
        if not bool(finite.all()):
            row = int(torch.nonzero(~finite)[0])
            broken = int((~torch.isfinite(scores[row])).sum())
            raise NonFiniteScoresError(
                f"the model gave non-finite scores to {broken} of the unseen items of user "
                f"{queries[row].user_id}: its weights are finite but large enough to overflow "
                "float32, so it cannot rank them; retrain it (a lower --learning-rate or some --l2)"
            )
        scores[rows, columns] = float("-inf")
        unseen = (self.n_items - self._seen.counts(users)).tolist()
        kept = [min(query.k, left) for query, left in zip(queries, unseen, strict=True)]
        if self._scorer.exact:
            values, indices = _ordered_top_k(scores, max(kept))
        else:
            values, indices = self._reranked(users, scores, max(kept))
        values, indices = values.cpu().tolist(), indices.cpu().numpy()
        return [
            Ranking(
                query.user_id,
                list(zip(self._item_ids[indices[row, :k]].tolist(), values[row][:k], strict=True)),
            )
            for row, (query, k) in enumerate(zip(queries, kept, strict=True))
        ]

    def _reranked(
        self, users: torch.Tensor, scores: torch.Tensor, k: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The top ``k`` by the model's fp32 scores among a shortlist of the approximate ones:
        ``SHORTLIST`` more than k, each item's exact score from the model's forward pass."""
        shortlist = min(self.n_items, k + SHORTLIST)
        _, candidates = torch.topk(scores, shortlist, dim=1)
        candidates = candidates.sort(dim=1).values  # index order: ties stay by index below
        exact = self._model(users, candidates).float()
        exact[scores.gather(1, candidates) == float("-inf")] = float("-inf")  # seen stays out
        values, positions = _ordered_top_k(exact, k)
        return values, candidates.gather(1, positions)

    def score(self, pairs: Sequence[tuple[int, int]]) -> list[float]:
        """The model's logit for each (user id, item id) pair; any unknown id is an error."""
        users, items = [], []
        for user_id, item_id in pairs:
            if user_id not in self._user_index:
                raise UnknownUserError(user_id)
            if item_id not in self._item_index:
                raise UnknownItemError(item_id)
            users.append(self._user_index[user_id])
            items.append(self._item_index[item_id])
        with torch.inference_mode():
            scores = self._model(
                torch.tensor(users, device=self._device), torch.tensor(items, device=self._device)
            )
        return scores.float().cpu().tolist()

    def item(self, item_id: int) -> Item:
        index = self._item_index.get(item_id)
        if index is None:
            raise UnknownItemError(item_id)
        row = {
            name: self._items[name][index].as_py() for name in ("title", "n_train", "mean_rating")
        }
        return Item(item_id, **row)

    def titles(self, item_ids: Sequence[int]) -> list[str | None]:
        column = self._items["title"]
        return [column[self._item_index[item_id]].as_py() for item_id in item_ids]


def _ordered_top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest of each row, best first, equal scores by lower index, exactly.

    ``topk`` returns ties in no set order and may keep either of two items tied at the k-th
    place. Within the k it is reordered by (score, index); a row with a tie across the k-th place
    (rare for a trained model) is sorted whole with a stable sort instead."""
    values, indices = torch.topk(scores, k, dim=1)
    by_index = torch.argsort(indices, dim=1)
    indices, values = indices.gather(1, by_index), values.gather(1, by_index)
    order = torch.sort(values, dim=1, descending=True, stable=True).indices
    values, indices = values.gather(1, order), indices.gather(1, order)
    straddling = (scores >= values[:, -1:]).sum(dim=1) > k
    for row in torch.nonzero(straddling).flatten().tolist():
        whole = torch.sort(scores[row], descending=True, stable=True)
        values[row], indices[row] = whole.values[:k], whole.indices[:k]
    return values, indices


def _by_index(table: pa.Table, index: str, size: int) -> pa.Table:
    """The id map's rows ordered by dense index, after checking they cover 0..size-1 one to one."""
    table = table.sort_by(index)
    raw_ids = table[f"{index}_id"].to_numpy()
    if (
        not np.array_equal(table[index].to_numpy(), np.arange(size))
        or len(np.unique(raw_ids)) != size
    ):
        raise ArtifactError(
            f"the {index} id map does not match the model's {size} {index}s one to one: "
            "train the model again on the processed folder it came from"
        )
    return table


def _within(indices: np.ndarray, size: int) -> bool:
    return bool(indices.min() >= 0 and indices.max() < size)
