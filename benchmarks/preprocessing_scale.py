"""Processing at scale: synthetic 1M, 10M and 32M interactions through load -> validate -> split.

    python benchmarks/preprocessing_scale.py            # 1M, 10M, 32M
    python benchmarks/preprocessing_scale.py --sizes 1m

Each size runs in a fresh process so its peak RSS is its own (the child of
``orchestration.lessons.scaling``, which lesson 02 runs too). The raw file is generated first
(not timed), in the ML-20M+ ``ratings.csv`` format, then read by the real loader.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from orchestration.lessons.scaling import RAW_FORMAT, measure_preprocessing
from preprocessing.synthetic import SHAPES, generate, write_raw

SIZES = {"1m": "ml-1m", "10m": "ml-10m", "32m": "ml-32m"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=["1m", "10m", "32m"])
    args = parser.parse_args()
    print("| size | rows | load+validate s | split s | total s | write s | peak RSS GB |")
    print("|---|---|---|---|---|---|---|")
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            raw = write_raw(generate(*SHAPES[SIZES[size]], seed=0), Path(tmp), RAW_FORMAT)
            r = measure_preprocessing(raw, Path(tmp) / "out")
        print(
            f"| {size} | {r['rows']:,} | {r['load_validate_s']:.1f} | {r['split_s']:.1f} | "
            f"{r['load_validate_s'] + r['split_s']:.1f} | {r['write_s']:.1f} | "
            f"{r['peak_rss_mb'] / 1024:.2f} |"
        )


if __name__ == "__main__":
    main()
