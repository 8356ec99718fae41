"""The evaluation stage's plots, drawn from what ``evaluation.json`` holds and nothing else.

Headline figures are at the list length the stage used (``top_n``). A *family* is a candidate
alone or the seeds of a group (``gmf/seed0``, ``gmf/seed1``, … form ``gmf``): every plot shows a
family's mean, and its standard deviation over the seeds as error bars or a band. Families are
ordered by mean sampled HR@10, best first. Figures are built with ``matplotlib.figure.Figure``
(no pyplot), so drawing them touches no global state and needs no display: the same code runs
in the evaluation container and in a notebook.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

SEGMENT_ORDER = {
    "user_history": ("short", "medium", "long"),
    "item_popularity": ("head", "mid", "tail"),
}
SEGMENT_TITLES = {
    "user_history": "users by history length (thirds)",
    "item_popularity": "held-out items by popularity",
}
Summary = dict[str, Any]


def families(result: dict[str, Any]) -> dict[str, list[Summary]]:
    """Each family's member summaries, best mean sampled HR@10 first."""
    grouped: dict[str, list[Summary]] = {}
    for name, summary in result["candidates"].items():
        grouped.setdefault(name.split("/", 1)[0], []).append(summary)
    n = str(result["top_n"])
    return dict(sorted(grouped.items(), key=lambda item: -_mean_std(item[1], _reader("hr", n))[0]))


def _reader(metric: str, n: str) -> Callable[[Summary], float]:
    """Reads one headline figure: ``hr`` / ``ndcg`` (sampled) or ``recall`` (full catalogue)."""
    if metric == "recall":
        return lambda summary: summary["full_catalogue"]["recall"][n]
    return lambda summary: summary["sampled"][metric][n]


def _mean_std(members: list[Summary], read: Callable[[Summary], Any]) -> tuple[Any, Any]:
    """Mean and standard deviation (n - 1; 0 for a single member) of ``read`` over members."""
    values = np.array([read(member) for member in members], dtype=float)
    std = values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros_like(values[0])
    return values.mean(axis=0), std


def _sampled(result: dict[str, Any]) -> str:
    return f"1 held-out + {result['sampled_negatives']} sampled items"


def _label(name: str, members: list[Summary]) -> str:
    return f"{name} ({len(members)} seeds)" if len(members) > 1 else name


def comparison(result: dict[str, Any]) -> Figure:
    """The headline table as bars: sampled HR@10 and NDCG@10, full-catalogue recall@10."""
    grouped, n, sampled = families(result), result["top_n"], _sampled(result)
    names = [_label(name, members) for name, members in grouped.items()]
    figure = Figure(figsize=(13, 0.45 * len(names) + 1.8), layout="constrained")
    panels = [
        (_reader("hr", str(n)), f"HR@{n}, sampled ({sampled})"),
        (_reader("ndcg", str(n)), f"NDCG@{n}, sampled ({sampled})"),
        (_reader("recall", str(n)), f"recall@{n}, full catalogue"),
    ]
    for axes, (read, title) in zip(figure.subplots(1, 3, sharey=True), panels, strict=True):
        means, stds = zip(*(_mean_std(members, read) for members in grouped.values()), strict=True)
        positions = np.arange(len(names))[::-1]
        axes.barh(positions, means, xerr=stds, capsize=3, color="tab:blue", label="mean ± std")
        axes.set(title=title, xlabel="share of test users (0-1)", yticks=positions)
        axes.set_yticklabels(names)
        axes.legend(loc="lower right", fontsize="small")
    figure.suptitle(f"Models and baselines on the test hold-out ({result['test_users']} users)")
    return figure


def metrics_at_k(result: dict[str, Any]) -> Figure:
    """HR@K and NDCG@K for K = 1..k_max on the sampled protocol, a band of ± std over seeds."""
    k_values = np.arange(1, result["k_max"] + 1)
    figure = Figure(figsize=(12, 4), layout="constrained")
    for axes, metric in zip(figure.subplots(1, 2), ("hr", "ndcg"), strict=True):
        for name, members in families(result).items():
            mean, std = _mean_std(
                members, lambda s, m=metric: [s["sampled"][m][str(k)] for k in k_values]
            )
            line = axes.plot(k_values, mean, marker=".", label=_label(name, members))[0]
            axes.fill_between(k_values, mean - std, mean + std, color=line.get_color(), alpha=0.2)
        axes.set(
            title=f"{metric.upper()}@K, sampled protocol",
            xlabel="K (length of the recommended list, items)",
            ylabel=f"{metric.upper()}@K (mean over test users)",
        )
    figure.axes[0].legend(fontsize="small")
    return figure


def sampled_vs_full(result: dict[str, Any]) -> Figure:
    """Each family's sampled HR@10 against its full-catalogue recall@10: where the two views
    disagree on the distances between candidates."""
    n = result["top_n"]
    figure = Figure(figsize=(7, 5), layout="constrained")
    axes = figure.subplots()
    for name, members in families(result).items():
        x, x_std = _mean_std(members, _reader("hr", str(n)))
        y, y_std = _mean_std(members, _reader("recall", str(n)))
        axes.errorbar(x, y, xerr=x_std, yerr=y_std, marker="o", capsize=3, label=name)
    axes.set(
        title=f"Sampled vs full-catalogue view, at {n}",
        xlabel=f"HR@{n} among {_sampled(result)} (share of users)",
        ylabel=f"recall@{n} among all unseen items (share of users)",
    )
    axes.legend(fontsize="small")
    return figure


def segments(result: dict[str, Any]) -> Figure:
    """Sampled HR@10 per segment, one bar per family in each segment."""
    grouped, n = families(result), result["top_n"]
    figure = Figure(figsize=(13, 4), layout="constrained")
    for axes, (segmentation, order) in zip(
        figure.subplots(1, 2, sharey=True), SEGMENT_ORDER.items(), strict=True
    ):
        _segment_bars(axes, grouped, segmentation, order, f"hr@{n}")
    figure.axes[0].set_ylabel(f"HR@{n}, sampled (share of users)")
    figure.axes[0].legend(fontsize="small", ncols=2)
    figure.suptitle(f"HR@{n} by segment of the test users")
    return figure


def _segment_bars(
    axes: Axes,
    grouped: dict[str, list[Summary]],
    segmentation: str,
    order: tuple[str, ...],
    metric: str,
) -> None:
    first = next(iter(grouped.values()))[0]["segments"][segmentation]
    present = [segment for segment in order if segment in first]
    width = 0.8 / len(grouped)
    for index, (name, members) in enumerate(grouped.items()):
        mean, std = _mean_std(
            members,
            lambda s: [s["segments"][segmentation][seg][metric] for seg in present],
        )
        positions = np.arange(len(present)) + (index - (len(grouped) - 1) / 2) * width
        axes.bar(positions, mean, width, yerr=std, capsize=2, label=name)
    axes.set_xticks(np.arange(len(present)))
    axes.set_xticklabels([f"{seg}\n({first[seg]['users']} users)" for seg in present])
    axes.set(title=SEGMENT_TITLES[segmentation], xlabel="segment")


PLOTS: dict[str, Callable[[dict[str, Any]], Figure]] = {
    "comparison": comparison,
    "metrics_at_k": metrics_at_k,
    "sampled_vs_full": sampled_vs_full,
    "segments": segments,
}


def write_plots(result: dict[str, Any], folder: Path) -> list[Path]:
    """Every plot as ``<folder>/<name>.png``."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in PLOTS.items():
        path = folder / f"{name}.png"
        draw(result).savefig(path, dpi=100)
        written.append(path)
    return written
