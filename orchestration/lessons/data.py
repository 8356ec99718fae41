"""A lesson's processed split, made by the preprocessing entry point as a plain process."""

from __future__ import annotations

from pathlib import Path

from orchestration.lessons.joblog import captured, matching_lines
from orchestration.main_job.processes import run_preprocessing


def preprocess(
    output_dir: Path, dataset: str, *, data_dir: Path | None, cache_dir: Path, log: Path
) -> float:
    """Write ``dataset``'s processed split to ``output_dir``: local files from ``data_dir``,
    else the official download into ``cache_dir``. The entry point's output (its full
    validation report, which lesson 02 explains) goes to ``log``; the report's one-line summary
    is printed. Returns the seconds it took."""
    flags = ["--dataset", dataset, "--no-progress"]
    with captured(log):
        seconds = run_preprocessing(output_dir, flags, data_dir=data_dir, cache_dir=cache_dir)
    print("\n".join(matching_lines(log, "Validation of ")))
    return seconds
