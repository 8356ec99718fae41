"""A job's console output into a file, for notebooks and the main job that run many jobs.

While a job runs the SDK prints every container's log to ``sys.stdout`` and reports its own steps
through ``logging`` (importing it switches the root logger to INFO). One job's log is worth
reading live; ten of them bury the lesson. Captured, each job keeps its whole log on disk and the
notebook shows the lines that matter.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from contextvars import ContextVar
from pathlib import Path
from typing import TextIO

_open_log: ContextVar[TextIO | None] = ContextVar("open_log", default=None)
_COLOUR = re.compile(r"\x1b\[[0-9;]*m")  # ANSI SGR sequences


@contextmanager
def captured(logfile: Path | None) -> Iterator[Path | None]:
    """Send stdout, stderr and the root logger's records of the block to ``logfile`` (kept there
    when the job fails too); None leaves them where they were going. Handlers hold the stream
    they were made with, so redirecting ``sys.stderr`` alone would leave the SDK's log records
    on the screen."""
    if logfile is None:
        yield None
        return
    logfile.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    handlers = root.handlers[:]
    with (
        logfile.open("w", buffering=1) as stream,
        redirect_stdout(stream),
        redirect_stderr(stream),
    ):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))
        root.handlers = [handler]
        token = _open_log.set(stream)
        try:
            yield logfile
        finally:
            _open_log.reset(token)
            root.handlers = handlers


def capturing_log() -> TextIO | None:
    """The open log of the enclosing :func:`captured` block, None outside one. A child process
    writes to its own file descriptors, which redirecting ``sys.stdout`` does not reach: give it
    this stream as its stdout and stderr."""
    return _open_log.get()


def matching_lines(logfile: Path, *texts: str) -> list[str]:
    """The lines of a captured log that mention any of ``texts`` (e.g. "resuming", "rank"),
    without the colour codes compose puts before each container's lines."""
    lines = _COLOUR.sub("", logfile.read_text()).splitlines()
    return [line for line in lines if any(text in line for text in texts)]
