"""What a checkpoint holds, so a resumed run continues exactly where the stopped one left off.

Two parts: the objects with state of their own (model, optimiser, moving average of the weights,
loss scaler: ``Checkpointed``) and the loop's own record (epoch and step reached, the loss summed
so far, the history, the best epoch and its weights, the patience used: ``TrainState``). The
random state needs no saving: an epoch's negatives and order come from a generator seeded by
(seed, epoch). How a checkpoint is written and read is ``training.checkpoint``'s job.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from training.checkpoint import CheckpointError, CheckpointStore
from training.config import TrainConfig

log = logging.getLogger(__name__)


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


@dataclass
class Checkpointed:
    """The objects whose state a checkpoint holds besides the loop's own counters."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    averaged: AveragedModel | None
    scaler: torch.amp.GradScaler

    @classmethod
    def build(
        cls, model: nn.Module, config: TrainConfig, scaler: torch.amp.GradScaler, capturable: bool
    ) -> Checkpointed:
        """Adam and the moving average for ``model``; ``capturable`` when a CUDA graph steps."""
        optimizer = torch.optim.Adam(
            model.parameters(),
            lr=config.learning_rate,
            weight_decay=config.l2,
            fused=True,
            capturable=capturable,
        )
        return cls(model, optimizer, weight_average(model, config.ema_decay), scaler)

    @property
    def evaluated(self) -> nn.Module:
        """What is evaluated, selected and kept: the moving average when there is one."""
        return self.model if self.averaged is None else self.averaged.module

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


class TrainState:
    """Everything a checkpoint must hold to continue exactly where the run stopped."""

    def __init__(self) -> None:
        self.epoch = 0
        self.step = 0  # the next micro-batch of ``epoch``
        self.pending_loss = torch.zeros(())  # the summed loss of this epoch's steps so far
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

    def finish_epoch(self, epoch: int) -> None:
        """``epoch`` (1-based) is done: the next one starts at its first micro-batch."""
        self.epoch, self.step, self.pending_loss = epoch, 0, torch.zeros(())

    def snapshot(self, parts: Checkpointed, config: TrainConfig) -> dict[str, Any]:
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
    def resume(
        cls, store: CheckpointStore | None, config: TrainConfig, parts: Checkpointed
    ) -> TrainState:
        """The stored run's state, loaded into ``parts`` too; a fresh one without a checkpoint."""
        saved = store.load() if store else None
        return cls() if saved is None else cls.restore(saved, config, parts, store)

    @classmethod
    def restore(
        cls,
        saved: dict[str, Any],
        config: TrainConfig,
        parts: Checkpointed,
        store: CheckpointStore,
    ) -> TrainState:
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
