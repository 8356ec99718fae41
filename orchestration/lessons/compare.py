"""Models beside the baselines they must beat (``training.baselines``): one table, 4 decimals."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

METRICS = ("val_hr@10", "test_hr@10", "test_ndcg@10")


def against_baselines(
    models: Mapping[str, Mapping[str, float]],
    baselines: Mapping[str, Mapping[str, float]],
    metrics: tuple[str, ...] = METRICS,
) -> pd.DataFrame:
    """One row a model, then one a baseline; a metric a run did not record (a job without a
    validation hold-out) is left empty rather than guessed."""
    named = {**models, **{f"{name} (baseline)": figures for name, figures in baselines.items()}}
    rows = {name: [figures.get(metric) for metric in metrics] for name, figures in named.items()}
    table = pd.DataFrame.from_dict(rows, orient="index", columns=list(metrics))
    return table.astype(float).round(4)
