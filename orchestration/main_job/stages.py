"""The course pipeline, the same whichever backend runs its stages.

prepare data -> train GMF and MLP -> train NeuMF initialised from both -> evaluate each saved
artifact -> ask the NeuMF for sample recommendations, shown with their titles. A backend runs the
stages: as plain processes (``processes``) or as SageMaker local-mode jobs (``local_mode``); the
console (``console``) shows each as one line and keeps its output in a log.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from orchestration.main_job.console import Console
from preprocessing.schema import ITEMS, TABLE_FILES, USERS, read_table
from training.evaluate import evaluate_artifact
from training.recipes import RECIPES

# NeuMF fine-tunes the two models trained before it, handed over as channels of these names.
PIPELINE_MODELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("gmf", ()),
    ("mlp", ()),
    ("neumf-pretrained", ("gmf", "mlp")),
)
STAGES = len(PIPELINE_MODELS) + 3  # prepare, train each model, evaluate, recommend
RECOMMENDED_MODEL = "neumf-pretrained"


@dataclass
class Stage:
    name: str
    seconds: float
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class TrainedModel:
    folder: Path  # the model folder on this machine, for evaluation
    location: str  # what a later stage is given: a folder here, an s3:// URI in local mode


class Backend(Protocol):
    """Where the stages run; ``description`` says so in one line."""

    description: str

    def prepare(self, args: argparse.Namespace) -> Path:
        """Preprocess the dataset; returns the processed folder on this machine."""

    def train(
        self, name: str, hyperparameters: dict[str, Any], pretrained: dict[str, TrainedModel]
    ) -> TrainedModel:
        """Train one model; ``pretrained`` maps channel names to models trained before."""

    def recommend(self, model: TrainedModel, users: list[Any], k: int) -> list[dict[str, Any]]:
        """Each user's top ``k`` from the model as it is served."""


def preprocessing_flags(args: argparse.Namespace) -> list[str]:
    """The preprocessing options the main job passes on, wherever the stage runs."""
    flags = ["--dataset", args.dataset, "--seed", str(args.seed), "--no-progress"]
    if args.dataset == "synthetic":
        flags += ["--synthetic-shape", args.synthetic_shape]
    return flags


def training_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """What the command line changes in every recipe."""
    overrides: dict[str, Any] = {"seed": args.seed, "gpu": args.gpu}
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    return overrides


def log_folder(args: argparse.Namespace) -> Path | None:
    """Where each stage's output goes; None: to the screen as it comes (``--verbose``)."""
    return None if args.verbose else args.work_dir / "logs"


def first_users(processed: Path, count: int = 3) -> list[Any]:
    """The first ``count`` users of the processed split: the same ones on every run."""
    users = read_table(processed / TABLE_FILES["users"], USERS)
    return users.column("user_id").to_pylist()[:count]


def titled(recommendations: list[dict[str, Any]], processed: Path) -> list[dict[str, Any]]:
    """Each recommended item with its title from the processed items table (None: no title)."""
    items = read_table(processed / TABLE_FILES["items"], ITEMS)
    titles = dict(zip(items["item_id"].to_pylist(), items["title"].to_pylist(), strict=True))
    return [
        row | {"items": [item | {"title": titles.get(item["item_id"])} for item in row["items"]]}
        for row in recommendations
    ]


def run_course(
    args: argparse.Namespace, backend: Backend
) -> tuple[list[Stage], list[dict[str, Any]]]:
    """prepare -> GMF, MLP -> NeuMF from both -> evaluate -> recommendations from the server."""
    console = Console(STAGES, log_folder(args))
    with console.stage(f"prepare {args.dataset}", "prepare-data") as prepared:
        processed = backend.prepare(args)
    overrides = training_overrides(args)
    trained: dict[str, TrainedModel] = {}
    seconds: dict[str, float] = {}
    for name, pretrained in PIPELINE_MODELS:
        hyperparameters = RECIPES[name] | overrides | {"run_name": name}
        channels = {channel: trained[channel] for channel in pretrained}
        title = f"train {name}" + (f" from {', '.join(pretrained)}" if pretrained else "")
        with console.stage(title, f"train-{name}") as training:
            trained[name] = backend.train(name, hyperparameters, channels)
        seconds[name] = training.seconds
    with console.stage(f"evaluate {', '.join(trained)}", "evaluate"):
        metrics = {
            name: evaluate_artifact(model.folder, processed, k=10)
            for name, model in trained.items()
        }
    users = first_users(processed)
    shown = ", ".join(map(str, users))
    with console.stage(f"serve {RECOMMENDED_MODEL}, recommend for users {shown}", "recommend"):
        recommendations = backend.recommend(trained[RECOMMENDED_MODEL], users, k=5)
    stages = [Stage("prepare data", prepared.seconds)]
    stages += [Stage(name, seconds[name], metrics[name]) for name in trained]
    return stages, titled(recommendations, processed)
