"""The /opt/ml tree, mounts, GPU requests and model packaging for a plain ``docker run``, with the
engine faked."""

from __future__ import annotations

import json
import os

from orchestration.infra import containers
from orchestration.infra.containers import OptMlTree
from training.artifacts import extract_model_archive


def test_tree_holds_the_config_files_local_mode_writes(tmp_path):
    tree = containers.write_opt_ml(
        tmp_path / "opt_ml", {"model": "gmf", "epochs": 2, "layers": [64, 32]}, ["train"]
    )
    config = {p.name: json.loads(p.read_text()) for p in tree.config.iterdir()}
    assert config["hyperparameters.json"] == {"model": "gmf", "epochs": "2", "layers": "64 32"}
    assert config["inputdataconfig.json"] == {"train": {"TrainingInputMode": "File"}}
    assert config["resourceconfig.json"]["hosts"] == [config["resourceconfig.json"]["current_host"]]
    assert tree.model.is_dir() and (tree.output / "data").is_dir()


def test_a_new_tree_forgets_the_last_run(tmp_path):
    tree = containers.write_opt_ml(tmp_path / "opt_ml", {}, ["train"])
    (tree.output / "failure").write_text("old\n")
    (tree.model / "model.pt").write_text("old")
    tree = containers.write_opt_ml(tmp_path / "opt_ml", {}, ["train"])
    assert not list(tree.model.iterdir())
    assert containers.ContainerRun(0, "", tree).failure is None


def test_mounts_keep_inputs_read_only_and_never_hide_the_code(tmp_path):
    tree = OptMlTree(tmp_path)
    mounts = containers.volumes(tree, {"train": tmp_path / "data", "checkpoints": tmp_path / "ck"})
    binds = {m["bind"]: m["mode"] for m in mounts.values()}
    assert binds == {
        "/opt/ml/input/config": "ro",
        "/opt/ml/model": "rw",
        "/opt/ml/output": "rw",
        "/opt/ml/input/data/train": "ro",
        "/opt/ml/input/data/checkpoints": "rw",
    }
    assert "/opt/ml" not in binds  # the image's /opt/ml/code would vanish under it


def test_gpu_passthrough_only_when_asked():
    assert containers.device_requests(False) == []
    (request,) = containers.device_requests(True)
    assert request["Count"] == -1 and request["Capabilities"] == [["gpu"]]


def test_packaged_model_unpacks_to_the_same_files(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.pt").write_bytes(b"weights")
    (model / "metrics.json").write_text("{}")
    archive = containers.package_model(model, tmp_path / "out" / "model.tar.gz")
    unpacked = extract_model_archive(archive, tmp_path / "unpacked")
    assert sorted(p.name for p in unpacked.iterdir()) == ["metrics.json", "model.pt"]
    assert (unpacked / "model.pt").read_bytes() == b"weights"


class _FakeContainer:
    def __init__(self, tree, code):
        self.tree, self.code, self.removed = tree, code, False

    def wait(self):
        (self.tree.output / "failure").write_text("invalid hyperparameter: boom\n")
        return {"StatusCode": self.code}

    def logs(self):
        return b"error: invalid hyperparameter: boom\n"

    def remove(self, force):
        self.removed = force


class _FakeClient:
    def __init__(self, container):
        self.container = container
        self.containers = self
        self.kwargs = {}

    def run(self, image, command, **kwargs):
        self.kwargs = kwargs | {"image": image, "command": command}
        return self.container


def test_run_returns_exit_code_logs_and_failure_and_removes_the_container(tmp_path):
    tree = containers.write_opt_ml(tmp_path / "opt_ml", {}, ["train"])
    fake = _FakeContainer(tree, 2)
    client = _FakeClient(fake)
    run = containers.run_training_container(
        tree, {"train": tmp_path}, environment={"X": "1"}, job_name="j", client=client
    )
    assert (run.exit_code, run.failure) == (2, "invalid hyperparameter: boom")
    assert "boom" in run.logs and fake.removed
    assert client.kwargs["command"] == "train" and client.kwargs["detach"]
    assert client.kwargs["environment"]["TRAINING_JOB_NAME"] == "j"
    assert client.kwargs["environment"]["X"] == "1"
    assert client.kwargs["environment"]["OMP_NUM_THREADS"] == str(os.cpu_count())
    assert client.kwargs["device_requests"] == []
