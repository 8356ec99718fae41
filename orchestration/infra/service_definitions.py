"""How the course's two services start and when they are ready: the one definition of each.

The local S3 (SeaweedFS' ``weed server -s3``) and the MLflow tracking server run either as host
processes (``orchestration.infra.services``: tests, the main job, the lessons) or as compose
services (docker-compose.yml: the images run ``python -m orchestration.infra.service_definitions``).
Both take their command line, environment and readiness check from here, so a flag is written
once. The module needs only the standard library: the ``ncf-s3`` image has no other package.

    python -m orchestration.infra.service_definitions s3 --data /data      # exec weed
    python -m orchestration.infra.service_definitions mlflow --host 0.0.0.0 ...  # exec mlflow
    python -m orchestration.infra.service_definitions ready s3|mlflow       # exit 0 when ready
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from orchestration.names import (
    ACCESS_KEY,
    DEFAULT_BUCKET,
    MLFLOW_PORT,
    REGION,
    S3_PORT,
    SECRET_KEY,
)

# weed's graceful stop waits 15 s for its filer's gRPC streams; a kill loses nothing (verified).
S3_STOP_GRACE = 3.0
# weed marks every volume read-only once its disk has less than this free, and then fails each
# write with InternalError after a minute of retries. Its own default, 1 % of the disk, blocks
# writes with gigabytes still free on a large, well-filled disk (it failed CI that way).
S3_MIN_FREE_MIB = 512
MLFLOW_STOP_GRACE = 10.0
# weed turns these into its one admin identity (with none it accepts any key but lists no
# buckets and auto-creates none, which confuses more than it helps).
S3_KEYS = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
# The job runner (GenAI scorers) forks 8 more processes the course never uses.
MLFLOW_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
# weed's master, inside a container (the host process picks free ports instead).
WEED_MASTER_PORT = 9333


@dataclass(frozen=True)
class WeedPorts:
    """weed's inner servers. Its defaults (8080, 8888, ...) clash with SageMaker serving and
    with a second store, and gRPC ports default to port + 10000, which can overflow."""

    master: int
    volume: int
    filer: int
    master_grpc: int
    volume_grpc: int
    filer_grpc: int
    s3_grpc: int

    def flags(self) -> list[str]:
        return [
            f"-master.port={self.master}",
            f"-master.port.grpc={self.master_grpc}",
            f"-volume.port={self.volume}",
            f"-volume.port.grpc={self.volume_grpc}",
            f"-filer.port={self.filer}",
            f"-filer.port.grpc={self.filer_grpc}",
            f"-s3.port.grpc={self.s3_grpc}",
        ]


def weed_command(
    weed: str,
    data: str,
    *,
    host: str = "127.0.0.1",
    s3_bind: str = "127.0.0.1",
    s3_port: int = S3_PORT,
    ports: WeedPorts | None = None,
    min_free_mib: int = S3_MIN_FREE_MIB,
) -> list[str]:
    """``weed server`` with S3 on ``s3_bind:s3_port`` and its other parts on ``host`` only."""
    return [
        weed,
        "-logtostderr",  # else it also writes log files into TMPDIR
        "server",
        f"-dir={data}",
        f"-ip={host}",
        f"-ip.bind={host}",
        *(ports.flags() if ports else []),
        "-s3",
        f"-s3.ip.bind={s3_bind}",
        f"-s3.port={s3_port}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        # Volumes grow per bucket: with weed's default limit (8) a third bucket takes no writes.
        "-volume.max=100",
        f"-volume.minFreeSpace={min_free_mib}MiB",
    ]


def mlflow_command(
    python: str,
    *,
    host: str,
    port: int = MLFLOW_PORT,
    backend_store_uri: str,
    bucket: str = DEFAULT_BUCKET,
    allowed_hosts: Sequence[str],
    cors_origins: Sequence[str] = (),
) -> list[str]:
    """``mlflow server`` with runs in ``backend_store_uri`` and artifacts in the local S3.

    With ``--serve-artifacts`` clients upload through this server, so neither the host's code nor
    a container needs S3 keys or a route to the store."""
    command = [
        *(python, "-m", "mlflow", "server"),
        *("--host", host, "--port", str(port)),
        # One learner: each worker is a whole MLflow process (its memory: docs/benchmarks.md).
        *("--workers", "1"),
        *("--backend-store-uri", backend_store_uri),
        "--serve-artifacts",
        *("--artifacts-destination", f"s3://{bucket}/mlflow"),
        # MLflow 3 answers only Host headers it knows.
        *("--allowed-hosts", ",".join(allowed_hosts)),
    ]
    if cors_origins:
        # It refuses state-changing requests from origins other than localhost.
        command += ["--cors-allowed-origins", ",".join(cors_origins)]
    return command


def _get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.read()
    except (urllib.error.URLError, OSError):
        return None


def s3_ready(s3_url: str, master_url: str) -> bool:
    """S3 answers and the volume server has registered (before that, reads of stored objects
    fail with InternalError)."""
    if _get(f"{s3_url}/healthz") is None:
        return False
    status = _get(f"{master_url}/dir/status")
    try:
        return bool(status and json.loads(status)["Topology"]["DataCenters"])
    except (ValueError, KeyError, TypeError):
        return False


def mlflow_ready(tracking_uri: str) -> bool:
    """MLflow's own health route answers 200."""
    return _get(f"{tracking_uri.rstrip('/')}/health") is not None


def ensure_bucket(client: Any, bucket: str) -> None:
    """Create ``bucket`` unless it exists (weed may list none for a while after a restart)."""
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=bucket)


def _s3_client(endpoint_url: str) -> Any:
    """A boto3 client with the store's keys (the mlflow image has boto3; the s3 image not)."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestration.infra.service_definitions",
        description="Run a course service in a container, or say whether it is ready.",
    )
    actions = parser.add_subparsers(dest="action", required=True)
    s3 = actions.add_parser("s3", help="exec weed server with S3 on every interface")
    s3.add_argument("--data", default="/data")
    mlflow = actions.add_parser("mlflow", help="create the artifact bucket, exec mlflow server")
    mlflow.add_argument("--host", default="0.0.0.0")
    mlflow.add_argument("--backend-store-uri", required=True)
    mlflow.add_argument("--s3-endpoint-url", required=True)
    mlflow.add_argument("--allowed-hosts", required=True, help="comma-separated")
    ready = actions.add_parser("ready", help="exit 0 when the service in this container is ready")
    ready.add_argument("service", choices=("s3", "mlflow"))
    args = parser.parse_args(argv)
    if args.action == "ready":
        if args.service == "s3":
            ok = s3_ready(f"http://127.0.0.1:{S3_PORT}", f"http://127.0.0.1:{WEED_MASTER_PORT}")
        else:
            ok = mlflow_ready(f"http://127.0.0.1:{MLFLOW_PORT}")
        return 0 if ok else 1
    if args.action == "s3":
        command = weed_command("weed", args.data, s3_bind="0.0.0.0")
        environment = S3_KEYS
    else:
        ensure_bucket(_s3_client(args.s3_endpoint_url), DEFAULT_BUCKET)
        command = mlflow_command(
            sys.executable,
            host=args.host,
            backend_store_uri=args.backend_store_uri,
            allowed_hosts=args.allowed_hosts.split(","),
        )
        environment = S3_KEYS | MLFLOW_ENV | {"MLFLOW_S3_ENDPOINT_URL": args.s3_endpoint_url}
    os.execvpe(command[0], command, os.environ | environment)
    return 1  # not reached: exec replaced this process


if __name__ == "__main__":
    sys.exit(main())
