"""Let glibc keep freed memory for the next pass instead of giving it back to the kernel.

Training and evaluation allocate blocks of many MB (an ML-1M evaluation chunk, a batch of
candidate activations) and free them moments later. With glibc's defaults such blocks are mapped
fresh with ``mmap`` or handed back when the top of the heap is trimmed, so the next pass touches
brand-new pages and takes a page fault every 4 KiB. Raising the mmap and trim thresholds keeps
that memory in the heap for reuse (the idea of PyTorch's caching allocator for CUDA memory).
It halves the evaluation and full-catalogue passes of the large NeuMF on ML-1M and leaves
training epochs as they were (``benchmarks/training_speed.py``; figures in docs/benchmarks.md).
The cost: the process keeps its peak heap instead of shrinking after it.
Other C libraries (macOS, musl) are left as they are.
"""

from __future__ import annotations

import ctypes
import functools
import platform

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
_SETTINGS = {
    _M_MMAP_THRESHOLD: 32 * 2**20,  # glibc's largest allowed value on 64-bit
    _M_TRIM_THRESHOLD: 2**30,
    _M_TOP_PAD: 256 * 2**20,  # grow the heap in large steps; untouched pages cost nothing
}


@functools.cache
def keep_freed_memory() -> bool:
    """Tune glibc's malloc once per process; False where the C library is not glibc."""
    if platform.libc_ver()[0] != "glibc":
        return False
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return all(mallopt(option, value) == 1 for option, value in _SETTINGS.items())
