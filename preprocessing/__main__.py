"""``python -m preprocessing``: the processing entry point, on a laptop and as a SageMaker job.

Inside a SageMaker processing container (``/opt/ml/processing`` exists) the defaults follow the
job's layout: raw files from ``/opt/ml/processing/input/raw``, the split to
``/opt/ml/processing/output/processed``. Flags always win.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from preprocessing.datasets import DownloadError
from preprocessing.job import add_source_arguments, resolve_source, run_preprocessing
from preprocessing.reports import DataValidationError

PROCESSING_ROOT = Path("/opt/ml/processing")
PROCESSING_INPUT = PROCESSING_ROOT / "input" / "raw"
PROCESSING_OUTPUT = PROCESSING_ROOT / "output" / "processed"


def build_parser() -> argparse.ArgumentParser:
    in_job = PROCESSING_ROOT.is_dir()
    parser = argparse.ArgumentParser(
        prog="python -m preprocessing",
        description="Validate MovieLens ratings and write the NCF leave-one-out split.",
    )
    add_source_arguments(
        parser, data_dir=PROCESSING_INPUT if in_job and PROCESSING_INPUT.is_dir() else None
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=PROCESSING_OUTPUT if in_job else None,
        required=not in_job,
    )
    parser.add_argument(
        "--policy",
        choices=("fail", "drop"),
        default="fail",
        help="fail: stop on any bad row; drop: move bad rows to rejects.csv (default: %(default)s)",
    )
    parser.add_argument(
        "--num-negatives",
        type=int,
        default=99,
        help="never-seen items ranked against each held-out one (default: %(default)s)",
    )
    parser.add_argument(
        "--validation",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="hold out each user's second-latest interaction for early stopping",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="the sampled test negatives and synthetic data follow it (default: %(default)s)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.num_negatives < 1:
        parser.error("--num-negatives must be >= 1")
    if args.seed < 0:
        parser.error(f"--seed must be >= 0, got {args.seed}")
    for flag, folder in (("--output-dir", args.output_dir), ("--cache-dir", args.cache_dir)):
        problem = _folder_problem(folder)
        if problem:
            parser.error(f"{flag}: {problem}; pass a folder (it is created if missing)")
    try:
        source = resolve_source(
            args.dataset,
            data_dir=args.data_dir,
            cache_dir=args.cache_dir,
            synthetic_shape=args.synthetic_shape,
            seed=args.seed,
            progress=not args.no_progress,
        )
        result = run_preprocessing(
            source,
            args.output_dir,
            policy=args.policy,
            validation=args.validation,
            num_negatives=args.num_negatives,
            seed=args.seed,
        )
    except DataValidationError as exc:
        print(exc, file=sys.stderr)
        print(f"error: {_validation_advice(exc, args.dataset)}", file=sys.stderr)
        return 1
    except (DownloadError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {_os_problem(exc)}", file=sys.stderr)
        return 1
    print(result.report.format())
    counts = result.manifest["counts"]
    print(
        f"wrote {args.output_dir}: {counts['users']:,} users, {counts['items']:,} items, "
        f"{counts['train']:,} train, {counts['validation']:,} validation, "
        f"{counts['test']:,} test interactions"
    )
    return 0


def _folder_problem(folder: Path) -> str | None:
    """Caught before the loading and splitting work, not when the first table is written."""
    existing = next((path for path in (folder, *folder.parents) if path.exists()), None)
    if existing is None or existing.is_dir():
        return None
    if existing == folder:
        return f"{folder} is a file, not a folder"
    return f"{folder} cannot be created because {existing} is a file"


def _os_problem(exc: OSError) -> str:
    """The path and the system's reason, with what to check, instead of a traceback."""
    path = exc.filename if exc.filename is not None else "a file"
    return (
        f"cannot use {path}: {exc.strerror or exc}. Check that it exists and that this user may "
        "read it (inputs) or write it (outputs)."
    )


def _validation_advice(exc: DataValidationError, dataset: str) -> str:
    """--policy drop only helps when single lines are bad; a whole-file problem needs a fix."""
    if exc.report is not None:
        return (
            "the raw data failed validation; fix the file or re-run with --policy drop to move "
            "the bad rows to rejects.csv"
        )
    return (
        f"the file as a whole cannot be read as --dataset {dataset}, so --policy drop would not "
        "help; fix or replace the file, or name the --dataset it comes from"
    )


if __name__ == "__main__":
    sys.exit(main())
