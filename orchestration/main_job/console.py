"""What the main job shows while it runs: one line a stage, its whole output in a log file.

By default a stage's output (the entry point it runs, the SDK's log records, the containers'
logs) goes to ``<work dir>/logs/<stage>.log`` through ``joblog.captured``, and the screen gets
one line: the stage's number, what ran, the seconds it took and its log. A stage that fails adds
the end of its log, where its error is. ``--verbose`` (no log folder) streams everything instead.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from orchestration.lessons.joblog import captured

TAIL_LINES = 15  # of a failed stage's log: its error and what led to it


@dataclass
class StageRun:
    """One stage as the console saw it: its log (None: streamed) and, once it ended, its time."""

    log: Path | None
    seconds: float = 0.0


class Console:
    """Numbers the stages and shows each one as a line; ``log_dir`` None streams their output."""

    def __init__(self, stages: int, log_dir: Path | None, screen: TextIO | None = None) -> None:
        self.stages = stages
        self.log_dir = log_dir
        self.screen = screen or sys.stdout  # taken now: inside a stage sys.stdout is its log
        self.started = 0

    @contextmanager
    def stage(self, title: str, log_name: str) -> Iterator[StageRun]:
        """Run the block as the next stage: its output captured in ``<log_dir>/<log_name>.log``."""
        self.started += 1
        label = f"[{self.started}/{self.stages}] {title}"
        run = StageRun(None if self.log_dir is None else self.log_dir / f"{log_name}.log")
        self._show(f"{label} ... " if run.log else f"{label}\n")
        began = time.perf_counter()
        try:
            with captured(run.log):
                yield run
        except BaseException:  # an interrupt too: the log shows where the stage stopped
            self._end(label, run, time.perf_counter() - began, "failed after ")
            if run.log is not None and run.log.is_file():
                self._show(_tail(run.log))
            raise
        self._end(label, run, time.perf_counter() - began)

    def _end(self, label: str, run: StageRun, seconds: float, outcome: str = "") -> None:
        run.seconds = seconds
        said = f"{outcome}{seconds:.1f} s"
        self._show(f"{said}, log {run.log}\n" if run.log else f"{label}: {said}\n")

    def _show(self, text: str) -> None:
        self.screen.write(text)
        self.screen.flush()


def _tail(log: Path) -> str:
    """The last lines of a log, indented under the stage's line."""
    with log.open(errors="replace") as lines:
        return "".join(f"    {line.rstrip()}\n" for line in deque(lines, maxlen=TAIL_LINES))
