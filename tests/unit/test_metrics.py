"""Metrics against hand-computed values (conventions in training/metrics.py)."""

import math

import pytest
import torch

from training.metrics import (
    hit_rate_at_k,
    map_at_k,
    mrr,
    ndcg_at_k,
    pessimistic_rank,
    ranking_metrics,
)


def test_rank_counts_ties_against_the_model():
    positive = torch.tensor([0.5, 0.9, 0.1])
    candidates = torch.tensor([[0.1, 0.5, 0.7], [0.1, 0.2, 0.3], [0.1, 0.1, 0.1]])
    assert pessimistic_rank(positive, candidates).tolist() == [2, 0, 3]


def test_nan_scores_count_against_the_model():
    nan = float("nan")
    positive = torch.tensor([nan, 0.5, nan])
    candidates = torch.tensor([[0.1, 0.2, 0.3], [0.1, nan, 0.2], [nan, nan, nan]])
    assert pessimistic_rank(positive, candidates).tolist() == [3, 1, 3]


def test_hand_computed_fixture():
    ranks = torch.tensor([0, 1, 4, 12])
    # HR@5: ranks 0, 1, 4 are inside -> 3/4
    assert hit_rate_at_k(ranks, 5) == pytest.approx(0.75)
    # NDCG@5: (1 + 1/log2(3) + 1/log2(6) + 0) / 4
    expected_ndcg = (1 + 1 / math.log2(3) + 1 / math.log2(6)) / 4
    assert ndcg_at_k(ranks, 5) == pytest.approx(expected_ndcg)
    # MAP@5 with one relevant item: (1 + 1/2 + 1/5 + 0) / 4
    assert map_at_k(ranks, 5) == pytest.approx((1 + 0.5 + 0.2) / 4)
    # MRR is not truncated: (1 + 1/2 + 1/5 + 1/13) / 4
    assert mrr(ranks) == pytest.approx((1 + 0.5 + 0.2 + 1 / 13) / 4)


def test_cut_off_excludes_rank_k_itself():
    ranks = torch.tensor([10])
    assert hit_rate_at_k(ranks, 10) == 0.0
    assert ndcg_at_k(ranks, 10) == 0.0
    assert hit_rate_at_k(ranks, 11) == 1.0


def test_constant_scores_get_the_worst_rank():
    scores = torch.zeros(4, 100)
    ranks = pessimistic_rank(scores[:, 0], scores[:, 1:])
    assert ranks.tolist() == [99] * 4
    assert ranking_metrics(ranks, 10)["hr@10"] == 0.0


def test_ranking_metrics_names():
    assert set(ranking_metrics(torch.tensor([0]), 10)) == {"hr@10", "ndcg@10", "map@10", "mrr"}
