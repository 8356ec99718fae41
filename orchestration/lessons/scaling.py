"""Preprocessing time and memory against data size, for lesson 02.

Synthetic MovieLens-like ratings of each size go through the real loader, validation, split and
writer, each size in a fresh process: a process's peak resident set never comes down, and pandas
and pyarrow keep freed memory for reuse, so only a process of its own shows what one size needs.
``benchmarks/preprocessing_scale.py`` measures the real releases' sizes the same way, with this
module's child.

    python -m orchestration.lessons.scaling RAW OUT RESULT   # the child: one file, figures as JSON
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from preprocessing.manifest import write_split
from preprocessing.ratings import load_ratings
from preprocessing.split import leave_one_out
from preprocessing.synthetic import generate, scaled_shape, write_raw

RAW_FORMAT = "ml-csv"  # ratings.csv, the format of ML-20M and later, the large releases
_MB = 2**20


def preprocessing_scaling(sizes: Sequence[int], work: Path, seed: int = 0) -> pd.DataFrame:
    """One row per size: the ratings generated, the rows the loader kept, the seconds to load and
    validate, split, write and all three, and the process's peak RSS in MB.

    Each size's ratings are shaped like a MovieLens release of that size
    (``synthetic.scaled_shape``) and written under ``work`` as a raw file first, untimed; its
    processed split goes beside it. The peak includes the interpreter, pandas and pyarrow (about
    110 MB), which is what a container for the stage needs too.
    """
    if not sizes:
        raise ValueError("sizes is empty: give the numbers of ratings to time, e.g. [100_000].")
    rows = []
    for size in sizes:
        folder = work / f"ratings-{size}"
        raw = write_raw(generate(*scaled_shape(size), seed=seed), folder, RAW_FORMAT)
        figures = measure_preprocessing(raw, folder / "processed")
        stages = figures["load_validate_s"] + figures["split_s"] + figures["write_s"]
        rows.append({"ratings": size, **figures, "total_s": stages})
    return pd.DataFrame(rows)[
        ["ratings", "rows", "load_validate_s", "split_s", "write_s", "total_s", "peak_rss_mb"]
    ]


def measure_preprocessing(raw: Path, out: Path) -> dict[str, float]:
    """Load and validate ``raw`` (a ``ratings.csv``), split it and write the split to ``out``,
    in a fresh process: the rows kept, each stage's seconds and the process's peak RSS in MB."""
    # Imported here: the child imports this module, and the runner's imports (torch among them)
    # would swell the peak it measures.
    from orchestration.main_job.processes import run_stage

    with tempfile.TemporaryDirectory() as folder:
        result = Path(folder) / "figures.json"
        run_stage(__name__, [str(raw), str(out), str(result)], {})
        return json.loads(result.read_text())


def peak_rss_bytes() -> int:
    """This process's own peak resident set so far.

    On Linux ``ru_maxrss`` also holds the peak of the parent at the moment it started this
    process (exec keeps the larger of the two), so a child of a large notebook kernel would show
    the kernel's peak: there ``VmHWM``, the peak of this process's own memory, is read instead.
    Elsewhere ``ru_maxrss`` it is, in bytes on macOS and KiB on the BSDs."""
    status = Path("/proc/self/status")
    if status.exists():
        line = next(line for line in status.read_text().splitlines() if line.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024  # "VmHWM:   123456 kB"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _child(raw: Path, out: Path, result: Path) -> None:
    """The measured process: the preprocessing stage's steps, each timed."""
    started = time.perf_counter()
    loaded = load_ratings(raw, RAW_FORMAT, min_interactions=3)
    loaded_at = time.perf_counter()
    split = leave_one_out(loaded.interactions, seed=0)
    split_at = time.perf_counter()
    write_split(split, out, extra={})
    figures = {
        "rows": len(loaded.interactions),
        "load_validate_s": loaded_at - started,
        "split_s": split_at - loaded_at,
        "write_s": time.perf_counter() - split_at,
        "peak_rss_mb": peak_rss_bytes() / _MB,
    }
    result.write_text(json.dumps(figures))


if __name__ == "__main__":
    _child(*map(Path, sys.argv[1:]))
