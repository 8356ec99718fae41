"""The precision policy: which dtype a training step computes in, chosen per device and model.

Mixed precision only where the hardware computes it: lower precision that is emulated costs more
than it saves. Weights, optimiser state and evaluation stay fp32 in every case; only the step's
forward pass (and so its backward) runs under autocast.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch
from torch import nn

from training.models import MLP


def cpu_computes_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware: AVX512-BF16 (AMD Zen 4 and 5,
    Intel Cooper Lake) or AMX (Intel Sapphire Rapids on). Elsewhere oneDNN emulates bf16."""
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def bf16_pays_on_cpu(model: nn.Module) -> bool:
    """bf16 autocast on a CPU pays for the MLP tower's matrix products, which are most of an MLP
    or NeuMF step: with bf16 units, oneDNN's bf16 products beat MKL's fp32 ones, and those
    models' epochs shorten at the same accuracy. GMF has only matrix-vector
    products, where the casts cost more than they save, so it stays fp32. Figures in
    docs/benchmarks.md, the decision in docs/decisions/0005-bf16-on-cpu.md."""
    has_tower = any(isinstance(part, MLP) and len(part.tower) for part in model.modules())
    return has_tower and cpu_computes_bf16()


class Precision:
    """Mixed precision where the hardware computes it: on CUDA bf16 autocast, fp16 with loss
    scaling where bf16 is emulated; on CPU bf16 autocast where it pays (``bf16_pays_on_cpu``);
    fp32 otherwise. ``scaler`` is enabled only for fp16, whose small range needs loss scaling."""

    def __init__(self, device: torch.device, enabled: bool, model: nn.Module) -> None:
        self.device = device
        self.dtype: torch.dtype | None = None
        if enabled and device.type == "cuda":
            # Not emulated bf16 (T4, V100): it runs without tensor cores, fp16 runs with them.
            native_bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
            self.dtype = torch.bfloat16 if native_bf16 else torch.float16
        elif enabled and device.type == "cpu" and bf16_pays_on_cpu(model):
            self.dtype = torch.bfloat16
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype == torch.float16)

    def autocast(self) -> AbstractContextManager[None]:
        if self.dtype is None:
            return nullcontext()
        # No cast cache: each weight is cast once per step anyway, and a CUDA graph must not
        # keep casts from the step it was captured in.
        return torch.autocast(self.device.type, dtype=self.dtype, cache_enabled=False)
