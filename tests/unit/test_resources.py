"""The container's CPU share, read from its cgroup, and each worker's threads."""

from __future__ import annotations

import os

import pytest

from inference.resources import container_cpus, threads_per_worker


@pytest.fixture
def scheduled(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})


@pytest.mark.parametrize(
    ("files", "cpus"),
    [
        ({"cpu.max": "100000 100000\n"}, 1.0),  # cgroup v2, docker run --cpus 1
        ({"cpu.max": "250000 100000\n"}, 2.5),
        ({"cpu.max": "max 100000\n"}, 4),  # no quota: the CPUs it may run on
        ({"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 0.5),  # v1
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, 4),
        ({}, 4),  # no cgroup files at all
        ({"cpu.max": "1600000 100000\n"}, 4),  # a quota above the CPUs it may use
    ],
)
def test_the_quota_or_the_scheduled_cpus_whichever_is_less(tmp_path, scheduled, files, cpus):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert container_cpus(tmp_path) == cpus


@pytest.mark.parametrize(
    ("quota", "workers", "threads"), [(1.0, 1, 1), (4, 2, 2), (2.5, 2, 1), (1.0, 3, 1)]
)
def test_each_worker_gets_its_whole_share_and_at_least_one_thread(
    tmp_path, scheduled, quota, workers, threads
):
    (tmp_path / "cpu.max").write_text(f"{int(quota * 100000)} 100000\n")
    assert threads_per_worker(workers, tmp_path) == threads
