"""The offline ``LocalSession`` and the local S3 it reads and writes."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path

from sagemaker.local import LocalSession
from sagemaker.utils import _SENSITIVE_SYSTEM_PATHS

from orchestration.infra.services import LocalS3
from orchestration.sagemaker_local.compose import report_exit_codes_from_the_engine

log = logging.getLogger(__name__)

_SDK_CONFIG = {
    "SchemaVersion": "1.0",
    "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}},
}


class LocalModeError(RuntimeError):
    """A local-mode job or endpoint could not run; the message says why and what to do."""


def container_root(preferred: Path) -> Path:
    """Scratch space for local-mode jobs, outside the folders the SDK refuses to mount."""
    resolved = preferred.resolve()
    if any(str(resolved).startswith(path) for path in _SENSITIVE_SYSTEM_PATHS):
        fallback = Path(tempfile.gettempdir()) / "ncf-sagemaker-local"
        log.info("local mode cannot mount from %s; using %s instead", resolved, fallback)
        resolved = fallback
    resolved.mkdir(parents=True, exist_ok=True)
    return resolved


def local_session(store: LocalS3, scratch: Path) -> LocalSession:
    """A LocalSession that makes no request to AWS: S3 is the course's local store, its bucket
    the default one, and the store's own boto3 session its keys (and its full-disk errors)."""
    report_exit_codes_from_the_engine()  # a failed job must never pass as Succeeded
    session = LocalSession(
        boto_session=store.session(),
        s3_endpoint_url=store.endpoint_url,
        default_bucket=store.bucket,
        sagemaker_config=_SDK_CONFIG,
    )
    session.config = {"local": {"local_code": True, "container_root": str(scratch)}}
    return session


def upload(session: LocalSession, local_path: Path, prefix: str) -> str:
    """Copy a file or folder into the session's bucket; returns its ``s3://`` URI."""
    return session.upload_data(str(local_path), bucket=session.default_bucket(), key_prefix=prefix)


def download(session: LocalSession, s3_uri: str, target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    bucket, _, prefix = s3_uri.removeprefix("s3://").partition("/")
    if prefix not in session.list_s3_files(bucket, prefix):
        # A folder: without the slash its prefix also matches siblings ("evaluation-refined").
        prefix = prefix.rstrip("/") + "/"
    session.download_data(str(target), bucket, key_prefix=prefix)
    return target


def run_job(kind: str, run: Callable[[], object]) -> None:
    """Run an SDK job call; its failure becomes a LocalModeError that points at the log."""
    try:
        run()
    except RuntimeError as exc:
        raise LocalModeError(
            f"the local-mode {kind} job failed ({exc}); its container log is above"
        ) from exc
