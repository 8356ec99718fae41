"""Ranking metrics, computed from the 0-based rank of each user's held-out item.

Conventions (He et al. 2017, and stated so results compare):
- rank: how many candidates score >= the held-out item, so ties count against the model
  (pessimistic; a model that scores everything equal gets rank = number of candidates - 1).
  A NaN score counts against the model too: a NaN held-out item ranks last and a NaN candidate
  ranks above it, so a broken model can never look good.
- HR@K: 1 if rank < K.  NDCG@K: 1 / log2(rank + 2) if rank < K (one relevant item, IDCG = 1).
- MAP@K: average precision at K normalised by min(K, number of relevant items); with one relevant
  item that is 1 / (rank + 1) if rank < K.  MRR: 1 / (rank + 1), not truncated.
- Recall@K over the full catalogue: hits / relevant items; with the leave-one-out split there is
  one relevant item, so it equals HR@K there, but over all unseen items instead of 100 candidates.
Every function returns the mean over users as a Python float.
"""

from __future__ import annotations

import torch


def pessimistic_rank(positive: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Rank of ``positive`` (N,) among ``candidates`` (N, M): the count scoring at least as high.

    Counted as M minus the candidates strictly below, because every comparison with NaN is
    false: ``>=`` would leave a NaN positive at rank 0, a perfect hit."""
    return candidates.shape[1] - (candidates < positive.unsqueeze(1)).sum(dim=1)


def hit_rate_at_k(ranks: torch.Tensor, k: int) -> float:
    return (ranks < k).float().mean().item()


def ndcg_at_k(ranks: torch.Tensor, k: int) -> float:
    gains = 1.0 / torch.log2(ranks.double() + 2.0)
    return torch.where(ranks < k, gains, 0.0).mean().item()


def map_at_k(ranks: torch.Tensor, k: int) -> float:
    return torch.where(ranks < k, 1.0 / (ranks.double() + 1.0), 0.0).mean().item()


def mrr(ranks: torch.Tensor) -> float:
    return (1.0 / (ranks.double() + 1.0)).mean().item()


def prefixed(prefix: str, metrics: dict[str, float]) -> dict[str, float]:
    """``hr@10`` -> ``test_hr@10``: one namespace per split in logs and metrics.json."""
    return {f"{prefix}_{key}": value for key, value in metrics.items()}


def ranking_metrics(ranks: torch.Tensor, k: int) -> dict[str, float]:
    return {
        f"hr@{k}": hit_rate_at_k(ranks, k),
        f"ndcg@{k}": ndcg_at_k(ranks, k),
        f"map@{k}": map_at_k(ranks, k),
        "mrr": mrr(ranks),
    }
