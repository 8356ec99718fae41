"""A local-mode job's exit status, read from the engine rather than from compose's log race.

The SDK runs every job as ``compose up --abort-on-container-exit`` and takes compose's exit
status as the job's. docker-compose 1.29 (Debian's, and CI's) derives that status from whichever
container's log thread reports the stop first; when the engine's ``die`` event wins that race (a
container that fails within a second on a busy machine), compose exits 0 and a failed job is
reported as Succeeded. ``--exit-code-from`` makes compose (1.x and v2) ask the engine for the
first host's exit code instead. The other hosts still count: when one fails, compose stops host 1,
which then exits 143.
"""

from __future__ import annotations

from sagemaker.local.image import _SageMakerContainer

_sdk_compose = _SageMakerContainer._compose


def _compose_reporting_the_first_host(
    self: _SageMakerContainer, detached: bool = False
) -> list[str]:
    command = _sdk_compose(self, detached)
    return command if detached else [*command, "--exit-code-from", self.hosts[0]]


def report_exit_codes_from_the_engine() -> None:
    """Make every local-mode job in this process use ``--exit-code-from`` (idempotent)."""
    _SageMakerContainer._compose = _compose_reporting_the_first_host
