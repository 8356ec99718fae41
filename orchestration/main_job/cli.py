"""The main job's command line: ``ncf-course`` / ``make pipeline``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from orchestration.main_job.backends import MODES, open_backend
from orchestration.main_job.report import recommendations_table, results_table, write_results
from orchestration.main_job.stages import run_course, training_overrides
from preprocessing.job import add_source_arguments, check_dataset
from training.config import GPU_CHOICES, TrainConfig
from training.recipes import RECIPES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ncf-course", description="Run the NCF course pipeline end to end."
    )
    add_source_arguments(parser)
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=Path("runs/pipeline"),
        help="each stage's output, the models and the MLflow store (default: %(default)s)",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=Path("results"),
        help="results.md and results.json (default: %(default)s)",
    )
    parser.add_argument("--epochs", type=int, help="override every model's epoch budget")
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="test negatives, synthetic data and every model (default: %(default)s)",
    )
    parser.add_argument(
        "--gpu",
        type=str.lower,
        choices=GPU_CHOICES,
        default="auto",
        help="auto: CUDA when there is one (default: %(default)s)",
    )
    parser.add_argument(
        "--mode",
        choices=MODES,
        default="auto",
        help="auto: SageMaker local-mode jobs when Docker and the images are there, else "
        "processes (default: %(default)s)",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="stream every stage's output (entry points, SDK, containers) instead of one line a "
        "stage with its output in WORK_DIR/logs/<stage>.log",
    )
    return parser


def configure_logging(verbose: bool) -> None:
    """INFO and up reach each stage's log; between stages the screen shows warnings only, unless
    ``--verbose``. The application sets this up; the libraries only log."""
    screen = logging.StreamHandler()
    screen.setLevel(logging.INFO if verbose else logging.WARNING)
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s:%(name)s:%(message)s", handlers=[screen]
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:  # a bad name or number stops here, not stages later
        check_dataset(args.dataset, args.data_dir)
        for recipe in RECIPES.values():
            TrainConfig(**recipe | training_overrides(args))
    except (ValueError, FileNotFoundError) as exc:
        parser.error(str(exc))
    configure_logging(args.verbose)
    try:
        with open_backend(args.mode, args.work_dir) as backend:
            print(f"running the course pipeline as {backend.description}")
            stages, recommendations = run_course(args, backend)
    # ArithmeticError: a model whose scores overflow (inference.recommender); OSError: a folder
    # that cannot be written, a full disk.
    except (RuntimeError, ValueError, ArithmeticError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    write_results(stages, recommendations, args.results_dir, args, backend.description)
    print(results_table(stages), recommendations_table(recommendations), sep="\n\n")
    print(f"results written to {args.results_dir / 'results.md'} and results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
