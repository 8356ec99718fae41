"""GPU sampling with a stand-in nvidia-smi on PATH."""

from __future__ import annotations

import time

import pytest

from orchestration.infra import gpu_monitor


@pytest.fixture
def fake_smi(tmp_path, monkeypatch):
    def install(output: str, code: int = 0) -> None:
        script = tmp_path / "nvidia-smi"
        script.write_text(f"#!/bin/sh\nprintf '{output}'\nexit {code}\n")
        script.chmod(0o755)
        monkeypatch.setenv("PATH", str(tmp_path))

    return install


def test_failing_driver_is_reported(fake_smi):
    fake_smi("NVIDIA-SMI has failed\\n", code=9)
    assert "no usable GPU" in gpu_monitor.unavailable_reason()


def test_readings_skip_lines_without_figures(fake_smi):
    fake_smi("0, 87, 1500, 8188\\n1, [N/A], [N/A], 8188\\nWARNING: something\\n")
    assert gpu_monitor.query() == [(0, 87.0, 1500.0, 8188.0)]


def test_monitor_samples_until_the_block_ends(fake_smi):
    fake_smi("0, 42, 1024, 8188\\n")
    with gpu_monitor.GpuMonitor(interval=0.01) as monitor:
        time.sleep(0.3)
    assert monitor.reason is None
    count = len(monitor.samples)
    assert count >= 2
    time.sleep(0.05)
    assert len(monitor.samples) == count  # the thread has stopped
    frame = monitor.frame()
    assert list(frame.columns) == [
        "seconds",
        "gpu",
        "utilization",
        "memory_used_mib",
        "memory_total_mib",
    ]
    assert (frame["utilization"] == 42).all() and frame["seconds"].is_monotonic_increasing
