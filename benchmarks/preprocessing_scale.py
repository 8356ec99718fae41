"""Processing at scale: synthetic 1M, 10M and 32M interactions through load -> validate -> split.

    python benchmarks/preprocessing_scale.py            # 1M, 10M, 32M
    python benchmarks/preprocessing_scale.py --sizes 1m

Each size runs in a fresh process so its peak RSS is its own. The raw file is generated first
(not timed), in the ML-20M+ ``ratings.csv`` format, then read by the real loader.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = {"1m": "ml-1m", "10m": "ml-10m", "32m": "ml-32m"}


def child(raw: Path, out: Path) -> None:
    from preprocessing.manifest import write_split
    from preprocessing.ratings import load_ratings
    from preprocessing.split import leave_one_out

    timings = {}
    started = time.perf_counter()
    loaded = load_ratings(raw, "ml-csv", min_interactions=3)
    timings["load+validate"] = time.perf_counter() - started
    mark = time.perf_counter()
    split = leave_one_out(loaded.interactions, seed=0)
    timings["split"] = time.perf_counter() - mark
    timings["load+validate+split"] = time.perf_counter() - started
    mark = time.perf_counter()
    write_split(split, out, extra={})
    timings["write parquet"] = time.perf_counter() - mark
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(json.dumps({"rows": len(loaded.interactions), "peak_rss_gb": peak_gb, **timings}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=["1m", "10m", "32m"])
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    from preprocessing.synthetic import SHAPES, generate, write_raw

    print("| size | rows | load+validate s | split s | total s | write s | peak RSS GB |")
    print("|---|---|---|---|---|---|---|")
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            raw = write_raw(generate(*SHAPES[SIZES[size]], seed=0), Path(tmp), "ml-csv")
            output = subprocess.run(
                [sys.executable, __file__, "--child", str(raw), str(Path(tmp) / "out")],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        r = json.loads(output.strip().splitlines()[-1])
        print(
            f"| {size} | {r['rows']:,} | {r['load+validate']:.1f} | {r['split']:.1f} | "
            f"{r['load+validate+split']:.1f} | {r['write parquet']:.1f} | {r['peak_rss_gb']:.2f} |"
        )


if __name__ == "__main__":
    main()
