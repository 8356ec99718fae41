"""What the main job shows while it runs: one line a stage, its whole output in a log file.

By default a stage's output (the entry point it runs, the SDK's log records, the containers'
logs) goes to ``<work dir>/logs/<stage>.log`` through ``joblog.captured``, and the screen gets
one line: the stage's number, what ran, the seconds it took and its log. On a terminal that line
keeps count while the stage runs (seconds so far, and the last epoch its log reported). A stage
that fails adds the end of its log, where its error is. ``--verbose`` (no log folder) streams
everything instead.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from orchestration.lessons.joblog import captured

TAIL_LINES = 15  # of a failed stage's log: its error and what led to it
TICK_SECONDS = 1.0  # how often a terminal's stage line is redrawn
_EPOCH = re.compile(r"\bepoch (\d+)\b")  # the trainer's per-epoch log line (training.train)
_REDRAW = "\r\x1b[K"  # back to the start of the line and clear it


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
        stop_ticker = self._ticker(label, run.log, began)
        try:
            with captured(run.log):
                yield run
        except BaseException:  # an interrupt too: the log shows where the stage stopped
            self._end(label, run, began, stop_ticker, "failed after ")
            if run.log is not None and run.log.is_file():
                self._show(_tail(run.log))
            raise
        self._end(label, run, began, stop_ticker)

    def _ticker(self, label: str, log: Path | None, began: float) -> Callable[[], None] | None:
        """On a terminal, redraw the stage's line every tick; returns what stops the redraws."""
        if log is None or not self.screen.isatty():
            return None
        done = threading.Event()
        progress = _Progress(log)

        def tick() -> None:
            while not done.wait(TICK_SECONDS):
                seconds = time.perf_counter() - began
                self._show(f"{_REDRAW}{label} ... {progress.read()}{seconds:.0f} s")

        thread = threading.Thread(target=tick, daemon=True)
        thread.start()

        def stop() -> None:
            done.set()
            thread.join()
            self._show(f"{_REDRAW}{label} ... ")

        return stop

    def _end(
        self,
        label: str,
        run: StageRun,
        began: float,
        stop_ticker: Callable[[], None] | None,
        outcome: str = "",
    ) -> None:
        run.seconds = time.perf_counter() - began
        said = f"{outcome}{run.seconds:.1f} s"
        if stop_ticker is not None:
            stop_ticker()
        self._show(f"{said}, log {run.log}\n" if run.log else f"{label}: {said}\n")

    def _show(self, text: str) -> None:
        self.screen.write(text)
        self.screen.flush()


class _Progress:
    """The last epoch a growing log has reported, reading only what was added since the last
    look (a long stage's log is read once, not once a tick)."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.offset = 0
        self.epoch: str | None = None

    def read(self) -> str:
        """``epoch 7, `` after the last epoch line so far, else nothing."""
        if self.log.is_file():
            with self.log.open("rb") as stream:
                stream.seek(self.offset)
                added = stream.read()
            complete = added.rfind(b"\n") + 1  # a line still being written waits for the next
            self.offset += complete
            epochs = _EPOCH.findall(added[:complete].decode(errors="replace"))
            self.epoch = epochs[-1] if epochs else self.epoch
        return f"epoch {self.epoch}, " if self.epoch else ""


def _tail(log: Path) -> str:
    """The last lines of a log, indented under the stage's line."""
    with log.open(errors="replace") as lines:
        return "".join(f"    {line.rstrip()}\n" for line in deque(lines, maxlen=TAIL_LINES))
