"""GPU memory management, for lesson 04: what batch size, gradient accumulation and mixed
precision cost in memory and time, measured on the training package's own steps.

Each figure comes from a fresh process (``python -m`` this module), one per configuration, set up
as ``training.train.fit`` sets up its first epoch (model, precision policy, Adam, the moving
average, the epoch's rows): nothing one measurement allocated, PyTorch's CUDA cache or the CPU
heap glibc keeps (``training.cpu_memory``), counts in the next, and the notebook's kernel holds no
GPU memory afterwards. CUDA is used where present, the CPU otherwise.

Peak memory is what the measured optimiser steps added on top of the model, the data and the
epoch's sampled rows (Adam's moments, made by the first step, included). On CUDA it is the
allocator's own peak (``torch.cuda.max_memory_allocated``) above what was allocated before. On
the CPU PyTorch keeps no such count short of its profiler, which slows every operation it
records and so would spoil the times measured alongside; there it is the rise of the process's
own peak resident set (``scaling.peak_rss_bytes``), in pages actually touched. That includes the
library code a first step pages in (some 10 MB, the same for every batch size), and heap freed
earlier is reused before the peak rises, so small CPU figures are rough.
"""

from __future__ import annotations

import itertools
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from orchestration.lessons.scaling import peak_rss_bytes
from orchestration.main_job.processes import run_stage
from training.config import MODELS, GpuUse, TrainConfig
from training.data import TrainingData
from training.distributed import LOCAL
from training.precision import Precision
from training.recipes import RECIPES
from training.sampling import NegativeSampler
from training.state import Checkpointed
from training.steps import Batch, MicroBatch, graphs_apply, make_step, optimiser_steps
from training.train import _epoch_batches, _placed_model, _positive_weights, resolve_device

# Autocast dtypes by name; None is plain fp32.
PRECISIONS: dict[str, torch.dtype | None] = {
    "fp32": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}
_MB = 2**20
_DEVICES = {None: GpuUse.AUTO, "cuda": GpuUse.ON, "cpu": GpuUse.OFF}


@dataclass(frozen=True)
class AccumulationCheck:
    """One optimiser step taken twice on the same rows: as one batch, and accumulated."""

    batch_size: int
    micro_batches: int
    max_gradient_difference: float  # largest |difference| of any parameter's gradient
    max_gradient: float  # largest |gradient|: the scale the difference is small against
    loss_whole: float
    loss_accumulated: float
    peak_mb_whole: float
    peak_mb_accumulated: float


def batch_size_sweep(
    processed: Path, model: str, batch_sizes: Sequence[int], device: str | None = None
) -> pd.DataFrame:
    """One real training epoch of ``model``'s course recipe per batch size, each in a fresh
    process: a row each with the batch size (positives), the rows a step scores (each positive
    with its sampled negatives), the optimiser steps an epoch takes, the epoch's seconds (negative
    sampling included, as ``fit`` counts them) and its steps' peak memory in MB (the module's
    docstring says what that counts, and how each device measures it)."""
    if not batch_sizes:
        raise ValueError("batch_sizes is empty: give at least one, e.g. [256, 1024, 4096].")
    configs = [_recipe(model, device, batch_size=size) for size in batch_sizes]
    rows = []
    for config in configs:
        epoch = _measure("epoch", processed, config)
        rows.append(
            {
                "batch_size": config.batch_size,
                "rows_per_step": epoch["rows_per_step"],
                "steps_per_epoch": epoch["steps"],
                "epoch_seconds": epoch["seconds"],
                "peak_mb": epoch["peak_mb"],
            }
        )
    return pd.DataFrame(rows)


def accumulation_matches(
    processed: Path, model: str, batch_size: int, micro_batches: int, device: str | None = None
) -> AccumulationCheck:
    """The first optimiser step of ``model``'s recipe with ``batch_size`` positives at once, and
    with ``micro_batches`` micro-batches of ``batch_size // micro_batches`` accumulated
    (``--grad-accumulation``), on the same rows and negatives: the same gradients and loss, up
    to float rounding, at the peak memory of one micro-batch.

    Both run as training runs them (``training.steps.EagerStep`` weighs each micro-batch's loss by
    its share of the step's rows); the gradients are read just before Adam applies them. fp32 and
    no CUDA graph: mixed precision's rounding would swamp the comparison, and a graph hides the
    gradients inside its replay."""
    if micro_batches < 1 or batch_size % micro_batches:
        raise ValueError(
            f"batch_size {batch_size} must split into micro_batches {micro_batches} equal "
            "micro-batches: choose a micro_batches of at least 1 that divides it."
        )
    whole = _recipe(model, device, batch_size=batch_size, amp=False, cuda_graphs=False)
    accumulated = replace(
        whole, batch_size=batch_size // micro_batches, grad_accumulation=micro_batches
    )
    one, many = (
        _measure("steps", processed, config, steps=1, precision=None)
        for config in (whole, accumulated)
    )
    return AccumulationCheck(
        batch_size=batch_size,
        micro_batches=micro_batches,
        max_gradient_difference=float((one["gradients"] - many["gradients"]).abs().max()),
        max_gradient=float(one["gradients"].abs().max()),
        loss_whole=one["losses"][0],
        loss_accumulated=many["losses"][0],
        peak_mb_whole=one["peak_mb"],
        peak_mb_accumulated=many["peak_mb"],
    )


def precision_comparison(
    processed: Path,
    model: str,
    batch_size: int | None = None,
    steps: int = 20,
    device: str | None = None,
) -> pd.DataFrame:
    """fp32 against bf16 autocast (``torch.autocast``) on ``model``'s recipe (its batch size
    unless ``batch_size`` is given): the epoch's first ``steps`` optimiser steps from the same
    weights on the same rows, a fresh process each, eager (no CUDA graph) in both.

    A row per precision: the median milliseconds a step (the first, which sets things up, left
    out); the last step's loss and its relative difference from fp32's, which is what bf16's
    rounding did to training so far (at the first step an untrained model scores every pair
    near 0 and the losses agree to 7 digits, which tells nothing); the peak memory in MB; and
    whether training would use that precision here (``training.precision.Precision``: bf16 on a
    CPU only where it has bf16 units and the model an MLP tower, since emulated bf16 is slower
    than fp32; on a GPU without native bf16 it uses fp16 with loss scaling, neither row)."""
    if steps < 2:
        raise ValueError(f"steps must be at least 2 (the first is not timed), got {steps}.")
    sizes = {} if batch_size is None else {"batch_size": batch_size}
    config = _recipe(model, device, cuda_graphs=False, **sizes)
    runs = {
        name: _measure("steps", processed, config, steps=steps, precision=name)
        for name in ("fp32", "bf16")
    }
    fp32_loss = runs["fp32"]["losses"][-1]
    return pd.DataFrame(
        [
            {
                "precision": name,
                "step_ms": 1000 * statistics.median(run["seconds"][1:]),
                "loss": run["losses"][-1],
                "loss_rel_diff": abs(run["losses"][-1] - fp32_loss) / abs(fp32_loss),
                "peak_mb": run["peak_mb"],
                "training_uses": run["training_precision"] == name,
            }
            for name, run in runs.items()
        ]
    )


def _recipe(model: str, device: str | None, **changes: Any) -> TrainConfig:
    """``model``'s course recipe (``training.recipes``) on ``device``, with ``changes``; a
    device asked for and absent is refused here, before any process starts."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}.")
    if device not in _DEVICES:
        raise ValueError(
            f"device must be 'cuda', 'cpu' or None (CUDA where present), got {device!r}."
        )
    config = TrainConfig(**(RECIPES[model] | changes), gpu=_DEVICES[device])
    resolve_device(config.gpu)
    return config


def _measure(task: str, processed: Path, config: TrainConfig, **options: Any) -> dict[str, Any]:
    """One of this module's child tasks (``_TASKS``) in a fresh process; what it measured."""
    arguments = {"processed": str(processed), "config": config.to_dict(), **options}
    with tempfile.TemporaryDirectory() as folder:
        result = Path(folder) / "result.pt"
        run_stage(__name__, [task, json.dumps(arguments), str(result)], {})
        return torch.load(result, weights_only=True)


# --- the child: one measurement -------------------------------------------------------------


class _Run:
    """What ``fit`` builds before its first epoch, built by the same code, and epoch 0's rows."""

    def __init__(self, processed: str, config: dict[str, Any], precision: str | None) -> None:
        self.config = TrainConfig(**config)
        self.device = resolve_device(self.config.gpu)
        self.data = TrainingData.load(Path(processed), self.device)
        self.model = _placed_model(self.config, self.data, None, self.device)
        policy = Precision(self.device, self.config.amp, self.model)
        self.chosen = policy.dtype  # what training would use
        if precision is not None:  # forced, to compare; never fp16, so no loss scaling
            policy = Precision(self.device, enabled=False, model=self.model)
            policy.dtype = PRECISIONS[precision]
        graphed = graphs_apply(self.config, self.device, policy, LOCAL)
        self.parts = Checkpointed.build(self.model, self.config, policy.scaler, capturable=graphed)
        self.step = make_step(self.config, self.parts, policy, LOCAL, None, graphed)
        self.sampler = NegativeSampler(self.data.users, self.data.items, self.data.n_items)
        self.weights = _positive_weights(self.data, self.config)

    def epoch(self) -> Batch:
        return _epoch_batches(self.data, self.sampler, self.config, 0, self.device, self.weights)


def _epoch_task(processed: str, config: dict[str, Any]) -> dict[str, Any]:
    """A whole epoch, its rows drawn inside the timing as ``fit`` times it."""
    run = _Run(processed, config, precision=None)
    started = time.perf_counter()
    epoch = run.epoch()
    mark = _memory_mark(run.device)  # the rows are the same whatever the batch size
    steps, rows = 0, 0
    for _, micro_batches in optimiser_steps(epoch, 0, run.config, LOCAL):
        run.step(micro_batches)
        steps += 1
        rows = rows or _rows(micro_batches)
    _wait(run.device)
    seconds = time.perf_counter() - started
    return {"steps": steps, "rows_per_step": rows, "seconds": seconds, **_peak(run.device, mark)}


def _steps_task(
    processed: str, config: dict[str, Any], steps: int, precision: str | None
) -> dict[str, Any]:
    """The epoch's first ``steps`` optimiser steps: each one's loss and seconds, the first one's
    gradients as Adam receives them."""
    run = _Run(processed, config, precision)
    gradients = []

    def keep_first(*_: Any) -> None:
        gradients.append(_flat_gradients(run.model))
        hook.remove()

    hook = run.parts.optimizer.register_step_pre_hook(keep_first)
    epoch = run.epoch()
    mark = _memory_mark(run.device)
    losses, seconds = [], []
    for _, micro_batches in itertools.islice(optimiser_steps(epoch, 0, run.config, LOCAL), steps):
        started = time.perf_counter()
        loss, _ = run.step(micro_batches)
        losses.append(float(loss))  # waits for the step on CUDA
        seconds.append(time.perf_counter() - started)
    return {
        "losses": losses,
        "seconds": seconds,
        "gradients": gradients[0],
        "training_precision": next(k for k, v in PRECISIONS.items() if v == run.chosen),
        **_peak(run.device, mark),
    }


def _rows(micro_batches: Sequence[MicroBatch]) -> int:
    """Scored (user, item) pairs in one optimiser step."""
    return sum(micro.batch.candidates.numel() for micro in micro_batches)


def _flat_gradients(model: nn.Module) -> torch.Tensor:
    """Every parameter's gradient in one vector (every parameter of these models gets one)."""
    return torch.cat([parameter.grad.flatten() for parameter in model.parameters()]).cpu()


def _wait(device: torch.device) -> None:
    """Let queued CUDA work finish, so a clock reading covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _memory_mark(device: torch.device) -> int:
    """Where a peak is counted from: on CUDA the bytes allocated now (the peak reset to them),
    on the CPU the process's peak resident set so far."""
    _wait(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device)
    return peak_rss_bytes()


def _peak(device: torch.device, mark: int) -> dict[str, float]:
    _wait(device)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else peak_rss_bytes()
    return {"peak_mb": (peak - mark) / _MB}


_TASKS = {"epoch": _epoch_task, "steps": _steps_task}

if __name__ == "__main__":
    task, arguments, result = sys.argv[1:]
    torch.save(_TASKS[task](**json.loads(arguments)), result)
