"""GPU utilisation while a job runs, sampled from ``nvidia-smi`` on the host.

The host sees every container's GPU work, so sampling here needs nothing inside the image. On a
machine without an NVIDIA GPU (or driver) the monitor says why and collects nothing.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Self

import pandas as pd

from orchestration.probes import nvidia_smi, nvidia_smi_installed

QUERY = "index,utilization.gpu,memory.used,memory.total"


@dataclass(frozen=True)
class GpuSample:
    seconds: float  # since the monitor started
    gpu: int
    utilization: float  # percent of the last sample period a kernel ran
    memory_used_mib: float
    memory_total_mib: float


def query() -> list[tuple[int, float, float, float]]:
    """One reading per GPU; empty when nvidia-smi is missing, fails or prints no GPU."""
    answer = nvidia_smi(f"--query-gpu={QUERY}", "--format=csv,noheader,nounits")
    if answer is None:
        return []
    readings = []
    for line in answer.splitlines():
        fields = [part.strip() for part in line.split(",")]
        if len(fields) != 4:  # a warning line
            continue
        try:
            readings.append((int(fields[0]), *(float(value) for value in fields[1:])))
        except ValueError:  # "[N/A]": some laptop GPUs do not report a figure
            continue
    return readings


def unavailable_reason() -> str | None:
    """Why there is nothing to sample here, or None when nvidia-smi reports a GPU."""
    if not nvidia_smi_installed():
        return "no nvidia-smi on this machine: no NVIDIA GPU or driver, so nothing to sample"
    if not query():
        return "nvidia-smi is there but reports no usable GPU (is the driver loaded?)"
    return None


@dataclass
class GpuMonitor:
    """Samples every ``interval`` seconds in a background thread while the ``with`` block runs."""

    interval: float = 1.0
    samples: list[GpuSample] = field(default_factory=list)
    reason: str | None = None  # set when there is no GPU to sample
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def __enter__(self) -> Self:
        self.reason = unavailable_reason()
        if self.reason is None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _sample(self) -> None:
        started = time.monotonic()
        while True:
            now = time.monotonic() - started
            self.samples += [GpuSample(now, *reading) for reading in query()]
            if self._stop.wait(self.interval):
                return

    def frame(self) -> pd.DataFrame:
        """One row per sample and GPU, ready to plot; empty without a GPU."""
        columns = list(GpuSample.__dataclass_fields__)
        return pd.DataFrame([vars(sample) for sample in self.samples], columns=columns)
