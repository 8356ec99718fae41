"""Lesson 06's tables, read from ``evaluation.json`` alone: the headline figures per candidate,
per family (mean ± standard deviation over its seeds, as the stage's plots group them), and the
sampled and full-catalogue views side by side."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from evaluation.plots import families

Summary = dict[str, Any]
HEADLINE: dict[str, Callable[[Summary], float]] = {
    "HR@10": lambda s: s["sampled"]["hr"]["10"],
    "NDCG@10": lambda s: s["sampled"]["ndcg"]["10"],
    "MRR": lambda s: s["sampled"]["mrr"],
    "full recall@10": lambda s: s["full_catalogue"]["recall"]["10"],
    "coverage@10": lambda s: s["coverage@10"],
    "popularity@10": lambda s: s["popularity_percentile@10"],
}


def headline(result: dict[str, Any]) -> pd.DataFrame:
    """One row per candidate, one column per headline figure."""
    rows = {
        name: {column: read(summary) for column, read in HEADLINE.items()}
        for name, summary in result["candidates"].items()
    }
    return pd.DataFrame.from_dict(rows, orient="index")


def by_family(result: dict[str, Any]) -> pd.DataFrame:
    """One row per family, best mean HR@10 first: its seeds and "mean ± std" of each figure
    (a baseline, one member, shows a spread of 0)."""
    rows = {}
    for family, members in families(result).items():
        frame = pd.DataFrame([{c: read(m) for c, read in HEADLINE.items()} for m in members])
        spread = frame.std().fillna(0.0)
        rows[family] = {"seeds": len(members)} | {
            column: f"{frame[column].mean():.4f} ± {spread[column]:.4f}" for column in HEADLINE
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def best_model_family(result: dict[str, Any]) -> str:
    """The family of trained models (``family/seed<n>`` candidates) with the best mean HR@10."""
    seeded = {name.split("/", 1)[0] for name in result["candidates"] if "/" in name}
    return next(family for family in families(result) if family in seeded)


def views(result: dict[str, Any]) -> pd.DataFrame:
    """Each candidate's sampled HR@10 and full-catalogue recall@10, and its place in each view
    (ties share the better place), ordered by the sampled place."""
    figures = headline(result)
    table = figures[["HR@10", "full recall@10"]].rename(columns={"HR@10": "sampled HR@10"})
    table["sampled rank"] = table["sampled HR@10"].rank(ascending=False, method="min").astype(int)
    table["full rank"] = table["full recall@10"].rank(ascending=False, method="min").astype(int)
    return table.sort_values("sampled rank")
