"""Both evaluation views on a model whose scores are known in advance."""

import torch
from torch import nn

from training import evaluate
from training.data import HoldoutTensors
from training.evaluate import (
    evaluate_full_catalogue,
    evaluate_holdout,
    full_catalogue_ranks,
    holdout_ranks,
)
from training.models import build_model


class ItemIdScore(nn.Module):
    """Scores an item by its id: the ranking of any candidate set is known by hand."""

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return items.float()


def test_holdout_ranks_against_the_sampled_candidates():
    holdout = HoldoutTensors(
        users=torch.tensor([0, 1]),
        items=torch.tensor([9, 3]),
        negatives=torch.tensor([[1, 2, 3], [4, 5, 1]]),
        timestamps=torch.zeros(2, dtype=torch.long),
    )
    metrics = evaluate_holdout(ItemIdScore(), holdout, k=2)
    # user 0: item 9 beats all three (rank 0); user 1: items 4 and 5 beat item 3 (rank 2)
    assert metrics["hr@2"] == 0.5
    assert metrics["mrr"] == (1 + 1 / 3) / 2


def test_full_catalogue_skips_seen_items():
    holdout = HoldoutTensors(
        users=torch.tensor([0, 1]),
        items=torch.tensor([5, 7]),
        negatives=torch.zeros(2, 1).long(),
        timestamps=torch.zeros(2, dtype=torch.long),
    )
    seen_users = torch.tensor([1, 0, 0, 1])
    seen_items = torch.tensor([9, 8, 6, 8])
    ranks = full_catalogue_ranks(ItemIdScore(), holdout, seen_users, seen_items, n_items=10)
    # user 0: unseen items above 5 are 7 and 9 -> rank 2; user 1: only nothing above 7 but
    # 9 and 8 are seen -> rank 0
    assert ranks.tolist() == [2, 0]
    metrics = evaluate_full_catalogue(ItemIdScore(), holdout, seen_users, seen_items, 10, k=1)
    assert metrics == {"full_recall@1": 0.5, "full_ndcg@1": 0.5}


class NaNForItem(ItemIdScore):
    """Item 5 scores NaN: a held-out item with no score must rank last, not first."""

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        scores = super().forward(users, items)
        return torch.where(items == 5, float("nan"), scores)


def test_a_nan_score_ranks_last_in_both_views():
    holdout = HoldoutTensors(
        users=torch.tensor([0, 1]),
        items=torch.tensor([5, 7]),
        negatives=torch.tensor([[1, 2, 3], [5, 1, 2]]),
        timestamps=torch.zeros(2, dtype=torch.long),
    )
    # user 0's held-out item is NaN: worst of 3 negatives; user 1 has a NaN negative above it
    assert evaluate_holdout(NaNForItem(), holdout, k=1)["mrr"] == (1 / 4 + 1 / 2) / 2
    seen_users, seen_items = torch.tensor([0]), torch.tensor([9])
    ranks = full_catalogue_ranks(NaNForItem(), holdout, seen_users, seen_items, n_items=10)
    # user 0: all 9 other items count, even the seen one; user 1: items 8, 9 and NaN item 5
    assert ranks.tolist() == [9, 3]


def test_chunks_rank_as_one_pass(monkeypatch):
    """Evaluation runs in chunks of a fixed number of scores; where they end must not matter."""
    generator = torch.Generator().manual_seed(0)
    n_users, n_items = 30, 50
    model = build_model("neumf", n_users, n_items, 4, (16, 8)).eval()
    holdout = HoldoutTensors(
        users=torch.arange(n_users),
        items=torch.randint(n_items, (n_users,), generator=generator),
        negatives=torch.randint(n_items, (n_users, 20), generator=generator),
        timestamps=torch.zeros(n_users, dtype=torch.long),
    )
    seen_users = torch.randint(n_users, (200,), generator=generator)
    seen_items = torch.randint(n_items, (200,), generator=generator)

    def ranks(chunk: int) -> tuple[list[int], list[int]]:
        monkeypatch.setattr(evaluate, "_chunk_scores", lambda device: chunk)
        full = full_catalogue_ranks(model, holdout, seen_users, seen_items, n_items)
        return holdout_ranks(model, holdout).tolist(), full.tolist()

    one_pass = ranks(1 << 20)
    assert ranks(7 * 21) == one_pass  # 7 users' candidates a chunk; the catalogue: 1 user
    assert ranks(3 * n_items) == one_pass
