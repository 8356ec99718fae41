"""The inference image as SageMaker hosting runs it: non-root, a model folder it cannot change,
the accept-bind-to-port label, a health check, nothing that trains, and a clear 503 for a model
folder that fails to load."""

from __future__ import annotations

import shutil

import docker
import pytest
import requests

from orchestration.infra.inference_container import InferenceContainer
from orchestration.names import IMAGES
from orchestration.sagemaker_local.session import LocalModeError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(docker_ready, model_dir, free_port):
    with InferenceContainer(model_dir, free_port(), name="ncf-test-inference") as container:
        yield container


def test_the_server_runs_as_its_own_user_on_a_model_it_cannot_change(served, split):
    user_id = int(split.users["user_id"].iloc[0])
    answer = requests.post(f"{served.url}/invocations", json={"user_id": user_id}, timeout=10)
    assert answer.status_code == 200 and len(answer.json()["items"]) == 10
    server = served.container.exec_run(["stat", "-c", "%U", "/proc/1"]).output.decode()
    assert server.strip() == "model-server"  # serve execs the server: it is process 1
    tries = served.container.exec_run(
        ["setpriv", "--reuid=model-server", "--regid=model-server", "--init-groups",
         "sh", "-c", "touch /srv/model/x || mv /srv/model /srv/elsewhere"],
    )  # fmt: skip
    assert tries.exit_code != 0
    loaded = [line for line in served.logs() if '"model loaded"' in line]
    assert len(loaded) == 1 and '"sha256"' in loaded[0]


def test_the_image_declares_its_contract_and_ships_nothing_that_trains(docker_ready):
    image = docker.from_env().images.get(IMAGES["inference"])
    config = image.attrs["Config"]
    assert config["Labels"]["com.amazonaws.sagemaker.capabilities.accept-bind-to-port"] == "true"
    assert "/ping" in " ".join(config["Healthcheck"]["Test"])
    assert "OMP_NUM_THREADS" not in " ".join(config["Env"])
    pip = (
        docker.from_env()
        .containers.run(
            IMAGES["inference"], ["pip", "list", "--format=freeze"], entrypoint=[], remove=True
        )
        .decode()
    )
    installed = {line.split("==")[0].lower().replace("_", "-") for line in pip.splitlines()}
    assert {"torch", "fastapi", "uvicorn", "prometheus-client"} <= installed
    assert {"mlflow-skinny", "mlflow", "matplotlib", "sagemaker-training"}.isdisjoint(installed)


def test_a_model_folder_that_fails_to_load_is_a_503_that_says_why(
    docker_ready, model_dir, tmp_path, free_port
):
    broken = tmp_path / "model"
    shutil.copytree(model_dir, broken)
    (broken / "model.pt").write_bytes(b"not a state dict")
    refused = pytest.raises(LocalModeError, match=r"cannot serve .*model\.pt is unreadable")
    with refused, InferenceContainer(broken, free_port(), name="ncf-test-broken"):
        pass
