"""GPU sampling without nvidia-smi: a reason and no samples."""

from __future__ import annotations

import time

from orchestration.infra import gpu_monitor


def test_no_nvidia_smi_means_a_reason_and_no_samples(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no nvidia-smi
    with gpu_monitor.GpuMonitor(interval=0.01) as monitor:
        time.sleep(0.05)
    assert "no nvidia-smi" in monitor.reason
    assert monitor.samples == [] and monitor.frame().empty
