"""The course pipeline, the same whichever backend runs its stages.

prepare data -> train GMF and MLP -> train NeuMF initialised from both -> evaluate each saved
artifact -> ask the NeuMF for sample recommendations. A backend runs the stages: as plain
processes (``processes``) or as SageMaker local-mode jobs (``local_mode``).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from preprocessing.schema import TABLE_FILES, USERS, read_table
from training.evaluate import evaluate_artifact
from training.recipes import RECIPES

# NeuMF fine-tunes the two models trained before it, handed over as channels of these names.
PIPELINE_MODELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("gmf", ()),
    ("mlp", ()),
    ("neumf-pretrained", ("gmf", "mlp")),
)


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


def first_users(processed: Path, count: int = 3) -> list[Any]:
    """The first ``count`` users of the processed split: the same ones on every run."""
    users = read_table(processed / TABLE_FILES["users"], USERS)
    return users.column("user_id").to_pylist()[:count]


def run_course(
    args: argparse.Namespace, backend: Backend
) -> tuple[list[Stage], list[dict[str, Any]]]:
    """prepare -> GMF, MLP -> NeuMF from both -> evaluate -> recommendations from the server."""
    started = time.perf_counter()
    processed = backend.prepare(args)
    stages = [Stage("prepare data", time.perf_counter() - started)]
    overrides = training_overrides(args)
    trained: dict[str, TrainedModel] = {}
    for name, pretrained in PIPELINE_MODELS:
        hyperparameters = RECIPES[name] | overrides | {"run_name": name}
        channels = {channel: trained[channel] for channel in pretrained}
        trained[name] = backend.train(name, hyperparameters, channels)
    for name, model in trained.items():
        metrics = evaluate_artifact(model.folder, processed, k=10)
        stages.append(Stage(name, model.seconds, metrics))
    users = first_users(processed)
    return stages, backend.recommend(trained["neumf-pretrained"], users, k=5)
