"""How many CPUs this container may use: its cgroup's CPU quota (``docker run --cpus``, compose
``cpus``), else the CPUs it may be scheduled on. ``os.cpu_count()`` is the host's, which would
make every worker start as many threads as the host has cores and fight over a quota of one."""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def container_cpus(cgroup: Path = CGROUP) -> float:
    scheduled = len(os.sched_getaffinity(0))
    quota = _quota(cgroup)
    return min(quota, scheduled) if quota else scheduled


def threads_per_worker(workers: int, cgroup: Path = CGROUP) -> int:
    """Each worker's share of the container's CPUs, at least one thread."""
    return max(1, math.floor(container_cpus(cgroup) / workers))


def _quota(cgroup: Path) -> float | None:
    """cgroup v2 ``cpu.max`` ("max 100000" or "150000 100000"), else v1's CFS quota and period."""
    try:
        limit, period = (cgroup / "cpu.max").read_text().split()
    except (OSError, ValueError):
        try:
            limit = (cgroup / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (cgroup / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    if limit in ("max", "-1"):
        return None
    return int(limit) / int(period)
