"""``python -m inference [serve]``: the model server, as SageMaker starts it (``docker run IMAGE
serve``) and as a plain host process. The port comes from ``SAGEMAKER_BIND_TO_PORT`` (8080), the
worker processes from ``SAGEMAKER_MODEL_SERVER_WORKERS`` (1), the model from ``SM_MODEL_DIR``.
Every log line is a JSON object (one per request, see :mod:`inference.observability`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile

import uvicorn

# dictConfig rather than basicConfig: uvicorn applies it again in each worker process.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "inference.observability.JsonFormatter"}},
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "json",
        }
    },
    "root": {"handlers": ["stdout"], "level": "INFO"},
}


def _fresh_metrics_dir() -> None:
    """prometheus_client's multiprocess mode: each worker writes its own files there and
    ``/metrics`` sums them. Set before any worker imports the client; a given folder is emptied
    so a restart does not count the last run's requests, else each server makes its own."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
    else:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="ncf-metrics-")


def _env_int(name: str, default: int, parser: argparse.ArgumentParser) -> int:
    value = os.environ.get(name, str(default))
    if not value.isdecimal() or int(value) < 1:  # isdigit() passes '²', which int() refuses
        parser.error(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m inference", description="Serve /ping and /invocations for a model folder."
    )
    parser.add_argument("command", nargs="?", choices=["serve"], help="SageMaker passes it")
    parser.parse_args(argv)
    port = _env_int("SAGEMAKER_BIND_TO_PORT", 8080, parser)
    workers = _env_int("SAGEMAKER_MODEL_SERVER_WORKERS", 1, parser)
    _fresh_metrics_dir()
    uvicorn.run(
        "inference.app:app",
        host="0.0.0.0",
        port=port,
        workers=workers,
        log_config=LOGGING,
        access_log=False,  # the app logs each request itself, with its inference id
    )


if __name__ == "__main__":
    main()
