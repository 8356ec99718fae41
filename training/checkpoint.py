"""Checkpoints that survive a spot interruption: atomic writes, clear errors when unreadable.

SageMaker syncs ``/opt/ml/checkpoints`` to S3 and restores it when a job restarts, so a job
that finds a checkpoint there resumes instead of starting over. A write goes to a temporary
file that replaces the old one only when complete: a kill mid-write leaves the previous one.
In data-parallel training every rank reads the checkpoint to resume at the same step, but only
rank 0 writes it: the ranks hold identical state, and hosts share the folder (or its S3 prefix).
"""

from __future__ import annotations

import os
import pickle
import signal
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_FILE = "checkpoint.pt"
# What torch.load raises for a file it cannot read: truncated, empty, not a torch file, no access.
UNREADABLE = (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError)


class CheckpointError(RuntimeError):
    """A checkpoint exists but cannot be used; the message says what to do."""


class CheckpointStore:
    def __init__(self, directory: Path, read_only: bool = False) -> None:
        self.directory = directory
        self.path = directory / CHECKPOINT_FILE
        self.read_only = read_only

    def save(self, state: dict[str, Any]) -> None:
        if self.read_only:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(self.path)

    def load(self) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except UNREADABLE as exc:
            raise CheckpointError(
                f"The checkpoint {self.path} is corrupt or unreadable ({exc}). Delete it to "
                "start from scratch, or point --checkpoint-dir at another folder."
            ) from exc
        if not isinstance(state, dict) or "model" not in state or "epoch" not in state:
            raise CheckpointError(
                f"{self.path} is not a checkpoint written by this course's trainer. Delete it "
                "or point --checkpoint-dir at another folder."
            )
        return state


class StopRequest:
    """Set by SIGTERM (SageMaker's and Docker's stop signal); the loop checks it between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self, *_: object) -> None:
        self._event.set()

    def __bool__(self) -> bool:
        return self._event.is_set()


@contextmanager
def stop_on_sigterm() -> Iterator[StopRequest]:
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = signal.signal(signal.SIGTERM, request.set)
    try:
        yield request
    finally:
        signal.signal(signal.SIGTERM, previous)
