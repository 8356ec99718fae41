"""Evaluation in one batched pass: every user's candidates are scored together, no Python loop
over users. Two views: the paper's 1-positive-vs-sampled-negatives ranking, and the harder
ranking against the full catalogue of items the user has not interacted with in training."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from training.cpu_memory import keep_freed_memory
from training.data import HoldoutTensors, TrainingData
from training.metrics import pessimistic_rank, ranking_metrics


def _chunk_scores(device: torch.device) -> int:
    """Scores per chunk. On CPU, 2^15 pairs through a 128-wide layer make a 16 MB activation:
    under the 32 MB above which glibc maps every block afresh (``training/cpu_memory.py``), so
    each chunk reuses the previous one's pages; larger chunks fault in fresh pages and smaller
    ones pay per-chunk overhead (the chunk sizes measured: docs/benchmarks.md). A GPU needs far
    larger chunks to keep its cores busy, and 2^22 pairs through a 256-wide layer fit in 4 GB."""
    return 1 << 22 if device.type == "cuda" else 1 << 15


def _users_per_chunk(
    users_per_batch: int | None, scores_per_user: int, device: torch.device
) -> int:
    """``users_per_batch`` when given (lesson 06 measures throughput against it), else as many
    users as fill ``_chunk_scores``. A user's scores depend on that user alone, so the ranks
    are the same whatever the chunk."""
    if users_per_batch is None:
        return max(1, _chunk_scores(device) // scores_per_user)
    if users_per_batch < 1:
        raise ValueError(
            f"users_per_batch must be a positive number of users, got {users_per_batch!r}"
        )
    return users_per_batch


@torch.no_grad()
def holdout_ranks(
    model: nn.Module, holdout: HoldoutTensors, *, users_per_batch: int | None = None
) -> torch.Tensor:
    """Rank of each held-out item among its sampled negatives (pessimistic ties); chunked by
    ``users_per_batch`` users (None: ``_chunk_scores``'s share)."""
    candidates = torch.cat([holdout.items.unsqueeze(1), holdout.negatives], dim=1)
    rows = _users_per_chunk(users_per_batch, candidates.shape[1], candidates.device)
    ranks = []
    for start in range(0, len(candidates), rows):
        scores = model(holdout.users[start : start + rows], candidates[start : start + rows])
        ranks.append(pessimistic_rank(scores[:, 0].float(), scores[:, 1:].float()))
    return torch.cat(ranks)


def evaluate_holdout(model: nn.Module, holdout: HoldoutTensors, k: int) -> dict[str, float]:
    was_training = model.training
    model.eval()
    try:
        return ranking_metrics(holdout_ranks(model, holdout), k)
    finally:
        model.train(was_training)


def full_catalogue_ranks(
    model: nn.Module,
    holdout: HoldoutTensors,
    seen_users: torch.Tensor,
    seen_items: torch.Tensor,
    n_items: int,
) -> torch.Tensor:
    """Rank of each held-out item among all items the user has not seen (pessimistic ties)."""
    return full_catalogue_pass(model, holdout, seen_users, seen_items, n_items)[0]


@torch.no_grad()
def full_catalogue_pass(
    model: nn.Module,
    holdout: HoldoutTensors,
    seen_users: torch.Tensor,
    seen_items: torch.Tensor,
    n_items: int,
    top_k: int = 0,
    *,
    users_per_batch: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The held-out items' ranks among each user's unseen items and, in the same pass, the
    ``top_k`` unseen items each user would be recommended (N, top_k), best first. Chunked by
    ``users_per_batch`` users (None: ``_chunk_scores``'s share)."""
    device = holdout.users.device
    rows = _users_per_chunk(users_per_batch, n_items, device)
    order = torch.argsort(seen_users)
    seen_users, seen_items = seen_users[order], seen_items[order]
    all_items = torch.arange(n_items, device=device)
    ranks, tops = [], []
    for start in range(0, len(holdout.users), rows):
        users = holdout.users[start : start + rows]
        scores = model(users, all_items.expand(len(users), n_items)).float()
        target = scores.gather(1, holdout.items[start : start + rows].unsqueeze(1)).squeeze(1)
        _mask_seen(scores, users, seen_users, seen_items)
        ranks.append(pessimistic_rank(target, scores) - 1)  # the target counts itself
        tops.append(scores.topk(top_k, dim=1).indices)
    return torch.cat(ranks), torch.cat(tops)


def _mask_seen(
    scores: torch.Tensor, users: torch.Tensor, seen_users: torch.Tensor, seen_items: torch.Tensor
) -> None:
    lo = torch.searchsorted(seen_users, users)
    hi = torch.searchsorted(seen_users, users, right=True)
    counts = hi - lo
    row = torch.repeat_interleave(torch.arange(len(users), device=users.device), counts)
    offsets = torch.arange(int(counts.sum()), device=users.device) - torch.repeat_interleave(
        torch.cumsum(counts, 0) - counts, counts
    )
    scores[row, seen_items[torch.repeat_interleave(lo, counts) + offsets]] = float("-inf")


def evaluate_full_catalogue(
    model: nn.Module,
    holdout: HoldoutTensors,
    seen_users: torch.Tensor,
    seen_items: torch.Tensor,
    n_items: int,
    k: int,
) -> dict[str, float]:
    was_training = model.training
    model.eval()
    try:
        ranks = full_catalogue_ranks(model, holdout, seen_users, seen_items, n_items)
    finally:
        model.train(was_training)
    metrics = ranking_metrics(ranks, k)
    return {f"full_recall@{k}": metrics[f"hr@{k}"], f"full_ndcg@{k}": metrics[f"ndcg@{k}"]}


def evaluate_test_catalogue(model: nn.Module, data: TrainingData, k: int) -> dict[str, float]:
    """The catalogue view of the test set; validation positives count as seen."""
    seen = data.with_validation_merged()
    return evaluate_full_catalogue(model, data.test, seen.users, seen.items, data.n_items, k)


def evaluate_test(model: nn.Module, data: TrainingData, k: int) -> dict[str, float]:
    """Test metrics on both views."""
    return evaluate_holdout(model, data.test, k) | evaluate_test_catalogue(model, data, k)


def evaluate_artifact(model_dir: Path, data_dir: Path, k: int = 10) -> dict[str, float]:
    """Score a saved model folder on a processed split, as serving would load it."""
    from training.artifacts import ArtifactError, load_model

    keep_freed_memory()  # the evaluation stage runs in the orchestrating process, without fit
    model, config = load_model(model_dir)
    data = TrainingData.load(data_dir, torch.device("cpu"))
    if not data.trained(config):
        raise ArtifactError(
            f"{model_dir} was trained on another processed split than {data_dir} "
            "(manifest checksums differ); evaluate it on the data it was trained on."
        )
    return evaluate_test(model, data, k)
