"""The main job's results: a table per stage, sample recommendations, and the files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from orchestration.main_job.stages import Stage


def results_table(stages: list[Stage]) -> str:
    header = "| stage | HR@10 | NDCG@10 | MAP@10 | full recall@10 | time (s) |"
    lines = [header, "|---|---|---|---|---|---|"]
    for stage in stages:
        m = stage.metrics
        cells = [m.get(key) for key in ("hr@10", "ndcg@10", "map@10", "full_recall@10")]
        shown = ["" if value is None else f"{value:.4f}" for value in cells]
        lines.append(f"| {stage.name} | {' | '.join(shown)} | {stage.seconds:.1f} |")
    return "\n".join(lines)


def recommendations_table(recommendations: list[dict[str, Any]]) -> str:
    """One row a recommended item, best first: titles are too long to share a row."""
    lines = ["| user | rank | item | score |", "|---|---|---|---|"]
    for row in recommendations:
        for rank, item in enumerate(row["items"], start=1):
            lines.append(
                f"| {row['user_id']} | {rank} | {item_label(item)} | {item['score']:.2f} |"
            )
    return "\n".join(lines)


def item_label(item: dict[str, Any]) -> str:
    """``title (item id)``, or the bare id where the dataset has no titles."""
    title = item.get("title")
    return str(item["item_id"]) if title is None else f"{title} ({item['item_id']})"


def write_results(
    stages: list[Stage],
    recommendations: list[dict[str, Any]],
    results_dir: Path,
    args: argparse.Namespace,
    backend: str,
) -> None:
    results_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "dataset": args.dataset,
        "seed": args.seed,
        "ran_as": backend,
        "stages": [stage.__dict__ for stage in stages],
        "recommendations": recommendations,
    }
    (results_dir / "results.json").write_text(json.dumps(payload, indent=2) + "\n")
    tables = [results_table(stages), recommendations_table(recommendations)]
    (results_dir / "results.md").write_text("\n\n".join(tables) + "\n")
