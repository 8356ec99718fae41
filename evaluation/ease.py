"""EASE (Steck, WWW 2019, "Embarrassingly Shallow Autoencoders for Sparse Data"): the classic
baseline a neural recommender has to beat, fitted in closed form in seconds.

An item-item weight matrix B reconstructs each user's interaction row: scores = X B, with
diag(B) = 0 so an item cannot explain itself. Minimising ||X - X B||² + λ||B||² under that
constraint has the closed form

    G = XᵀX + λI,   P = G⁻¹,   B = -P / diag(P) (column j divided by P_jj),   diag(B) = 0.

:class:`Ease` scores (user, item) pairs like the NCF models and ``MostPopular``, so
``training/evaluate.py`` ranks it unchanged, sampled hold-out and full catalogue alike. B is dense,
n_items², so EASE suits catalogues up to some tens of thousands of items (ML-1M's 3,706 items: a
55 MB matrix).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from training.data import TrainingData
from training.evaluate import evaluate_holdout


def interaction_matrix(
    users: torch.Tensor, items: torch.Tensor, n_users: int, n_items: int
) -> torch.Tensor:
    """X: 1 where the user interacted with the item, 0 elsewhere (float32, dense); a repeated
    interaction counts once."""
    if users.shape != items.shape or users.dim() != 1:
        raise ValueError(
            f"users and items must be 1-D and the same length, one pair per interaction; got "
            f"shapes {tuple(users.shape)} and {tuple(items.shape)}"
        )
    if len(users) and (users.min() < 0 or users.max() >= n_users):
        raise ValueError(f"a user index lies outside [0, {n_users}): is n_users that of the split?")
    if len(items) and (items.min() < 0 or items.max() >= n_items):
        raise ValueError(
            f"an item index lies outside [0, {n_items}): is n_items that of the split?"
        )
    matrix = torch.zeros(n_users, n_items, device=users.device)
    matrix[users, items] = 1.0
    return matrix


def gram(interactions: torch.Tensor) -> torch.Tensor:
    """XᵀX in float64. The float32 product is exact (co-occurrence counts stay far below 2^24),
    and twice as fast as multiplying in float64."""
    return (interactions.T @ interactions).double()


def item_weights(gram_matrix: torch.Tensor, l2: float) -> torch.Tensor:
    """B from XᵀX for one λ, inverted in float64 (G is positive definite for λ > 0, so by
    Cholesky) and returned in float32 for scoring."""
    if not l2 > 0:
        raise ValueError(f"l2 is {l2}: EASE needs λ > 0 (λ = 0 leaves XᵀX singular)")
    identity = torch.eye(len(gram_matrix), dtype=gram_matrix.dtype, device=gram_matrix.device)
    precision = torch.cholesky_inverse(torch.linalg.cholesky(gram_matrix + l2 * identity))
    weights = -precision / precision.diagonal()
    weights.fill_diagonal_(0.0)
    return weights.float()


class Ease(nn.Module):
    """Scores an item by how well the user's other items predict it: a row of X B."""

    def __init__(self, interactions: torch.Tensor, weights: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("interactions", interactions)  # X (n_users, n_items)
        self.register_buffer("weights", weights)  # B (n_items, n_items)

    @classmethod
    def fit(
        cls,
        train_user_idx: torch.Tensor,
        train_item_idx: torch.Tensor,
        n_users: int,
        n_items: int,
        l2: float = 500.0,
    ) -> Ease:
        interactions = interaction_matrix(train_user_idx, train_item_idx, n_users, n_items)
        return cls(interactions, item_weights(gram(interactions), l2))

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """``users`` (N,) and ``items`` (N,) or (N, M): the score of each user's item(s). Each
        user's whole row X_u B is computed once and its candidates picked from it."""
        rows = self.interactions[users] @ self.weights
        return rows.gather(1, items.reshape(len(users), -1)).reshape(items.shape)


@dataclass(frozen=True)
class EaseTuning:
    """The λ with the best validation NDCG@k, and every λ's validation metrics."""

    l2: float
    table: list[dict[str, float]]


def tune_ease(data: TrainingData, l2_grid: Iterable[float], k: int = 10) -> EaseTuning:
    """Pick λ on the validation hold-out only, by NDCG@k as the NCF models' epochs are picked
    (``training/state.py``), so the test hold-out stays unseen until the one final figure.
    XᵀX is computed once; each λ costs one inversion."""
    if data.validation is None:
        raise ValueError("the split has no validation hold-out: λ cannot be tuned without one")
    grid = list(l2_grid)
    if not grid:
        raise ValueError("l2_grid is empty: give at least one λ to try")
    interactions = interaction_matrix(data.users, data.items, data.n_users, data.n_items)
    gram_matrix = gram(interactions)
    table = [
        {"l2": l2}
        | evaluate_holdout(Ease(interactions, item_weights(gram_matrix, l2)), data.validation, k)
        for l2 in grid
    ]
    best = max(table, key=lambda row: row[f"ndcg@{k}"])
    return EaseTuning(best["l2"], table)
