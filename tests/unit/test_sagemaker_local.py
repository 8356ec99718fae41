"""The SageMaker facade and the main job's backends without Docker: session settings, instance
choice, scratch paths, hyperparameters, the endpoint's error answers, the fallback to processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from orchestration import probes
from orchestration.infra import containers
from orchestration.infra.containers import training_environment
from orchestration.infra.services import ACCESS_KEY, REGION, LocalS3
from orchestration.probes import choose_instance_type
from orchestration.sagemaker_local import session as sagemaker_session
from orchestration.sagemaker_local.endpoints import recommend
from orchestration.sagemaker_local.jobs import training_estimator
from orchestration.sagemaker_local.session import LocalModeError, container_root, local_session
from training.hyperparameters import hyperparameter_value


def test_session_makes_no_aws_request_and_targets_the_local_store(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the session tried to reach the network")

    monkeypatch.setattr("botocore.endpoint.Endpoint.make_request", refuse)
    session = local_session(LocalS3(tmp_path, "course", port=1), tmp_path)
    assert session._default_bucket_name_override == "course"  # default_bucket() asks the store
    assert session.boto_region_name == REGION
    assert session.s3_client.meta.endpoint_url == "http://127.0.0.1:1"
    assert session.config["local"] == {"local_code": True, "container_root": str(tmp_path)}
    assert session.sagemaker_config["SageMaker"]["PythonSDK"]["Modules"]["TelemetryOptOut"]
    credentials = session.boto_session.get_credentials()
    assert credentials.access_key == ACCESS_KEY  # never the AWS credential chain


@pytest.mark.parametrize("hosts", [["algo-1-ab12c"], ["algo-1-ab12c", "algo-2-ab12c"]])
def test_a_jobs_exit_status_comes_from_its_first_host(tmp_path, hosts):
    """compose 1.29 alone can report a container that failed within a second as exit 0."""
    from sagemaker.local.image import _SageMakerContainer

    local_session(LocalS3(tmp_path, "course", port=1), tmp_path)
    container = object.__new__(_SageMakerContainer)  # no Docker needed to build the command
    container.hosts, container.container_root = hosts, str(tmp_path)
    container.compose_cmd_prefix = ["docker-compose"]
    command = container._compose()
    assert command[command.index("--exit-code-from") + 1] == "algo-1-ab12c"
    assert "--abort-on-container-exit" in command
    assert "--exit-code-from" not in container._compose(detached=True)


def test_scratch_space_avoids_folders_the_sdk_refuses(tmp_path, monkeypatch):
    assert container_root(tmp_path / "scratch") == (tmp_path / "scratch").resolve()
    monkeypatch.setattr(sagemaker_session, "_SENSITIVE_SYSTEM_PATHS", [str(tmp_path.resolve())])
    fallback = container_root(tmp_path / "scratch")
    assert not str(fallback).startswith(str(tmp_path.resolve()))
    assert fallback.is_dir()


def _fake_commands(monkeypatch, *, smi: bool, smi_ok: bool | None, runtimes: str | None):
    """None: that command hangs (nvidia-smi) or is not there (docker)."""
    monkeypatch.setattr(probes.shutil, "which", lambda name: "/usr/bin/" + name if smi else None)

    def run(command, **kwargs):
        if command[0] == "nvidia-smi":
            if smi_ok is None:
                raise subprocess.TimeoutExpired(command, kwargs["timeout"])
            return subprocess.CompletedProcess(command, 0 if smi_ok else 9, "", "")
        if runtimes is None:
            raise FileNotFoundError(command[0])
        return subprocess.CompletedProcess(command, 0, runtimes, "")

    monkeypatch.setattr(probes.subprocess, "run", run)


@pytest.mark.parametrize(
    ("smi", "smi_ok", "runtimes", "expected", "reason"),
    [
        (False, True, "{}", "local", "no nvidia-smi"),
        (True, False, "{}", "local", "driver is not working"),
        (True, None, "{}", "local", "nvidia-smi fails or hangs"),
        (True, True, None, "local", "`docker info` fails or hangs"),
        (True, True, '{"runc":{}}', "local", "NVIDIA Container Toolkit"),
        (True, True, '{"nvidia":{},"runc":{}}', "local_gpu", "nvidia runtime"),
    ],
)
def test_gpu_instance_only_when_docker_can_pass_a_gpu(
    monkeypatch, smi, smi_ok, runtimes, expected, reason
):
    _fake_commands(monkeypatch, smi=smi, smi_ok=smi_ok, runtimes=runtimes)
    choice = choose_instance_type()
    assert choice.instance_type == expected
    assert reason in choice.reason


def test_hyperparameters_are_strings_with_lists_space_separated():
    assert hyperparameter_value((256, 128, 64)) == "256 128 64"
    assert hyperparameter_value(0.001) == "0.001"
    assert hyperparameter_value(True) == "True"


@pytest.mark.parametrize(
    ("cores", "instances", "threads"), [(16, 1, "16"), (16, 2, "8"), (2, 3, "1"), (None, 1, "1")]
)
def test_each_training_instance_gets_its_share_of_the_cores(monkeypatch, cores, instances, threads):
    monkeypatch.setattr(containers.os, "cpu_count", lambda: cores)
    assert training_environment(instances) == {"OMP_NUM_THREADS": threads}


def test_estimator_passes_the_thread_share_and_the_callers_variables(tmp_path, monkeypatch):
    monkeypatch.setattr(containers.os, "cpu_count", lambda: 8)
    estimator = training_estimator(
        local_session(LocalS3(tmp_path, "course", port=1), tmp_path),
        hyperparameters={"epochs": 1},
        output_path="s3://bucket/models",
        instance_count=2,
        environment={"MLFLOW_TRACKING_URI": "http://mlflow:5000"},
    )
    assert estimator.environment == {
        "OMP_NUM_THREADS": "4",
        "MLFLOW_TRACKING_URI": "http://mlflow:5000",
    }


def test_an_error_answer_from_the_endpoint_is_raised_not_returned():
    """Local mode's runtime client returns a 4xx/5xx body like any other answer."""
    predictor = SimpleNamespace(predict=lambda payload: {"error": "unknown user_id 7"})
    with pytest.raises(LocalModeError, match="no recommendations for 7: unknown user_id"):
        recommend(predictor, 7, 3)


def test_cleanup_removes_scratch_folders_without_docker(tmp_path, monkeypatch):
    from orchestration.infra import cleanup

    scratch = tmp_path / "scratch"
    (scratch / "job").mkdir(parents=True)
    (scratch / "job" / "model.tar.gz").write_bytes(b"x")
    monkeypatch.setattr(cleanup, "docker_client", lambda: None)  # no engine answers
    report = cleanup.clean([scratch, tmp_path / "absent"])
    assert report.folders == [scratch] and not scratch.exists()
    assert report.containers == [] and report.network is False
    assert report.old_images == 0
    assert report.format().endswith("1 scratch folder(s), 0 old image version(s) (0.0 GB)")


def test_without_the_localmode_extra_local_mode_is_refused_by_name(monkeypatch):
    """``pip install .`` alone brings no Docker SDK; ``--mode auto`` must still fall back."""
    monkeypatch.setitem(sys.modules, "docker", None)  # import docker now raises ImportError
    assert probes.local_mode_problem() == (
        "the localmode extra is not installed (docker is missing: pip install -e '.[localmode]')"
    )


def test_main_job_falls_back_to_processes_with_one_line_saying_how(tmp_path, monkeypatch, capsys):
    from orchestration.main_job import backends

    monkeypatch.setattr(backends, "local_mode_problem", lambda: "no Docker engine answers")
    with backends.open_backend("auto", Path(tmp_path)) as backend:
        assert backend.description == "plain processes"
    assert "make images" in capsys.readouterr().out
    with (
        pytest.raises(RuntimeError, match="no Docker engine answers"),
        backends.open_backend("local-mode", Path(tmp_path)),
    ):
        pass


def test_main_job_builds_missing_images_where_an_engine_answers(tmp_path, monkeypatch, capsys):
    """Only then; the second look decides (here: compose went missing meanwhile, so processes)."""
    from orchestration.infra import images
    from orchestration.main_job import backends

    answers = iter(["the image ncf-training:latest is not built", "no compose"])
    monkeypatch.setattr(backends, "local_mode_problem", lambda: next(answers))
    builds = []
    monkeypatch.setattr(images, "ensure_images", lambda: builds.append(1) or "built 1 image(s)")
    with backends.open_backend("auto", Path(tmp_path)) as backend:
        assert backend.description == "plain processes"
    assert builds == [1]
    assert "built 1 image(s)" in capsys.readouterr().out
