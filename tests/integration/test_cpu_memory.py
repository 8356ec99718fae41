"""The malloc tuning measured in subprocesses: fewer page faults than the default heap."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

# Growing blocks, as a training or evaluation pass meets ever larger batches: glibc's default
# maps each one fresh, the tuned heap reuses what the last one freed.
_GROWING_BLOCKS = """
import resource, sys, torch
from training.cpu_memory import keep_freed_memory
if sys.argv[1] == "tuned":
    assert keep_freed_memory()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for megabytes in range(4, 25):
    torch.ones(megabytes * 2**18)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _page_faults(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", _GROWING_BLOCKS, mode], capture_output=True, text=True, check=True
    )
    return int(done.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="tunes glibc's malloc only")
def test_tuned_heap_reuses_freed_memory_instead_of_faulting_in_new_pages() -> None:
    default, tuned = _page_faults("default"), _page_faults("tuned")
    assert tuned < default / 2, (default, tuned)
