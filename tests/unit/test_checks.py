"""Environment checks: each failure path with faked tools and a faked engine."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from botocore.exceptions import ClientError
from docker.errors import APIError, DockerException, ImageNotFound

from orchestration import probes
from orchestration.infra import checks
from orchestration.probes import InstanceChoice

RTX = "NVIDIA GeForce RTX 4060 Laptop GPU, 555.99, 8188 MiB"


class FakeDocker:
    """Answers like docker.DockerClient for the calls the checks make."""

    def __init__(self, missing: tuple[str, ...] = (), run=lambda: b"True\n") -> None:
        self.missing = missing
        self.root_dir = "/nonexistent/docker-root"
        self.images = SimpleNamespace(get=self._get_image)
        self.containers = SimpleNamespace(run=self._run)
        self.run_result = run
        self.run_kwargs: dict = {}

    def version(self) -> dict[str, str]:
        return {"Version": "27.3.1", "ApiVersion": "1.47", "Os": "linux"}

    def info(self) -> dict[str, str]:
        return {"DockerRootDir": self.root_dir}

    def _get_image(self, name: str) -> object:
        if name in self.missing:
            raise ImageNotFound(name)
        return object()

    def _run(self, image: str, command: list[str], **kwargs) -> bytes:
        self.run_kwargs = kwargs | {"image": image, "command": command}
        return self.run_result()


@pytest.fixture
def engine(monkeypatch):
    client = FakeDocker()
    monkeypatch.setattr(checks, "_docker", lambda: client)
    return client


@pytest.fixture
def engine_down(monkeypatch):
    def refuse(**kwargs):
        raise DockerException("Error while fetching server API version: Connection refused")

    monkeypatch.setattr(checks.docker, "from_env", refuse)


def _commands(monkeypatch, answers: dict[str, str | None]) -> None:
    """``command_output`` answers by the command's first two words; anything else fails."""
    monkeypatch.setattr(
        probes, "command_output", lambda command, **kw: answers.get(" ".join(command[:2]))
    )


def _gpu(monkeypatch, present: bool) -> None:
    monkeypatch.setattr(checks, "gpu_present", lambda: present)


def _wsl(monkeypatch, wsl: bool) -> None:
    monkeypatch.setattr(checks, "is_wsl", lambda: wsl)


def test_report_prints_fixes_for_failures_and_hints_for_skips(capsys):
    results = [
        checks.Check("Engine", True, "Docker 27", fix="never shown"),
        checks.Check("Images", False, "not built: x", fix="make images"),
        checks.Check("GPU", True, "no GPU", fix="install a driver", skipped=True),
    ]
    checks.report(results)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("PASS  Engine ")
    assert lines[1].startswith("FAIL  Images ")
    assert lines[2].strip() == "fix: make images"
    assert lines[3].startswith("SKIP  GPU ")
    assert lines[4].strip() == "hint: install a driver"
    assert "never shown" not in "\n".join(lines)
    assert not checks.passed(results)
    assert checks.passed(results[::2])


@pytest.mark.parametrize(("wsl", "fix"), [(False, "systemctl start docker"), (True, "WSL integ")])
def test_docker_engine_down_says_how_to_start_it(monkeypatch, engine_down, wsl, fix):
    _wsl(monkeypatch, wsl)
    check = checks.docker_engine()
    assert not check.ok
    assert "Connection refused" in check.detail
    assert fix in check.fix


def test_docker_engine_reports_its_version(engine):
    check = checks.docker_engine()
    assert check.ok
    assert check.detail == "Docker 27.3.1 (API 1.47, linux)"


@pytest.mark.parametrize(
    ("answers", "ok", "detail"),
    [
        ({"docker compose": "v2.29.1"}, True, "docker compose 2.29.1: new enough"),
        ({"docker-compose version": "1.29.2"}, True, "docker-compose 1.29.2: new enough"),
        ({"docker-compose version": "1.25.0"}, True, "local_gpu needs >= 1.28 or v2"),
        ({}, False, "neither `docker compose` nor `docker-compose`"),
    ],
)
def test_compose_prefers_the_v2_plugin_and_notes_local_gpu(monkeypatch, answers, ok, detail):
    _commands(monkeypatch, answers)
    check = checks.compose()
    assert check.ok is ok
    assert detail in check.detail
    assert bool(check.fix) is not ok


def test_missing_images_are_named_with_the_build_command(monkeypatch, engine):
    engine.missing = ("ncf-training:latest", "ncf-mlflow:latest")
    check = checks.images()
    assert not check.ok
    assert check.detail == "not built: ncf-training:latest, ncf-mlflow:latest"
    assert "make images" in check.fix
    assert "sudo make bootstrap" in check.fix
    engine.missing = ()
    assert checks.images().ok


def test_images_without_an_engine_fail(engine_down):
    check = checks.images()
    assert not check.ok
    assert "no Docker engine" in check.detail


def test_free_disk_is_measured_in_this_folder_and_in_dockers_data_root(
    monkeypatch, engine, tmp_path
):
    monkeypatch.chdir(tmp_path)
    engine.root_dir = str(tmp_path / "docker")
    (tmp_path / "docker").mkdir()
    check = checks.disk_space(min_free_gib=0)
    assert check.ok
    assert re.fullmatch(
        rf"[\d.]+ GiB free in this folder, "
        rf"[\d.]+ GiB free in Docker's data root \({tmp_path / 'docker'}\)",
        check.detail,
    )
    short = checks.disk_space(min_free_gib=10**9)
    assert not short.ok
    assert short.detail.endswith("under the 1e+09 GiB the course needs")
    assert "docker builder prune" in short.fix


def test_free_disk_without_a_local_docker_root_measures_this_folder(
    monkeypatch, tmp_path, engine_down
):
    """No engine, or Docker Desktop whose data root lives inside its VM."""
    monkeypatch.chdir(tmp_path)
    check = checks.disk_space(min_free_gib=0)
    assert check.ok
    assert "Docker" not in check.detail
    assert re.fullmatch(r"[\d.]+ GiB free in this folder", check.detail)


def test_no_nvidia_smi_is_a_skip_with_a_driver_hint(monkeypatch):
    monkeypatch.setattr(probes.shutil, "which", lambda name: None)
    _wsl(monkeypatch, True)
    check = checks.nvidia_gpu()
    assert check.ok and check.skipped
    assert checks.NO_GPU in check.detail
    assert "driver on Windows" in check.fix


def test_broken_driver_fails_and_a_working_one_is_described(monkeypatch):
    monkeypatch.setattr(probes.shutil, "which", lambda name: "/usr/bin/" + name)
    _commands(monkeypatch, {})
    broken = checks.nvidia_gpu()
    assert not broken.ok
    assert "fails" in broken.detail
    _commands(monkeypatch, {"nvidia-smi --query-gpu=name,driver_version,memory.total": RTX})
    working = checks.nvidia_gpu()
    assert working.ok and not working.skipped
    assert working.detail == "NVIDIA GeForce RTX 4060 Laptop GPU (driver 555.99, 8188 MiB)"


def _torch(monkeypatch, available: bool, cuda: str | None) -> None:
    monkeypatch.setattr(checks.torch.cuda, "is_available", lambda: available)
    monkeypatch.setattr(checks.torch.cuda, "get_device_name", lambda index: "RTX 4060")
    monkeypatch.setattr(checks.torch.version, "cuda", cuda)


def test_torch_cuda_sees_the_gpu(monkeypatch):
    _torch(monkeypatch, True, "12.8")
    check = checks.torch_cuda()
    assert check.ok and not check.skipped
    assert "CUDA 12.8 build, sees RTX 4060" in check.detail


def test_torch_without_a_gpu_is_a_skip(monkeypatch):
    _torch(monkeypatch, False, None)
    _gpu(monkeypatch, False)
    check = checks.torch_cuda()
    assert check.ok and check.skipped
    assert "CPU-only build" in check.detail


@pytest.mark.parametrize(
    ("cuda", "fix"), [(None, "download.pytorch.org/whl/cu"), ("12.8", "driver is too old")]
)
def test_torch_that_cannot_use_a_present_gpu_fails(monkeypatch, cuda, fix):
    _torch(monkeypatch, False, cuda)
    _gpu(monkeypatch, True)
    check = checks.torch_cuda()
    assert not check.ok
    assert fix in check.fix


def test_container_gpu_test_is_skipped_without_a_gpu(monkeypatch):
    _gpu(monkeypatch, False)
    monkeypatch.setattr(checks, "_docker", lambda: pytest.fail("no container without a GPU"))
    check = checks.container_gpu()
    assert check.ok and check.skipped
    assert check.detail == "no GPU: the course runs on CPU with instance_type local"


def test_container_gpu_asks_docker_for_all_gpus(monkeypatch, engine):
    _gpu(monkeypatch, True)
    check = checks.container_gpu("ncf-training:cuda")
    assert check.ok
    assert engine.run_kwargs["image"] == "ncf-training:cuda"
    assert engine.run_kwargs["command"] == ["python", "-c", checks.CUDA_PROBE]
    assert engine.run_kwargs["remove"] is True
    (request,) = engine.run_kwargs["device_requests"]
    assert request["Count"] == -1
    assert request["Capabilities"] == [["gpu"]]


def _raise(error: Exception):
    def run():
        raise error

    return run


@pytest.mark.parametrize(
    ("run", "wsl", "detail", "fix"),
    [
        (lambda: b"False\n", False, "CPU build", "CUDA base"),
        (_raise(APIError("could not select device driver")), False, "device driver", "nvidia-ctk"),
        (_raise(APIError("could not select device driver")), True, "device driver", "WSL 2"),
        (_raise(ImageNotFound("ncf-training:latest")), False, "not built", "make images"),
    ],
)
def test_container_gpu_failures_say_what_to_fix(monkeypatch, engine, run, wsl, detail, fix):
    _gpu(monkeypatch, True)
    _wsl(monkeypatch, wsl)
    engine.run_result = run
    check = checks.container_gpu()
    assert not check.ok
    assert detail in check.detail
    assert fix in check.fix


@pytest.mark.parametrize(
    ("choice", "gpu", "ok"),
    [
        (InstanceChoice("local", "no nvidia-smi"), False, True),
        (InstanceChoice("local_gpu", "nvidia runtime"), True, True),
        (InstanceChoice("local", "Docker has no nvidia runtime"), True, False),
    ],
)
def test_instance_type_fails_only_when_a_gpu_goes_unused(monkeypatch, choice, gpu, ok):
    monkeypatch.setattr(checks, "choose_instance_type", lambda: choice)
    _gpu(monkeypatch, gpu)
    check = checks.instance_type()
    assert check.ok is ok
    assert check.detail == f"{choice.instance_type}: {choice.reason}"


def test_s3_without_the_bucket_fails(monkeypatch):
    class NoBucket:
        def head_bucket(self, Bucket):
            raise ClientError({"Error": {"Code": "404", "Message": "Not Found"}}, "HeadBucket")

    monkeypatch.setattr(checks.boto3, "client", lambda *args, **kwargs: NoBucket())
    check = checks.local_s3("http://127.0.0.1:8333", "course")
    assert not check.ok
    assert "not for bucket course" in check.detail


def test_mlflow_health_and_version(monkeypatch):
    answers = {
        "/health": SimpleNamespace(ok=True, status_code=200, text="OK"),
        "/version": SimpleNamespace(ok=True, status_code=200, text="3.6.0\n"),
    }
    monkeypatch.setattr(
        checks.requests, "get", lambda url, timeout: answers[url.removeprefix("http://m:5000")]
    )
    assert checks.mlflow_server("http://m:5000").detail == "MLflow 3.6.0 answers on port 5000"
    answers["/health"] = SimpleNamespace(ok=False, status_code=503, text="")
    sick = checks.mlflow_server("http://m:5000")
    assert not sick.ok
    assert "HTTP 503" in sick.detail


def test_main_exits_1_when_a_check_fails(monkeypatch, capsys):
    failing = [checks.Check("Images", False, "not built", "make images")]
    monkeypatch.setattr(checks, "environment_checks", lambda: failing)
    assert checks.main() == 1
    assert "fix: make images" in capsys.readouterr().out
