"""Which backend this machine gets: local-mode jobs when asked for or possible, else processes.

Local mode needs a Docker engine, docker compose and the course's images. Where an engine answers
but images are missing they are built first; where anything else is missing the main job still
runs, as plain processes, after one line that says how to get local mode.
The local-mode backend (and with it the SageMaker SDK) is imported only when it is used.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from orchestration.main_job.processes import ProcessBackend
from orchestration.main_job.stages import Backend
from orchestration.probes import ENABLE_HINT, MISSING_IMAGE, local_mode_problem

MODES = ("auto", "local-mode", "processes")


@contextmanager
def open_backend(mode: str, work_dir: Path) -> Iterator[Backend]:
    """Local-mode jobs when asked for or possible (``auto``), plain processes otherwise."""
    if mode == "processes":
        yield ProcessBackend(work_dir)
        return
    problem = local_mode_problem()
    if problem is not None and problem.startswith(MISSING_IMAGE):
        # An engine answers and only images are missing: build them (minutes, the first time).
        from orchestration.infra.images import ensure_images

        print(ensure_images())
        problem = local_mode_problem()
    if problem is not None:
        if mode == "local-mode":
            raise RuntimeError(f"SageMaker local mode cannot run: {problem}; {ENABLE_HINT}")
        print(f"SageMaker local mode unavailable ({problem}): plain processes; {ENABLE_HINT}")
        yield ProcessBackend(work_dir)
        return
    from orchestration.infra.cleanup import clean
    from orchestration.infra.services import LocalServices
    from orchestration.main_job.local_mode import LocalModeBackend

    with LocalServices(work_dir / "services") as services:
        try:
            yield LocalModeBackend(work_dir, services)
        finally:
            clean([], network=False)
