"""One optimiser step behind one call, whichever way this run takes it: ``step(micro_batches)``.

The loop hands over one optimiser step's micro-batches and gets back the step's loss and whether
any rank was told to stop; it never asks which variant it holds. There are two:

- ``EagerStep``: forward and backward in Python, micro-batch by micro-batch, so the gradients of
  ``--grad-accumulation`` micro-batches add up; then the gradients are summed over the ranks
  (``ProcessGroup.reduce_step``: the identity in one process) and Adam steps, through the loss
  scaler when fp16 needs one. One micro-batch in one process is the plain eager step, so
  accumulation and data parallelism add no code path of their own.
- ``CudaGraphStep``: the plain step replayed as one CUDA graph (``training.cuda_graph``), on the
  runs whose step a graph can hold (``graphs_apply``).

Each micro-batch's loss is weighted by its rows' share of the whole step's rows (``micro_batch``),
so A micro-batches of B rows, on one rank or spread over several, take the step one batch of A·B
rows would.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import torch
from torch import nn

from training.checkpoint import StopRequest
from training.config import TrainConfig
from training.cuda_graph import BatchLoss, GraphedStep
from training.distributed import ProcessGroup
from training.losses import LOSSES
from training.precision import Precision
from training.state import Checkpointed


class Batch(NamedTuple):
    """Rows of an epoch: each positive's user, the positive and its negatives, its loss weight."""

    users: torch.Tensor
    candidates: torch.Tensor  # the positive first, then its sampled negatives
    weights: torch.Tensor | None  # None: every positive weighs 1

    def rows(self, rows: slice) -> Batch:
        weights = None if self.weights is None else self.weights[rows]
        return Batch(self.users[rows], self.candidates[rows], weights)


class MicroBatch(NamedTuple):
    batch: Batch
    share: float  # this rank's rows' share of all the rows of the optimiser step


def micro_batch(
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


def micro_batches_per_epoch(config: TrainConfig, rows_per_epoch: int) -> int:
    return math.ceil(rows_per_epoch / config.batch_size)


def optimiser_steps(
    epoch: Batch, first: int, config: TrainConfig, group: ProcessGroup
) -> Iterator[tuple[int, list[MicroBatch]]]:
    """The epoch's optimiser steps from micro-batch ``first`` on: each step's micro-batches, with
    the number of the micro-batch after them (where a resumed run would start)."""
    rows_per_epoch = len(epoch.users)
    count = micro_batches_per_epoch(config, rows_per_epoch)
    start = first
    while start < count:
        end = min((start // config.grad_accumulation + 1) * config.grad_accumulation, count)
        parts = [micro_batch(step, config, rows_per_epoch, group) for step in range(start, end)]
        yield end, [MicroBatch(epoch.rows(rows), share) for rows, share in parts]
        start = end


def graphs_apply(
    config: TrainConfig, device: torch.device, precision: Precision, group: ProcessGroup
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


def batch_loss(model: nn.Module, config: TrainConfig, precision: Precision) -> BatchLoss:
    """The loss of one batch, its forward pass under the precision policy's autocast."""
    loss_fn = LOSSES[config.loss]

    def loss(
        users: torch.Tensor, candidates: torch.Tensor, weights: torch.Tensor | None
    ) -> torch.Tensor:
        with precision.autocast():
            scores = model(users, candidates).float()
            return loss_fn(scores[:, 0], scores[:, 1:], weights)

    return loss


class Step(ABC):
    """One optimiser step on its micro-batches; the moving average of the weights follows it."""

    def __init__(self, parts: Checkpointed, stop: StopRequest | None) -> None:
        self.parts = parts
        self.stop = stop

    def __call__(self, micro_batches: Sequence[MicroBatch]) -> tuple[torch.Tensor, bool]:
        """The step's loss (detached), and whether any rank must stop after it."""
        loss, stopping = self._optimise(micro_batches)
        if self.parts.averaged is not None:
            self.parts.averaged.update_parameters(self.parts.model)
        return loss, stopping

    @abstractmethod
    def _optimise(self, micro_batches: Sequence[MicroBatch]) -> tuple[torch.Tensor, bool]: ...


class EagerStep(Step):
    """Gradients accumulated over the micro-batches and summed over the ranks, then Adam."""

    def __init__(
        self,
        parts: Checkpointed,
        stop: StopRequest | None,
        loss: BatchLoss,
        group: ProcessGroup,
    ) -> None:
        super().__init__(parts, stop)
        self.loss = loss
        self.group = group

    def _optimise(self, micro_batches: Sequence[MicroBatch]) -> tuple[torch.Tensor, bool]:
        step_loss = torch.zeros(())
        for micro in micro_batches:
            if micro.share:  # a last batch smaller than the world leaves some ranks without rows
                loss = micro.share * self.loss(*micro.batch)
                self.parts.scaler.scale(loss).backward()
                step_loss = step_loss + loss.detach()
        model, optimizer, scaler = self.parts.model, self.parts.optimizer, self.parts.scaler
        step_loss, stopping = self.group.reduce_step(model.parameters(), step_loss, bool(self.stop))
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        return step_loss, stopping


class CudaGraphStep(Step):
    """The plain step (one micro-batch, one rank, no loss scaling) as one CUDA graph replay."""

    def __init__(
        self, parts: Checkpointed, stop: StopRequest | None, loss: BatchLoss, batch_rows: int
    ) -> None:
        super().__init__(parts, stop)
        self.graphed = GraphedStep(loss, parts.optimizer, batch_rows)

    def _optimise(self, micro_batches: Sequence[MicroBatch]) -> tuple[torch.Tensor, bool]:
        (micro,) = micro_batches
        return self.graphed(*micro.batch), bool(self.stop)


def make_step(
    config: TrainConfig,
    parts: Checkpointed,
    precision: Precision,
    group: ProcessGroup,
    stop: StopRequest | None,
    graphed: bool,
) -> Step:
    """The run's step: graphed where ``graphs_apply`` said so (Adam was made capturable then)."""
    loss = batch_loss(parts.model, config, precision)
    if graphed:
        return CudaGraphStep(parts, stop, loss, config.batch_size)
    return EagerStep(parts, stop, loss, group)
