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
    lines = ["| user | top items (score) |", "|---|---|"]
    for row in recommendations:
        items = ", ".join(f"{item['item_id']} ({item['score']:.2f})" for item in row["items"])
        lines.append(f"| {row['user_id']} | {items} |")
    return "\n".join(lines)


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
