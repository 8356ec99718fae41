"""The compose services and the training image against a real Docker engine: the S3 store,
MLflow and JupyterLab as a learner starts them, reached from the host and SageMaker's network."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import boto3
import docker
import pytest
import requests
from mlflow import MlflowClient

from orchestration.infra.services import docker_gateway
from orchestration.names import DEFAULT_BUCKET, NETWORK
from tests.helpers import REPO

MLFLOW_IMAGE = "ncf-mlflow"


@pytest.fixture(scope="module")
def docker_engine(service_images):
    docker_gateway()  # creates the external network compose expects
    return docker.from_env()


def run_on_network(client: docker.DockerClient, code: str) -> str:
    """Run Python in the MLflow image on SageMaker's network, as a training container would."""
    output = client.containers.run(
        MLFLOW_IMAGE, ["python", "-c", code], network=NETWORK, remove=True
    )
    return output.decode()


def test_training_container_logs_to_the_embedded_server(docker_engine, mlflow_server):
    if mlflow_server.host == "127.0.0.1":
        pytest.skip("the server fell back to 127.0.0.1: Docker's gateway is not on this machine")
    code = (
        f"import mlflow; client = mlflow.MlflowClient({mlflow_server.tracking_uri!r}); "
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


def test_compose_services_answer_host_and_sagemaker_network(docker_engine, free_port):
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


def test_compose_jupyterlab_imports_the_mounted_project_and_drives_the_engine(
    docker_engine, jupyterlab_image, free_port
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
