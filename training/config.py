"""Hyperparameters of a training run, checked before any work starts.

Names follow the seed course's training interface (``--num-factors 8 --layers 64 32 16 8
--learning-rate 0.001 --gpu true``) so SageMaker hyperparameters map one to one.
"""

from __future__ import annotations

import math
from contextlib import suppress
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

MODELS = ("gmf", "mlp", "neumf")
LOSS_NAMES = ("bce", "bpr", "softmax")


class GpuUse(StrEnum):
    """Whether to train on CUDA. The values are the ``--gpu`` flag's words, so the flag and
    SageMaker's string hyperparameters pass straight through."""

    AUTO = "auto"  # CUDA when there is a device
    ON = "true"  # CUDA, or an error that says why there is none
    OFF = "false"  # the CPU even where there is a GPU


GPU_CHOICES = tuple(use.value for use in GpuUse)  # plain words, as argparse shows them


class ConfigError(ValueError):
    """A hyperparameter is out of range; the message names it and the accepted values."""


@dataclass(frozen=True)
class TrainConfig:
    model: str = "neumf"
    num_factors: int = 8
    layers: tuple[int, ...] = (64, 32, 16, 8)
    learning_rate: float = 0.001
    epochs: int = 20
    # Positives per micro-batch; each brings ``num_negatives`` sampled negatives along. An
    # optimiser step averages the loss over ``grad_accumulation`` micro-batches' rows.
    batch_size: int = 1024
    num_negatives: int = 4
    loss: str = "bce"
    l2: float = 0.0
    # Weight of a positive in the loss: 1 + recency_weight * position**2, position running from
    # 0 (the user's oldest interaction) to 1 (the latest), normalised to mean 1. The next item a
    # user picks follows their recent taste more than their old one; 0 is the paper's loss.
    recency_weight: float = 0.0
    # And more on the last few: + latest_weight * exp(-back / latest_span), ``back`` counting a
    # user's positives from the latest (0). The next pick follows the session a user is in, which
    # the last handful of picks tell better than the recent part of a long history. 0 is off.
    latest_weight: float = 0.0
    latest_span: float = 5.0
    seed: int = 0
    gpu: GpuUse = GpuUse.AUTO
    patience: int = 5
    alpha: float = 0.5
    # Evaluate and keep an exponential moving average of the weights (decay per optimiser step;
    # 0 keeps the raw weights, as the paper does). The average smooths out the last steps' noise,
    # which ranking metrics feel: at 0.995 it spans about two ML-100K epochs.
    ema_decay: float = 0.0
    # Mixed precision where the hardware computes it (training.precision); false: fp32 throughout.
    amp: bool = True
    # Replay each training step as one CUDA graph (GPU only; see training/cuda_graph.py).
    cuda_graphs: bool = True
    grad_accumulation: int = 1
    top_k: int = 10
    # After early stopping on validation, train again on train + validation for the chosen
    # number of epochs: the second-latest interaction is the most telling one for the latest.
    refit: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(int(n) for n in self.layers))
        with suppress(ValueError):  # a word that is not a GpuUse is reported with the others
            object.__setattr__(self, "gpu", GpuUse(self.gpu))
        for problem in self._problems():
            raise ConfigError(problem)

    def _problems(self) -> list[str]:
        checks = [
            (self.model in MODELS, f"model must be one of {MODELS}, got {self.model!r}"),
            (self.loss in LOSS_NAMES, f"loss must be one of {LOSS_NAMES}, got {self.loss!r}"),
            (isinstance(self.gpu, GpuUse), f"gpu must be one of {GPU_CHOICES}, got {self.gpu!r}"),
            (self.num_factors >= 1, f"num_factors must be >= 1, got {self.num_factors}"),
            (len(self.layers) >= 1, "layers must name at least one layer size, e.g. 64 32 16 8"),
            (all(n >= 1 for n in self.layers), f"every layer size must be >= 1: {self.layers}"),
            (
                not self.layers or self.layers[0] % 2 == 0,
                f"the first layer size is split between user and item embeddings and must be "
                f"even, got {self.layers[0] if self.layers else None}",
            ),
            (
                math.isfinite(self.learning_rate) and self.learning_rate > 0,
                f"learning_rate must be a positive number, got {self.learning_rate}",
            ),
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.num_negatives >= 1, f"num_negatives must be >= 1, got {self.num_negatives}"),
            (0 <= self.l2 < math.inf, f"l2 must be a finite number >= 0, got {self.l2}"),
            (
                0 <= self.recency_weight < math.inf,
                f"recency_weight must be a finite number >= 0, got {self.recency_weight}",
            ),
            (
                0 <= self.latest_weight < math.inf,
                f"latest_weight must be a finite number >= 0, got {self.latest_weight}",
            ),
            (
                0 < self.latest_span < math.inf,
                f"latest_span must be a finite number > 0 (positives), got {self.latest_span}",
            ),
            (self.seed >= 0, f"seed must be >= 0, got {self.seed}"),
            # epoch_generator multiplies it by about 2**20 into a 64-bit generator seed
            (self.seed < 2**32, f"seed must be < 2**32 = {2**32}, got {self.seed}"),
            (self.patience >= 1, f"patience must be >= 1, got {self.patience}"),
            (0.0 <= self.alpha <= 1.0, f"alpha must lie in [0, 1], got {self.alpha}"),
            (
                0.0 <= self.ema_decay < 1.0,
                f"ema_decay must lie in [0, 1) (0 turns averaging off), got {self.ema_decay}",
            ),
            (
                self.grad_accumulation >= 1,
                f"grad_accumulation must be >= 1, got {self.grad_accumulation}",
            ),
            (self.top_k >= 1, f"top_k must be >= 1, got {self.top_k}"),
        ]
        return [message for ok, message in checks if not ok]

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["layers"] = list(self.layers)
        values["gpu"] = str(self.gpu)  # a plain string for JSON, MLflow and weights-only loading
        return values

    def resumable_with(self, other: TrainConfig) -> bool:
        """A checkpoint may continue with other epochs or patience, and on another device
        (gpu, amp, cuda_graphs); every other hyperparameter must be the same."""
        mine, theirs = self.to_dict(), other.to_dict()
        for loose in ("epochs", "patience", "gpu", "amp", "cuda_graphs"):
            mine.pop(loose)
            theirs.pop(loose)
        return mine == theirs
