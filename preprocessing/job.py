"""One processing job: raw ratings (downloaded, local or synthetic) -> validated split on disk.

The same function runs in a notebook, in the main job and as a SageMaker processing job; the
folder it writes (Parquet tables, ``manifest.json``, ``rejects.csv`` when rows were dropped) is
the only thing the training stage reads.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from preprocessing import datasets, synthetic
from preprocessing.loaders import (
    RAW_FORMATS,
    load_ncf_benchmark,
    load_ratings,
    ncf_benchmark_files,
)
from preprocessing.manifest import write_split
from preprocessing.schema import REJECTS_FILE
from preprocessing.split import from_benchmark, leave_one_out
from preprocessing.validation import ValidationReport

log = logging.getLogger(__name__)

NCF_PREFIX = "ncf-"  # "ncf-ml-1m": He et al.'s published files ml-1m.train.rating, ...


@dataclass(frozen=True)
class Source:
    """Where the raw ratings came from, recorded in the manifest."""

    dataset: str
    path: Path
    raw_format: str
    official_checksum: bool | None = None


@dataclass(frozen=True)
class ProcessingResult:
    manifest: dict[str, Any]
    report: ValidationReport


def dataset_choices() -> list[str]:
    return [*datasets.DATASETS, "synthetic", f"{NCF_PREFIX}<name>"]


def add_source_arguments(parser: argparse.ArgumentParser, data_dir: Path | None = None) -> None:
    """Where the ratings come from: the same options wherever data is prepared."""
    parser.add_argument(
        "--dataset",
        default="ml-1m",
        help=f"one of {', '.join(dataset_choices())} (default: %(default)s)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=data_dir,
        help="a folder holding the dataset's files, instead of a download",
    )
    parser.add_argument(
        "--synthetic-shape",
        choices=sorted(synthetic.SHAPES),
        default="ml-100k",
        help="users, items and interactions of --dataset synthetic (default: %(default)s)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path("data-cache"),
        help="downloads and synthetic data are kept here (default: %(default)s)",
    )


def check_dataset(dataset: str, data_dir: Path | None) -> None:
    """Refuse an unknown name or missing local files before any work starts, not in a job."""
    if dataset == "synthetic":
        return
    if dataset.startswith(NCF_PREFIX) and len(dataset) > len(NCF_PREFIX):
        files = ncf_benchmark_files(dataset[len(NCF_PREFIX) :])
        if data_dir is None:
            raise ValueError(
                f"{dataset} reads He et al.'s published files: pass --data-dir with the folder "
                f"holding {', '.join(files)}"
            )
        missing = [name for name in files if not (data_dir / name).is_file()]
        if missing:
            raise FileNotFoundError(f"{data_dir} has no {', '.join(missing)} for {dataset}")
        return
    if dataset not in datasets.DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {dataset_choices()}")
    if data_dir is not None:
        datasets.locate(dataset, data_dir)


def resolve_source(
    dataset: str,
    *,
    data_dir: Path | None,
    cache_dir: Path,
    synthetic_shape: str = "ml-100k",
    seed: int = 0,
    progress: bool = True,
) -> Source:
    if dataset == "synthetic":
        n_users, n_items, n_interactions = synthetic.SHAPES[synthetic_shape]
        folder = cache_dir / f"synthetic-{synthetic_shape}-seed{seed}"
        raw_format = "ml-csv"
        path = folder / RAW_FORMATS[raw_format].file_name
        if not path.is_file():
            log.info("generating synthetic %s-shaped data into %s", synthetic_shape, folder)
            frame = synthetic.generate(n_users, n_items, n_interactions, seed=seed)
            path = synthetic.write_raw(frame, folder, raw_format)
        return Source(dataset, path, raw_format)
    check_dataset(dataset, data_dir)
    if dataset.startswith(NCF_PREFIX):
        return Source(dataset, data_dir, "ncf-benchmark")
    spec = datasets.DATASETS[dataset]
    if data_dir is not None:
        path = datasets.locate(dataset, data_dir)
    else:
        path = datasets.fetch(dataset, cache_dir, progress=progress)
    return Source(dataset, path, spec.raw_format, datasets.known_checksum_matches(dataset, path))


def run_preprocessing(
    source: Source,
    output_dir: Path,
    *,
    policy: str = "fail",
    validation: bool = True,
    num_negatives: int = 99,
    seed: int = 0,
) -> ProcessingResult:
    """Load, validate, split and write."""
    params = {
        "policy": policy,
        "validation_holdout": validation,
        "num_negatives": num_negatives,
        "seed": seed,
    }
    if source.raw_format == "ncf-benchmark":
        bench = load_ncf_benchmark(source.path, source.dataset[len(NCF_PREFIX) :])
        report, rejects = bench.report, None
        split = from_benchmark(
            bench.train, bench.test, bench.negatives, validation=validation, seed=seed
        )
    else:
        loaded = load_ratings(
            source.path,
            source.raw_format,
            policy=policy,
            min_interactions=3 if validation else 2,
        )
        report, rejects = loaded.report, loaded.rejects
        split = leave_one_out(
            loaded.interactions, num_negatives=num_negatives, validation=validation, seed=seed
        )
    output_dir.mkdir(parents=True, exist_ok=True)
    rejects_entry = None
    if rejects is not None and len(rejects):
        rejects.to_csv(output_dir / REJECTS_FILE, index=False)
        rejects_entry = {"path": REJECTS_FILE, "rows": len(rejects)}
    manifest = write_split(
        split,
        output_dir,
        extra={
            "source": {
                "dataset": source.dataset,
                "path": str(source.path),
                "raw_format": source.raw_format,
                "official_checksum": source.official_checksum,
            },
            "params": params,
            "validation": report.to_dict(),
            "rejects": rejects_entry,
        },
    )
    return ProcessingResult(manifest=manifest, report=report)
