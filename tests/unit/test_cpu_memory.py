"""The malloc tuning leaves C libraries other than glibc alone."""

from __future__ import annotations

import pytest

from training import cpu_memory


def test_other_c_libraries_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu_memory.platform, "libc_ver", lambda: ("", ""))
    assert cpu_memory.keep_freed_memory.__wrapped__() is False
