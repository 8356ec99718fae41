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
"""

from __future__ import annotations

import logging
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from training.checkpoint import CheckpointError, CheckpointStore, StopRequest
from training.config import TrainConfig
from training.cpu_memory import keep_freed_memory
from training.cuda_graph import GraphedStep
from training.data import TrainingData
from training.distributed import LOCAL, ProcessGroup
from training.evaluate import evaluate_holdout, evaluate_test, evaluate_test_catalogue
from training.losses import LOSSES
from training.metrics import prefixed
from training.models import MLP, build_model
from training.sampling import NegativeSampler
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


def resolve_device(gpu: str) -> torch.device:
    if gpu == "false":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if gpu == "true":
        raise DeviceError(
            "--gpu true was asked for but PyTorch sees no CUDA device "
            f"(torch {torch.__version__}, cuda build: {torch.version.cuda}). Use --gpu auto or "
            "false, or check the NVIDIA driver / container toolkit (lesson 01)."
        )
    return torch.device("cpu")


def _graphs_apply(
    config: TrainConfig, device: torch.device, precision: _Precision, group: ProcessGroup
) -> bool:
    """CUDA graphs replay one plain step; accumulation, loss scaling and the all-reduce between
    ranks step differently, so those runs stay eager."""
    return (
        config.cuda_graphs
        and device.type == "cuda"
        and config.grad_accumulation == 1
        and not precision.scaler.is_enabled()
        and group.world_size == 1
    )


def weight_average(model: nn.Module, decay: float) -> AveragedModel | None:
    """The moving average that is evaluated and kept, or None when ``decay`` is 0.

    The average lives on the model's device; ``AveragedModel`` keeps its step counter on the
    CPU and copies it to the device at every update. On a GPU that small copy waits for the
    queued step (PyTorch synchronises the stream for a blocking host-to-device copy), so an
    averaged GPU run gives up some CPU/GPU overlap; a counter on the GPU would be read back
    every update and wait the same way."""
    if decay == 0:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))


def epoch_generator(seed: int, epoch: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + epoch)


def cpu_computes_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware: AVX512-BF16 (AMD Zen 4 and 5,
    Intel Cooper Lake) or AMX (Intel Sapphire Rapids on). Elsewhere oneDNN emulates bf16."""
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def bf16_pays_on_cpu(model: nn.Module) -> bool:
    """bf16 autocast on a CPU pays for the MLP tower's matrix products, which are most of an MLP
    or NeuMF step: on a 2-core Zen 5, where MKL's fp32 GEMM runs at about 80 GFLOP/s and oneDNN's
    bf16 one at about 390, the ML-100K recipes' epochs went from 1.16 to 0.74 s (MLP) and from
    0.84 to 0.55 s (NeuMF), at the same accuracy. GMF has only matrix-vector products, where the
    casts cost more than they save (0.47 -> 0.63 s an epoch), so it stays fp32."""
    has_tower = any(isinstance(part, MLP) and len(part.tower) for part in model.modules())
    return has_tower and cpu_computes_bf16()


class _Precision:
    """Mixed precision where the hardware computes it: on CUDA bf16 autocast, fp16 with loss
    scaling where bf16 is emulated; on CPU bf16 autocast where it pays (``bf16_pays_on_cpu``);
    fp32 otherwise. Weights, optimiser state and evaluation stay fp32."""

    def __init__(self, device: torch.device, enabled: bool, model: nn.Module) -> None:
        self.device = device
        self.dtype = None
        if enabled and device.type == "cuda":
            # Not emulated bf16 (T4, V100): it runs without tensor cores, fp16 runs with them.
            native_bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
            self.dtype = torch.bfloat16 if native_bf16 else torch.float16
        elif enabled and device.type == "cpu" and bf16_pays_on_cpu(model):
            self.dtype = torch.bfloat16
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype == torch.float16)

    def autocast(self):
        if self.dtype is None:
            return nullcontext()
        # No cast cache: each weight is cast once per step anyway, and a CUDA graph must not
        # keep casts from the step it was captured in.
        return torch.autocast(self.device.type, dtype=self.dtype, cache_enabled=False)


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
    if model is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            model = build_model(
                config.model, data.n_users, data.n_items, config.num_factors, config.layers
            )
    model = model.to(device)
    if device.type == "cpu":
        keep_freed_memory()
    precision = _Precision(device, config.amp, model)
    graphed = _graphs_apply(config, device, precision, group)
    optimizer = torch.optim.Adam(
        model.parameters(),
        lr=config.learning_rate,
        weight_decay=config.l2,
        fused=True,
        capturable=graphed,
    )
    averaged = weight_average(model, config.ema_decay)
    evaluated = model if averaged is None else averaged.module  # what is selected and kept
    parts = _Checkpointed(model, optimizer, averaged, precision.scaler)
    state = _TrainState()
    resumed = checkpoints.load() if checkpoints else None
    if resumed is not None:
        state = _TrainState.restore(resumed, config, parts, checkpoints)

    sampler = NegativeSampler(data.users, data.items, data.n_items)
    positive_weights = _positive_weights(data, config)
    loss_fn = LOSSES[config.loss]

    def batch_loss(
        users: torch.Tensor, candidates: torch.Tensor, weights: torch.Tensor | None
    ) -> torch.Tensor:
        with precision.autocast():
            scores = model(users, candidates).float()
            return loss_fn(scores[:, 0], scores[:, 1:], weights)

    graphed_step = GraphedStep(batch_loss, optimizer, config.batch_size) if graphed else None
    rows_per_epoch = len(data.users)
    steps = math.ceil(rows_per_epoch / config.batch_size)  # micro-batches
    optimiser_steps = math.ceil(steps / config.grad_accumulation)
    if data.validation is not None and not state.history:
        # The starting point is a candidate too: a pre-trained NeuMF may need no fine-tuning,
        # and the curves of a fresh model start from its untrained scores.
        start = _evaluate(evaluated, data, config, group)
        state.record({"epoch": 0} | start, evaluated, True, config)
        if tracker:
            tracker.log_metrics(start, step=0)
    epochs = tqdm(
        range(state.epoch, config.epochs),
        desc=f"train {config.model}",
        unit="epoch",
        disable=not (progress and group.is_primary) or None,
        initial=state.epoch,
        total=config.epochs,
    )
    for epoch in epochs:
        if state.stopped_early:
            break
        started = time.perf_counter()
        users, candidates, weights = _epoch_batches(
            data, sampler, config, epoch, device, positive_weights
        )
        model.train()
        step_loss = torch.zeros(())
        for step in range(state.step, steps):
            rows, share = _micro_batch(step, config, rows_per_epoch, group)
            batch = (users[rows], candidates[rows], None if weights is None else weights[rows])
            if graphed_step is not None:
                state.pending_loss = state.pending_loss + graphed_step(*batch)
                stopping = bool(stop)
            else:
                if share:  # a last batch smaller than the world leaves some ranks without rows
                    loss = share * batch_loss(*batch)
                    precision.scaler.scale(loss).backward()
                    step_loss = step_loss + loss.detach()
                if (step + 1) % config.grad_accumulation and step + 1 < steps:
                    continue
                step_loss, stopping = group.reduce_step(model.parameters(), step_loss, bool(stop))
                state.pending_loss = state.pending_loss + step_loss
                step_loss = torch.zeros(())
                precision.scaler.step(optimizer)
                precision.scaler.update()
                optimizer.zero_grad(set_to_none=True)
            if averaged is not None:
                averaged.update_parameters(model)
            if stopping and step + 1 < steps:
                state.step = step + 1
                _interrupt(checkpoints, state, parts, config, epoch, group)
        train_loss = float(state.pending_loss) / optimiser_steps
        train_seconds = time.perf_counter() - started
        if not math.isfinite(train_loss):
            raise NonFiniteLossError(
                f"The training loss became {train_loss} in epoch {epoch + 1} of {config.model}. "
                f"Lower --learning-rate (now {config.learning_rate}) or check the input data."
            )
        row = {"epoch": epoch + 1, "train_loss": train_loss, "epoch_seconds": train_seconds}
        row |= _evaluate(evaluated, data, config, group)
        state.record(row, evaluated, data.validation is not None, config)
        epochs.set_postfix(loss=f"{train_loss:.4f}", **_postfix(row, config.top_k))
        log.info("epoch %d %s", epoch + 1, _format_row(row))
        if tracker:
            tracker.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch + 1)
        state.epoch, state.step, state.pending_loss = epoch + 1, 0, torch.zeros(())
        if checkpoints:
            checkpoints.save(state.snapshot(parts, config))
        if group.any_rank(bool(stop)) and epoch + 1 < config.epochs and not state.stopped_early:
            _interrupt(checkpoints, state, parts, config, epoch + 1, group)

    model.load_state_dict(state.best_state or evaluated.state_dict())
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


def _micro_batch(
    step: int, config: TrainConfig, rows_per_epoch: int, group: ProcessGroup
) -> tuple[slice, float]:
    """This rank's rows of micro-batch ``step`` and their weight in its optimiser step's loss.

    The weight is the rows' share of all the rows the step accumulates, so A micro-batches of B
    take the step one batch of A·B would, a short last micro-batch or step included.
    """
    first = step * config.batch_size
    step_first = first - step % config.grad_accumulation * config.batch_size
    step_last = min(step_first + config.grad_accumulation * config.batch_size, rows_per_epoch)
    last = min(first + config.batch_size, rows_per_epoch)
    return group.shard(first, last, step_rows=step_last - step_first)


def _epoch_batches(
    data: TrainingData,
    sampler: NegativeSampler,
    config: TrainConfig,
    epoch: int,
    device: torch.device,
    positive_weights: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The whole epoch at once: shuffled positives, each followed by its fresh negatives."""
    generator = epoch_generator(config.seed, epoch, device)
    order = torch.randperm(len(data.users), generator=generator, device=device)
    users = data.users[order]
    negatives = sampler.sample(users, config.num_negatives, generator)
    candidates = torch.cat([data.items[order].unsqueeze(1), negatives], dim=1)
    return users, candidates, None if positive_weights is None else positive_weights[order]


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


def _final_metrics(
    model: nn.Module, data: TrainingData, config: TrainConfig, state: _TrainState
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


@dataclass
class _Checkpointed:
    """The objects whose state a checkpoint holds besides the loop's own counters."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    averaged: AveragedModel | None
    scaler: torch.amp.GradScaler

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "averaged": None if self.averaged is None else self.averaged.state_dict(),
            "scaler": self.scaler.state_dict(),  # empty unless fp16 loss scaling is on
        }

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        self.model.load_state_dict(saved["model"])
        # Loading brings back the saved ``capturable``; a CUDA graph needs this run's, whatever
        # device or --cuda-graphs setting wrote the checkpoint.
        capturable = [group["capturable"] for group in self.optimizer.param_groups]
        self.optimizer.load_state_dict(saved["optimizer"])
        for group, flag in zip(self.optimizer.param_groups, capturable, strict=True):
            group["capturable"] = flag
        if self.averaged is not None:
            self.averaged.load_state_dict(saved["averaged"])
        if saved.get("scaler"):  # older checkpoints have none, a disabled scaler saves {}
            self.scaler.load_state_dict(saved["scaler"])


class _TrainState:
    """Everything a checkpoint must hold to continue exactly where the run stopped."""

    def __init__(self) -> None:
        self.epoch = 0
        self.step = 0
        self.pending_loss = torch.zeros(())
        self.history: list[dict[str, float]] = []
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_epoch = 0
        self.best_score = -math.inf
        self.bad_epochs = 0
        self.stopped_early = False

    def record(
        self, row: dict[str, float], model: nn.Module, has_validation: bool, config: TrainConfig
    ) -> None:
        self.history.append(row)
        score = row[f"val_ndcg@{config.top_k}"] if has_validation else row["epoch"]
        if score > self.best_score:
            self.best_score, self.best_epoch, self.bad_epochs = score, int(row["epoch"]), 0
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            self.bad_epochs += 1
            self.stopped_early = self.bad_epochs >= config.patience

    def snapshot(self, parts: _Checkpointed, config: TrainConfig) -> dict[str, Any]:
        return {
            "config": config.to_dict(),
            **parts.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "pending_loss": self.pending_loss.detach().cpu(),
            "history": self.history,
            "best_state": self.best_state,
            "best_epoch": self.best_epoch,
            "best_score": self.best_score,
            "bad_epochs": self.bad_epochs,
            "stopped_early": self.stopped_early,
        }

    @classmethod
    def restore(
        cls,
        saved: dict[str, Any],
        config: TrainConfig,
        parts: _Checkpointed,
        store: CheckpointStore,
    ) -> _TrainState:
        if not config.resumable_with(_saved_config(saved, store)):
            raise CheckpointError(
                f"{store.path} was written by a run with other hyperparameters "
                f"({saved['config']}). Use a new --checkpoint-dir for a new configuration."
            )
        parts.load_state_dict(saved)
        state = cls()
        state.epoch, state.step = saved["epoch"], saved["step"]
        state.pending_loss = saved["pending_loss"].to(next(parts.model.parameters()).device)
        state.history = saved["history"]
        state.best_state = saved["best_state"]
        state.best_epoch, state.best_score = saved["best_epoch"], saved["best_score"]
        state.bad_epochs = saved["bad_epochs"]
        # Not the saved flag: a resume may bring more patience (resumable_with allows it).
        state.stopped_early = state.bad_epochs >= config.patience
        log.info("resuming from %s at epoch %d, step %d", store.path, state.epoch + 1, state.step)
        return state


def _saved_config(saved: dict[str, Any], store: CheckpointStore) -> TrainConfig:
    """The checkpoint's hyperparameters, those of another code version named, not a TypeError."""
    advice = "Delete it, or use a new --checkpoint-dir to start this configuration afresh."
    unknown = sorted(set(saved["config"]) - set(TrainConfig.__dataclass_fields__))
    if unknown:
        raise CheckpointError(
            f"{store.path} was written by another version of the course code: its "
            f"hyperparameters {', '.join(unknown)} are unknown to this one. {advice}"
        )
    try:
        return TrainConfig(**saved["config"])
    except (TypeError, ValueError) as exc:  # ConfigError is a ValueError
        raise CheckpointError(
            f"{store.path} holds hyperparameters this version of the course code refuses "
            f"({exc}). {advice}"
        ) from exc


def _interrupt(
    checkpoints: CheckpointStore | None,
    state: _TrainState,
    parts: _Checkpointed,
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
