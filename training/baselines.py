"""The baselines every neural model is shown beside: most-popular and random, measured with the
models' own protocol (each user's held-out item ranked against its sampled negatives, on the
validation and test hold-outs, ties against the baseline) and named as ``metrics.json`` names the
models' figures, so the numbers sit in one table. A model that cannot beat most-popular has
learned nothing about the user."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from training.data import TrainingData
from training.evaluate import evaluate_holdout
from training.metrics import prefixed, ranking_metrics

BASELINES = ("most-popular", "random")


class MostPopular(nn.Module):
    """Scores an item by its training interactions, whoever the user: a model in shape, so the
    models' evaluation code ranks it, pessimistic ties included."""

    def __init__(self, counts: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("counts", counts.float())

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.counts[items]


def expected_random_metrics(n_candidates: int, k: int) -> dict[str, float]:
    """The exact expectation under a uniformly random order of ``n_candidates``: the held-out
    item is equally likely at every 0-based rank, so it is the mean over all ranks."""
    return ranking_metrics(torch.arange(n_candidates), k)


def baseline_metrics(data_dir: Path, k: int = 10) -> dict[str, dict[str, float]]:
    """Each baseline's ``val_*`` (when the split has a validation hold-out) and ``test_*``
    metrics on a processed split, most-popular counting the train table's interactions."""
    data = TrainingData.load(data_dir, torch.device("cpu"))
    most_popular = MostPopular(torch.bincount(data.items, minlength=data.n_items))
    metrics: dict[str, dict[str, float]] = {name: {} for name in BASELINES}
    for split, holdout in (("val", data.validation), ("test", data.test)):
        if holdout is None:
            continue
        metrics["most-popular"] |= prefixed(split, evaluate_holdout(most_popular, holdout, k))
        n_candidates = 1 + holdout.negatives.shape[1]
        metrics["random"] |= prefixed(split, expected_random_metrics(n_candidates, k))
    return metrics
