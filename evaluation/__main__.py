"""``python -m evaluation``: the evaluation stage, on a laptop and as a SageMaker processing job.

Inside a processing container (``/opt/ml/processing`` exists) the defaults follow the job's
layout: the processed split from ``/opt/ml/processing/input/data``, each model from its own input
``/opt/ml/processing/input/models/<name>`` (a model folder or ``model.tar.gz``; ``group--member``
names the member of a group, e.g. ``gmf--seed1``, as ``/`` cannot be in a folder name), the
outputs to ``/opt/ml/processing/output/evaluation``. Flags always win. Exit codes: 2 for bad
arguments, 1 for inputs that cannot be evaluated (the reason on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from evaluation.stage import BASELINES, EASE_L2, EvaluationError, evaluate
from preprocessing.manifest import ManifestError
from preprocessing.schema import SchemaError
from training.artifacts import ArtifactError
from training.config import GPU_CHOICES, GpuUse
from training.train import DeviceError, resolve_device

PROCESSING_ROOT = Path("/opt/ml/processing")
DATA_INPUT = PROCESSING_ROOT / "input" / "data"
MODELS_INPUT = PROCESSING_ROOT / "input" / "models"
OUTPUT = PROCESSING_ROOT / "output" / "evaluation"
GROUP_SEPARATOR = "--"  # in a folder name, for the "/" of a candidate name


def _model(text: str) -> tuple[str, Path]:
    name, equals, path = text.partition("=")
    if not equals or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, Path(path)


def job_models(folder: Path) -> dict[str, Path]:
    """Each input folder of a processing job as a candidate, ``gmf--seed1`` named gmf/seed1."""
    if not folder.is_dir():
        return {}
    return {
        path.name.replace(GROUP_SEPARATOR, "/", 1): path
        for path in sorted(folder.iterdir())
        if path.is_dir()
    }


def build_parser() -> argparse.ArgumentParser:
    in_job = PROCESSING_ROOT.is_dir()
    parser = argparse.ArgumentParser(
        prog="python -m evaluation",
        description="Rank trained models and baselines on a processed split's test hold-out.",
    )
    parser.add_argument(
        "--data", type=Path, default=DATA_INPUT if in_job else None, required=not in_job
    )
    parser.add_argument(
        "--model",
        dest="models",
        type=_model,
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a model folder or model.tar.gz; repeat for several; NAME group/member for seeds "
        f"(default in a job: every folder under {MODELS_INPUT})",
    )
    parser.add_argument(
        "--output", type=Path, default=OUTPUT if in_job else None, required=not in_job
    )
    parser.add_argument(
        "--baselines",
        nargs="*",
        default=list(BASELINES),
        help=f"any of {', '.join(BASELINES)} (default: all; none: give the flag alone)",
    )
    parser.add_argument("--k-max", type=int, default=20, help="metrics at K = 1..k-max")
    parser.add_argument("--ease-l2", type=float, default=EASE_L2, help="EASE's λ")
    parser.add_argument(
        "--gpu",
        choices=GPU_CHOICES,
        default=GpuUse.AUTO.value,
        help="auto: CUDA when PyTorch sees it; true: fail without it; false: the CPU",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    models = dict(args.models) or job_models(MODELS_INPUT)
    try:
        result = evaluate(
            args.data,
            models,
            args.output,
            baselines=args.baselines,
            k_max=args.k_max,
            ease_l2=args.ease_l2,
            device=resolve_device(args.gpu),
        )
    except (EvaluationError, ArtifactError, ManifestError, SchemaError, DeviceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    headline = {
        name: round(summary["sampled"]["hr"]["10"], 4) if args.k_max >= 10 else None
        for name, summary in result["candidates"].items()
    }
    print(json.dumps({"test_hr@10": headline, "output": str(args.output)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
