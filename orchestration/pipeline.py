"""The main job: the whole course pipeline, one command.

prepare data -> train GMF and MLP -> train NeuMF initialised from both -> evaluate each saved
artifact -> deploy NeuMF and ask it for sample recommendations -> a results table. With Docker
and the course's images every stage is a SageMaker local-mode job (``orchestration.course``);
without, each stage runs as a subprocess of its own entry point with the same ``/opt/ml``-style
folders and ``SM_*`` environment a container gets, so what works here works in a job unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from preprocessing.job import add_source_arguments, check_dataset
from preprocessing.schema import TABLE_FILES, USERS, read_table
from training.config import GPU_CHOICES, TrainConfig
from training.evaluate import evaluate_artifact
from training.tracking import local_tracking_uri

# Hyperparameters chosen on the ML-100K validation hold-out (benchmarks/accuracy_ml100k.py);
# keys are TrainConfig fields, turned into the training entry point's flags.
_GMF_SIZE = {"num_factors": 64}
_MLP_SIZE = {"layers": (256, 128, 64, 32)}
# A moving average of the weights (decay 0.995 a step, about two ML-100K epochs) is what each
# model is evaluated and saved as: on validation it lifted every model's NDCG@10 (mean of 3 seeds:
# GMF 0.430 -> 0.432, MLP 0.410 -> 0.418, NeuMF 0.412 -> 0.420).
# A user's last few positives weigh more (latest_weight 20, fading by e every 5 positives
# back): validation HR / NDCG@10 (mean of seeds 0-2) GMF 0.720 / 0.432 -> 0.741 / 0.452, MLP
# 0.705 / 0.427 -> 0.725 / 0.441; weights 10 and 40 and spans 3 and 8 came close, 30 gained little.
_REGULARISATION = {
    "recency_weight": 5.0,
    "latest_weight": 20.0,
    "latest_span": 5.0,
    "l2": 1e-6,
    "ema_decay": 0.995,
}
RECIPES: dict[str, dict[str, Any]] = {
    "gmf": {
        "model": "gmf",
        **_GMF_SIZE,
        **_REGULARISATION,
        "num_negatives": 16,
        "learning_rate": 0.002,
        "batch_size": 512,
    },
    # Batches of 2,048 (lr 0.005) make an epoch a sixth shorter and tie on validation, but need
    # more epochs: a whole run takes as long, so the MLP keeps 1,024.
    # More weight decay for the MLP's tower: l2 3e-5 against 1e-6 took validation HR / NDCG@10
    # from 0.701 / 0.420 to 0.712 / 0.425 (seeds 0-5); 1e-5 and 5e-5 came close, 1e-4 lost.
    "mlp": {
        "model": "mlp",
        **_MLP_SIZE,
        **_REGULARISATION,
        "l2": 3e-5,
        "num_negatives": 8,
        "learning_rate": 0.003,
        "batch_size": 1024,
    },
    "neumf": {
        "model": "neumf",
        **_GMF_SIZE,
        **_MLP_SIZE,
        **_REGULARISATION,
        "num_negatives": 4,
        "learning_rate": 0.003,
        "batch_size": 2048,
    },
}
# Fine-tuning pre-trained halves: a small step keeps what they learned (the paper uses SGD);
# alpha 0.6 leans on the stronger GMF half. Chosen on validation (mean of 3 seeds, HR / NDCG):
# 4 negatives 0.731 / 0.442 against 0.729 / 0.441 with 8; learning rate 3e-4 0.728 / 0.441;
# with the MLP at l2 3e-5, alpha 0.6 0.739 / 0.440 against 0.729 / 0.436 (0.8), 0.733 / 0.438
# (0.7), 0.731 / 0.440 (0.5) and 0.733 / 0.439 (0.4). With the latest-weighted halves the blend
# they start from ties between 0.5 and 0.6 (0.748 / 0.456 and 0.746 / 0.454), so 0.6 stays.
RECIPES["neumf-pretrained"] = RECIPES["neumf"] | {"learning_rate": 0.0001, "alpha": 0.6}


@dataclass
class Stage:
    name: str
    seconds: float
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class TrainedModel:
    folder: Path  # the model folder on this machine, for evaluation
    location: str  # what a later stage is given: a folder here, an s3:// URI in local mode
    seconds: float


def run_stage(module: str, args: list[str], env: dict[str, str]) -> float:
    """Run ``python -m module`` like a container runs its entry point; raise if it fails."""
    started = time.perf_counter()
    command = [sys.executable, "-m", module, *args]
    completed = subprocess.run(command, env=os.environ | env, check=False)
    if completed.returncode != 0:
        raise RuntimeError(
            f"stage {module} failed with exit code {completed.returncode}; its error is above"
        )
    return time.perf_counter() - started


def hyperparameter_flags(hyperparameters: dict[str, Any]) -> list[str]:
    flags = []
    for key, value in hyperparameters.items():
        flags.append(f"--{key.replace('_', '-')}")
        flags.extend(str(n) for n in (value if isinstance(value, tuple) else (value,)))
    return flags


def preprocessing_flags(args: argparse.Namespace) -> list[str]:
    """The preprocessing options the main job passes on, wherever the stage runs."""
    flags = ["--dataset", args.dataset, "--seed", str(args.seed), "--no-progress"]
    if args.dataset == "synthetic":
        flags += ["--synthetic-shape", args.synthetic_shape]
    return flags


def run_preprocessing_stage(
    output_dir: Path, flags: list[str], *, data_dir: Path | None, cache_dir: Path
) -> float:
    """The preprocessing entry point as a subprocess: local files from ``data_dir``, else the
    official download into ``cache_dir``. Returns its wall time."""
    flags = [*flags, "--output-dir", str(output_dir), "--cache-dir", str(cache_dir)]
    if data_dir:
        flags += ["--data-dir", str(data_dir)]
    return run_stage("preprocessing", flags, {})


class ProcessBackend:
    """Each stage a subprocess of its entry point, with the ``SM_*`` contract of a container."""

    description = "plain processes"

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.processed = work_dir / "processed"
        self.tracking_uri = os.environ.get("MLFLOW_TRACKING_URI") or local_tracking_uri(
            work_dir / "mlflow"
        )

    def prepare(self, args: argparse.Namespace) -> Path:
        run_preprocessing_stage(
            self.processed,
            preprocessing_flags(args),
            data_dir=args.data_dir,
            cache_dir=args.cache_dir,
        )
        return self.processed

    def train(
        self, name: str, hyperparameters: dict[str, Any], pretrained: dict[str, TrainedModel]
    ) -> TrainedModel:
        model_dir = self.work_dir / "models" / name
        env = {"SM_CHANNEL_TRAIN": str(self.processed), "SM_MODEL_DIR": str(model_dir)}
        for channel, model in pretrained.items():
            env[f"SM_CHANNEL_{channel.upper()}"] = model.location
        flags = hyperparameter_flags(hyperparameters | {"tracking_uri": self.tracking_uri})
        seconds = run_stage("training", flags, env)
        return TrainedModel(model_dir, str(model_dir), seconds)

    def recommend(self, model: TrainedModel, users: list[Any], k: int) -> list[dict[str, Any]]:
        """The serving code in this process: the same recommender the endpoint runs."""
        from inference.recommender import Recommender

        recommender = Recommender.from_folder(model.folder)
        return [recommendation(user, recommender.recommend(user, k)) for user in users]


def recommendation(user: Any, items: list[tuple[Any, float]]) -> dict[str, Any]:
    return {"user_id": user, "items": [{"item_id": i, "score": s} for i, s in items]}


def run_pipeline(args: argparse.Namespace, backend) -> tuple[list[Stage], list[dict[str, Any]]]:
    """prepare -> GMF, MLP -> NeuMF from both -> evaluate -> recommendations from an endpoint."""
    started = time.perf_counter()
    processed = backend.prepare(args)
    stages = [Stage("prepare data", time.perf_counter() - started)]
    overrides = training_overrides(args)
    trained: dict[str, TrainedModel] = {}
    for name, pretrained in (("gmf", ()), ("mlp", ()), ("neumf-pretrained", ("gmf", "mlp"))):
        hyperparameters = RECIPES[name] | overrides | {"run_name": name}
        channels = {channel: trained[channel] for channel in pretrained}
        trained[name] = backend.train(name, hyperparameters, channels)
    for name, model in trained.items():
        metrics = evaluate_artifact(model.folder, processed, k=10)
        stages.append(Stage(name, model.seconds, metrics))
    users = sample_users(processed)
    return stages, backend.recommend(trained["neumf-pretrained"], users, k=5)


def training_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """What the command line changes in every recipe."""
    overrides: dict[str, Any] = {"seed": args.seed, "gpu": args.gpu}
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    return overrides


def sample_users(processed: Path, count: int = 3) -> list[Any]:
    users = read_table(processed / TABLE_FILES["users"], USERS)
    return users.column("user_id").to_pylist()[:count]


def results_table(stages: list[Stage]) -> str:
    header = "| stage | HR@10 | NDCG@10 | MAP@10 | full recall@10 | time (s) |"
    lines = [header, "|---|---|---|---|---|---|"]
    for stage in stages:
        m = stage.metrics
        cells = [m.get(key) for key in ("hr@10", "ndcg@10", "map@10", "full_recall@10")]
        shown = ["" if value is None else f"{value:.4f}" for value in cells]
        lines.append(f"| {stage.name} | {' | '.join(shown)} | {stage.seconds:.1f} |")
    return "\n".join(lines)


def recommendations_table(recommendations: list[dict[str, Any]]) -> str:
    lines = ["| user | top items (score) |", "|---|---|"]
    for row in recommendations:
        items = ", ".join(f"{item['item_id']} ({item['score']:.2f})" for item in row["items"])
        lines.append(f"| {row['user_id']} | {items} |")
    return "\n".join(lines)


def write_results(
    stages: list[Stage],
    recommendations: list[dict[str, Any]],
    results_dir: Path,
    args: argparse.Namespace,
    backend: str,
) -> None:
    results_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "dataset": args.dataset,
        "seed": args.seed,
        "ran_as": backend,
        "stages": [stage.__dict__ for stage in stages],
        "recommendations": recommendations,
    }
    (results_dir / "results.json").write_text(json.dumps(payload, indent=2) + "\n")
    tables = [results_table(stages), recommendations_table(recommendations)]
    (results_dir / "results.md").write_text("\n\n".join(tables) + "\n")


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
        choices=("auto", "local-mode", "processes"),
        default="auto",
        help="auto: SageMaker local-mode jobs when Docker and the images are there, else "
        "processes (default: %(default)s)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:  # a bad name or number stops here, not stages later
        check_dataset(args.dataset, args.data_dir)
        for recipe in RECIPES.values():
            TrainConfig(**recipe | training_overrides(args))
    except (ValueError, FileNotFoundError) as exc:
        parser.error(str(exc))
    from orchestration.course import open_backend

    try:
        with open_backend(args.mode, args.work_dir) as backend:
            print(f"running the course pipeline as {backend.description}")
            stages, recommendations = run_pipeline(args, backend)
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
