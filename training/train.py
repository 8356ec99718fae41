"""The training loop: whole-epoch tensor sampling, large batches, one evaluation pass an epoch.

Model selection (early stopping and the epoch whose weights are kept) looks only at the
validation hold-out; test metrics are logged every epoch for the curves but never steer anything.
The loop is resumable at any optimiser step: an epoch's negatives and order come from a
generator seeded by (seed, epoch), so a restarted job regenerates exactly the same batches.

The same seeding keeps data-parallel training free of data traffic: every rank builds the
identical epoch and trains on its own rows of each global batch (``training.distributed``), so
N ranks with batch B take the same steps as one process with batch B, up to float rounding.
Rank 0 alone evaluates and writes checkpoints; the others take its figures, so every rank stops
at the same epoch.

The loop itself is short; each concern lives in a module of its own: the precision policy
(``training.precision``), what a checkpoint holds and how it is restored (``training.state``), and
how an optimiser step is taken, eagerly or as a CUDA graph (``training.steps``).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from training.checkpoint import CheckpointStore, StopRequest
from training.config import GpuUse, TrainConfig
from training.cpu_memory import keep_freed_memory
from training.data import TrainingData
from training.distributed import LOCAL, ProcessGroup
from training.evaluate import evaluate_holdout, evaluate_test, evaluate_test_catalogue
from training.metrics import prefixed
from training.models import build_model
from training.precision import Precision
from training.sampling import NegativeSampler
from training.state import Checkpointed, TrainState
from training.steps import Batch, graphs_apply, make_step, micro_batches_per_epoch, optimiser_steps
from training.tracking import Tracker

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """The loss diverged; the message names the epoch and what to try."""


class TrainingInterrupted(RuntimeError):
    """SIGTERM arrived; the checkpoint holds everything needed to resume."""


class DeviceError(RuntimeError):
    """The device asked for is not there; the message says what to check."""


@dataclass
class FitResult:
    model: nn.Module
    history: list[dict[str, float]]
    best_epoch: int
    metrics: dict[str, Any] = field(default_factory=dict)


def resolve_device(gpu: GpuUse | str) -> torch.device:
    """The device ``--gpu`` asks for; a plain word (a notebook's parameter) compares equal too."""
    if gpu == GpuUse.OFF:
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if gpu == GpuUse.ON:
        raise DeviceError(
            "--gpu true was asked for but PyTorch sees no CUDA device "
            f"(torch {torch.__version__}, cuda build: {torch.version.cuda}). Use --gpu auto or "
            "false, or check the NVIDIA driver / container toolkit (lesson 01)."
        )
    return torch.device("cpu")


def epoch_generator(seed: int, epoch: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + epoch)


def fit(
    config: TrainConfig,
    data: TrainingData,
    *,
    device: torch.device,
    model: nn.Module | None = None,
    checkpoints: CheckpointStore | None = None,
    tracker: Tracker | None = None,
    stop: StopRequest | None = None,
    progress: bool = True,
    group: ProcessGroup = LOCAL,
) -> FitResult:
    """Train ``model`` (a fresh one by default), resuming from ``checkpoints`` when they hold a
    run; the weights returned are those of the epoch chosen on validation."""
    model = _placed_model(config, data, model, device)
    precision = Precision(device, config.amp, model)
    graphed = graphs_apply(config, device, precision, group)
    parts = Checkpointed.build(model, config, precision.scaler, capturable=graphed)
    state = TrainState.resume(checkpoints, config, parts)
    step = make_step(config, parts, precision, group, stop, graphed)
    sampler = NegativeSampler(data.users, data.items, data.n_items)
    positive_weights = _positive_weights(data, config)
    micro_batches = micro_batches_per_epoch(config, len(data.users))
    if data.validation is not None and not state.history:
        # The starting point is a candidate too: a pre-trained NeuMF may need no fine-tuning,
        # and the curves of a fresh model start from its untrained scores.
        start = {"epoch": 0} | _evaluate(parts.evaluated, data, config, group)
        _record(start, state, parts, data, config, tracker)
    epochs = _progress_bar(config, state, progress and group.is_primary)
    for epoch in epochs:
        if state.stopped_early:
            break
        started = time.perf_counter()
        batches = _epoch_batches(data, sampler, config, epoch, device, positive_weights)
        model.train()
        for next_step, step_batches in optimiser_steps(batches, state.step, config, group):
            loss, stopping = step(step_batches)
            state.pending_loss = state.pending_loss + loss
            if stopping and next_step < micro_batches:
                state.step = next_step
                _interrupt(checkpoints, state, parts, config, epoch, group)
        row = _train_figures(state, config, epoch, micro_batches, started)
        row |= _evaluate(parts.evaluated, data, config, group)
        _record(row, state, parts, data, config, tracker)
        epochs.set_postfix(loss=f"{row['train_loss']:.4f}", **_postfix(row, config.top_k))
        log.info("epoch %d %s", epoch + 1, _format_row(row))
        state.finish_epoch(epoch + 1)
        if checkpoints:
            checkpoints.save(state.snapshot(parts, config))
        if group.any_rank(bool(stop)) and epoch + 1 < config.epochs and not state.stopped_early:
            _interrupt(checkpoints, state, parts, config, epoch + 1, group)

    model.load_state_dict(state.best_state or parts.evaluated.state_dict())
    return FitResult(
        model=model,
        history=state.history,
        best_epoch=state.best_epoch,
        metrics=_final_metrics(model, data, config, state),
    )


def evaluate_untrained(
    model: nn.Module, data: TrainingData, config: TrainConfig, device: torch.device
) -> FitResult:
    """A model used as it starts (zero epochs), reported like a trained one."""
    model = model.to(device)
    metrics = prefixed("test", evaluate_test(model, data, config.top_k))
    return FitResult(model, [], 0, metrics | {"epochs_run": 0, "mean_epoch_seconds": 0.0})


def _placed_model(
    config: TrainConfig, data: TrainingData, model: nn.Module | None, device: torch.device
) -> nn.Module:
    """The model on its device, built from the seed when none is given."""
    if model is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            model = build_model(
                config.model, data.n_users, data.n_items, config.num_factors, config.layers
            )
    model = model.to(device)
    if device.type == "cpu":
        keep_freed_memory()
    return model


def _progress_bar(config: TrainConfig, state: TrainState, shown: bool) -> tqdm:
    """The epochs still to run, counted from the first so a resumed run shows where it is."""
    return tqdm(
        range(state.epoch, config.epochs),
        desc=f"train {config.model}",
        unit="epoch",
        disable=not shown or None,
        initial=state.epoch,
        total=config.epochs,
    )


def _epoch_batches(
    data: TrainingData,
    sampler: NegativeSampler,
    config: TrainConfig,
    epoch: int,
    device: torch.device,
    positive_weights: torch.Tensor | None,
) -> Batch:
    """The whole epoch at once: shuffled positives, each followed by its fresh negatives."""
    generator = epoch_generator(config.seed, epoch, device)
    order = torch.randperm(len(data.users), generator=generator, device=device)
    users = data.users[order]
    negatives = sampler.sample(users, config.num_negatives, generator)
    candidates = torch.cat([data.items[order].unsqueeze(1), negatives], dim=1)
    return Batch(users, candidates, None if positive_weights is None else positive_weights[order])


def _positive_weights(data: TrainingData, config: TrainConfig) -> torch.Tensor | None:
    """Each positive's weight in the loss (see TrainConfig.recency_weight and latest_weight),
    normalised to mean 1 so the learning rate keeps its meaning."""
    if config.recency_weight == 0 and config.latest_weight == 0:
        return None
    rank, count = data.timeline_rank()
    position = rank / (count - 1).clamp(min=1)
    back = count - 1 - rank
    weights = (
        1.0
        + config.recency_weight * position**2
        + config.latest_weight * torch.exp(-back / config.latest_span)
    )
    return weights / weights.mean()


def _train_figures(
    state: TrainState, config: TrainConfig, epoch: int, micro_batches: int, started: float
) -> dict[str, float]:
    """The epoch's mean step loss and duration; a loss that diverged stops the run here."""
    train_loss = float(state.pending_loss) / math.ceil(micro_batches / config.grad_accumulation)
    train_seconds = time.perf_counter() - started
    if not math.isfinite(train_loss):
        raise NonFiniteLossError(
            f"The training loss became {train_loss} in epoch {epoch + 1} of {config.model}. "
            f"Lower --learning-rate (now {config.learning_rate}) or check the input data."
        )
    return {"epoch": epoch + 1, "train_loss": train_loss, "epoch_seconds": train_seconds}


def _evaluate(
    model: nn.Module, data: TrainingData, config: TrainConfig, group: ProcessGroup
) -> dict[str, float]:
    """Rank 0's figures on every rank, so all ranks pick the same epoch and stop together."""
    if not group.is_primary:
        return group.broadcast(None)
    started = time.perf_counter()
    row = {}
    if data.validation is not None:
        row |= prefixed("val", evaluate_holdout(model, data.validation, config.top_k))
    row |= prefixed("test", evaluate_holdout(model, data.test, config.top_k))
    row["eval_seconds"] = time.perf_counter() - started
    return group.broadcast(row)


def _record(
    row: dict[str, float],
    state: TrainState,
    parts: Checkpointed,
    data: TrainingData,
    config: TrainConfig,
    tracker: Tracker | None,
) -> None:
    """The epoch joins the history (its weights kept if it is the best yet) and the tracker."""
    state.record(row, parts.evaluated, data.validation is not None, config)
    if tracker:
        tracker.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=row["epoch"])


def _final_metrics(
    model: nn.Module, data: TrainingData, config: TrainConfig, state: TrainState
) -> dict[str, Any]:
    best = next(row for row in state.history if row["epoch"] == state.best_epoch)
    trained = [row for row in state.history if row["epoch"] > 0]
    full = evaluate_test_catalogue(model, data, config.top_k)
    return {
        "best_epoch": state.best_epoch,
        "epochs_run": len(trained),
        "selected_on": "validation" if data.validation is not None else "last epoch",
        **{k: v for k, v in best.items() if k.startswith(("val_", "test_"))},
        **prefixed("test", full),
        "mean_epoch_seconds": sum(r["epoch_seconds"] for r in trained) / max(len(trained), 1),
    }


def _interrupt(
    checkpoints: CheckpointStore | None,
    state: TrainState,
    parts: Checkpointed,
    config: TrainConfig,
    epoch: int,
    group: ProcessGroup,
) -> None:
    """Every rank gets here at the same step; rank 0 saves, and all leave once it has."""
    state.epoch = epoch
    where = f"epoch {epoch + 1}, step {state.step}"
    if checkpoints is None:
        message = f"Stopped by SIGTERM at {where}; no checkpoint dir was set."
    else:
        checkpoints.save(state.snapshot(parts, config))
        message = (
            f"Stopped by SIGTERM at {where}; saved {checkpoints.path}. "
            "Start the job again with the same checkpoint dir to resume."
        )
    group.barrier()  # docker-compose stops every container when the first one exits
    raise TrainingInterrupted(message)


def _postfix(row: dict[str, float], k: int) -> dict[str, str]:
    split = "val" if f"val_hr@{k}" in row else "test"
    return {f"{split}_hr": f"{row[f'{split}_hr@{k}']:.3f}"}


def _format_row(row: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4f}" for k, v in row.items() if k != "epoch")
