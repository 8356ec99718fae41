"""Evaluation throughput: test users ranked per second against how many users are scored at
once, for lesson 06's performance analysis, on the CPU or a CUDA device.

Both passes of the evaluation stage are timed (``training.evaluate``): "sampled" ranks each
held-out item among its sampled negatives, "full catalogue" among every item the user has not
seen (returning the stage's top-10 lists too). The number of users a batch changes the speed and
the memory a pass needs, never the ranks. ``benchmarks/evaluation_speed.py`` prints the table.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence

import pandas as pd
import torch
from torch import nn

from evaluation.stage import TOP_N
from training.data import TrainingData
from training.evaluate import full_catalogue_pass, holdout_ranks

PASSES = ("sampled", "full catalogue")
COLUMNS = ["pass", "users_per_batch", "seconds", "users_per_s", "device"]


def measure(
    model: nn.Module,
    data: TrainingData,
    users_per_batch: Sequence[int],
    repeats: int = 3,
    *,
    passes: Sequence[str] = PASSES,
) -> pd.DataFrame:
    """One row per pass and batch size: the best of ``repeats`` timings of the pass over every
    test user (the best, as the others only add noise from the machine: the work is the same).
    The model and ``data`` must be on the same device; that device is timed. Validation
    positives count as seen, as in the evaluation stage."""
    for value in users_per_batch:
        if value < 1:
            raise ValueError(f"users_per_batch must be positive numbers of users, got {value!r}")
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats!r}")
    unknown = sorted(set(passes) - set(PASSES))
    if unknown:
        raise ValueError(f"unknown pass(es) {unknown}; known: {', '.join(PASSES)}")
    device = data.users.device
    seen = data.with_validation_merged()
    runs: dict[str, Callable[[int], object]] = {
        "sampled": lambda batch: holdout_ranks(model, data.test, users_per_batch=batch),
        "full catalogue": lambda batch: full_catalogue_pass(
            model, data.test, seen.users, seen.items, data.n_items, TOP_N, users_per_batch=batch
        ),
    }
    was_training = model.training
    model.eval()
    try:
        rows = []
        for name in passes:
            for batch in users_per_batch:
                run = functools.partial(runs[name], batch)
                seconds = _best_seconds(run, device, repeats)
                rows.append([name, batch, seconds, len(data.test.users) / seconds, device.type])
    finally:
        model.train(was_training)
    return pd.DataFrame(rows, columns=COLUMNS)


def _best_seconds(run: Callable[[], object], device: torch.device, repeats: int) -> float:
    """CUDA runs asynchronously: the clock stops once the device has finished, not when the
    kernels were queued."""
    best = math.inf
    for _ in range(repeats):
        _synchronize(device)
        started = time.perf_counter()
        run()
        _synchronize(device)
        best = min(best, time.perf_counter() - started)
    return best


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
