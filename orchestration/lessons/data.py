"""A lesson's processed split, made by the preprocessing entry point as a plain process."""

from __future__ import annotations

from pathlib import Path

from orchestration.main_job.processes import run_preprocessing


def preprocess(output_dir: Path, dataset: str, *, data_dir: Path | None, cache_dir: Path) -> float:
    """Write ``dataset``'s processed split to ``output_dir``: local files from ``data_dir``,
    else the official download into ``cache_dir``. Returns the seconds it took."""
    flags = ["--dataset", dataset, "--no-progress"]
    return run_preprocessing(output_dir, flags, data_dir=data_dir, cache_dir=cache_dir)
