"""The one S3 store and MLflow server of the lessons: the folder and ports that
``python -m orchestration.infra.services up`` uses too, so every lesson's runs land in one MLflow
store and one MLflow UI shows them all."""

from __future__ import annotations

from pathlib import Path

from orchestration.infra.services import COURSE_SERVICES, LocalServices


def course_services(repo: Path) -> LocalServices:
    """``.start()`` reuses the servers where they already run (an earlier lesson's kernel, or
    ``up`` in a terminal) and starts them otherwise; ``.stop()`` stops only what it started."""
    return LocalServices(repo / COURSE_SERVICES)
