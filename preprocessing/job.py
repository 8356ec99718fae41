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

import pandas as pd

from preprocessing import datasets, schema, synthetic
from preprocessing.formats import RAW_FORMATS
from preprocessing.manifest import write_split
from preprocessing.ncf_benchmark import NCF_NUM_NEGATIVES, load_ncf_benchmark, ncf_benchmark_files
from preprocessing.ratings import load_ratings
from preprocessing.reports import DataValidationError, ValidationReport
from preprocessing.split import from_benchmark, leave_one_out
from preprocessing.titles import load_titles, titles_file, with_titles

log = logging.getLogger(__name__)

NCF_PREFIX = "ncf-"  # "ncf-ml-1m": He et al.'s published files ml-1m.train.rating, ...
BENCHMARK_FORMAT = "ncf-benchmark"


@dataclass(frozen=True)
class Source:
    """Where the raw ratings came from, recorded in the manifest."""

    dataset: str
    path: Path
    raw_format: str
    official_checksum: bool | None = None
    titles: Path | None = None  # the release's movies file; None: the dataset has no titles


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
        return Source(dataset, data_dir, BENCHMARK_FORMAT)
    spec = datasets.DATASETS[dataset]
    if data_dir is not None:
        path = datasets.locate(dataset, data_dir)
    else:
        path = datasets.fetch(dataset, cache_dir, progress=progress)
    official = _official(dataset, path)
    return Source(dataset, path, spec.raw_format, official, titles_file(path, spec.raw_format))


def _official(dataset: str, path: Path) -> bool | None:
    """A mismatch is only recorded in the manifest, which nobody reads before training: say it."""
    matches = datasets.known_checksum_matches(dataset, path)
    if matches is False:
        log.warning(
            "%s differs from the official %s release (its md5 does not match): it was modified "
            "or cut short. Download it again unless you changed it on purpose.",
            path,
            dataset,
        )
    return matches


def run_preprocessing(
    source: Source,
    output_dir: Path,
    *,
    policy: str = "fail",
    validation: bool = True,
    num_negatives: int = 99,
    seed: int = 0,
) -> ProcessingResult:
    """Load, validate, split, add the titles and write; the rejects are on disk before the split
    can fail."""
    params = {
        "policy": policy,
        "validation_holdout": validation,
        "num_negatives": num_negatives,
        "seed": seed,
    }
    if source.raw_format == BENCHMARK_FORMAT:
        _check_benchmark_params(policy, num_negatives)
        bench = load_ncf_benchmark(source.path, source.dataset[len(NCF_PREFIX) :])
        report = bench.report
        rejects_entry = _begin_output(output_dir, None)
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
        report = loaded.report
        rejects_entry = _begin_output(output_dir, loaded.rejects)
        _check_rows_kept(report, output_dir)
        split = leave_one_out(
            loaded.interactions, num_negatives=num_negatives, validation=validation, seed=seed
        )
    titles = load_titles(source.titles, source.raw_format)
    manifest = write_split(
        with_titles(split, titles),
        output_dir,
        extra={
            "source": {
                "dataset": source.dataset,
                "path": str(source.path),
                "raw_format": source.raw_format,
                "official_checksum": source.official_checksum,
                "titles": None if titles is None else str(source.titles),
            },
            "params": params,
            "validation": report.to_dict(),
            "rejects": rejects_entry,
        },
    )
    return ProcessingResult(manifest=manifest, report=report)


def _check_benchmark_params(policy: str, num_negatives: int) -> None:
    """He et al.'s files fix both, so another value would be ignored yet recorded as used."""
    if num_negatives != NCF_NUM_NEGATIVES:
        raise ValueError(
            f"--num-negatives {num_negatives}: He et al.'s benchmark files fix "
            f"{NCF_NUM_NEGATIVES} test negatives per user. Leave the option out for "
            f"{NCF_PREFIX}* datasets."
        )
    if policy != "fail":
        raise ValueError(
            f"--policy {policy}: He et al.'s benchmark files are read strictly, as published "
            "(dropping lines would change the split the paper's numbers come from). Leave the "
            f"option out for {NCF_PREFIX}* datasets."
        )


def _begin_output(output_dir: Path, rejects: pd.DataFrame | None) -> dict[str, Any] | None:
    """Clear an earlier run's files, then save the rejects: kept even if the split then fails."""
    output_dir.mkdir(parents=True, exist_ok=True)
    for name in schema.OUTPUT_FILES:
        (output_dir / name).unlink(missing_ok=True)
    if rejects is None or rejects.empty:
        return None
    rejects.to_csv(output_dir / schema.REJECTS_FILE, index=False)
    return {"path": schema.REJECTS_FILE, "rows": len(rejects)}


def _check_rows_kept(report: ValidationReport, output_dir: Path) -> None:
    """Nothing left to split is a whole-file problem: the wrong format, or the wrong file."""
    if report.rows_kept:
        return
    raise DataValidationError(
        f"{report.format()}\nAll {report.lines_read:,} lines of {report.source} were rejected; "
        f"see the report above and {output_dir / schema.REJECTS_FILE}, which lists every line "
        "with the rule it broke. Nothing is left to split."
    )
