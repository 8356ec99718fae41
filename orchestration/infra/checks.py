"""Is this machine ready for the course? Each check says what it found and, when not, the fix.

Lesson 01 runs them one by one; a shell runs them all with ``python -m orchestration.infra.checks``.
A missing GPU is never a failure: those checks are skipped and the course runs on CPU with
instance type ``local``. Fixes name the Windows/WSL2 way when the kernel is WSL's.
"""

from __future__ import annotations

import platform
import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import docker
import requests
import torch
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from docker.errors import ContainerError, DockerException, ImageNotFound

from orchestration.infra.containers import device_requests
from orchestration.infra.services import LocalServices
from orchestration.names import (
    ACCESS_KEY,
    COURSE_IMAGES,
    DEFAULT_BUCKET,
    IMAGES,
    REGION,
    SECRET_KEY,
)
from orchestration.probes import (
    choose_instance_type,
    compose_version,
    missing_images,
    nvidia_smi,
    nvidia_smi_installed,
)

GPU_QUERY = ("--query-gpu=name,driver_version,memory.total", "--format=csv,noheader")
CUDA_PROBE = "import torch; print(torch.cuda.is_available())"
NO_GPU = "no GPU: the course runs on CPU with instance_type local"
IMAGES_FIX = "build them: `make images` (with internet) or `sudo make bootstrap` (offline Debian)"
SERVICES_FIX = (
    "start them: `python -m orchestration.infra.services up` (host processes, kept for later "
    "lessons), or `docker compose up -d s3 mlflow` (containers)"
)
_PROBE = Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1})
# Room for the datasets, runs, models and the local S3's copies once the images are built.
MIN_FREE_GIB = 5
DISK_FIX = (
    "free some: `docker system df` shows what Docker keeps, `docker builder prune "
    "--keep-storage 10GB` trims its build cache, `make clean` removes old runs and superseded "
    "course images"
)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    # Not applicable here (no GPU): counts as ok, and the fix, if any, is only a hint.
    skipped: bool = False

    @property
    def status(self) -> str:
        return "SKIP" if self.skipped else "PASS" if self.ok else "FAIL"


def is_wsl() -> bool:
    return "microsoft" in platform.uname().release.lower()


def _for_platform(linux: str, wsl: str) -> str:
    return wsl if is_wsl() else linux


def _docker() -> docker.DockerClient:
    client = docker.from_env(timeout=10)
    client.ping()
    return client


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def gpu_present() -> bool:
    """An NVIDIA driver is installed; whether it works is what the GPU checks find out."""
    return nvidia_smi_installed()


def docker_engine() -> Check:
    try:
        version = _docker().version()
    except DockerException as exc:
        fix = _for_platform(
            "start it (`sudo systemctl start docker`, without systemd `sudo dockerd &`) and let "
            "your user reach it: `sudo usermod -aG docker $USER`, then log in again",
            "start Docker Desktop on Windows and enable Settings > Resources > WSL integration "
            "for this distro (or, with Docker Engine inside WSL: `sudo service docker start`)",
        )
        return Check("Docker engine", False, f"no engine answers ({_first_line(exc)})", fix)
    detail = f"Docker {version['Version']} (API {version['ApiVersion']}, {version['Os']})"
    return Check("Docker engine", True, detail)


def compose() -> Check:
    """SageMaker local mode runs every job with compose: the v2 plugin first, else v1."""
    found = compose_version()
    if found is None:
        fix = _for_platform(
            "install the v2 plugin (`sudo apt-get install docker-compose-plugin` from Docker's "
            "apt repository) or Debian/Ubuntu's `sudo apt-get install docker-compose`",
            "Docker Desktop ships `docker compose`: enable its WSL integration for this distro",
        )
        return Check("Compose", False, "neither `docker compose` nor `docker-compose` runs", fix)
    tool, version = found
    numbers = tuple(int(n) for n in re.findall(r"\d+", version)[:2])
    if numbers >= (1, 28):
        note = "new enough for local_gpu's GPU reservation (needs >= 1.28 or v2)"
    else:
        note = "local works; local_gpu needs >= 1.28 or v2: install the v2 plugin for GPU jobs"
    return Check("Compose", True, f"{tool} {version}: {note}")


def images(names: Sequence[str] = COURSE_IMAGES) -> Check:
    try:
        client = _docker()
    except DockerException:
        return Check("Course images", False, "no Docker engine answers", "start Docker first")
    missing = missing_images(client, names)
    if missing:
        return Check("Course images", False, f"not built: {', '.join(missing)}", IMAGES_FIX)
    return Check("Course images", True, f"all {len(names)} built: {', '.join(names)}")


def disk_space(min_free_gib: float = MIN_FREE_GIB) -> Check:
    """Docker's data root (images, build cache, job scratch) and this folder (data, runs, the
    local S3) fill up unnoticed, and a full disk fails far from its cause: the S3 store stops
    taking writes below 512 MiB free, a job fails with InternalError."""
    # This folder unnamed: the learner is in it, and a lesson's output names no folder of theirs.
    places = {"this folder": Path.cwd()}
    try:
        root = Path(_docker().info()["DockerRootDir"])
    except DockerException:
        root = None  # the engine check says why
    if root is not None and root.is_dir():  # Docker Desktop keeps it inside its VM
        places[f"Docker's data root ({root})"] = root
    free = {name: shutil.disk_usage(path).free / 2**30 for name, path in places.items()}
    detail = ", ".join(f"{gib:.1f} GiB free in {place}" for place, gib in free.items())
    if min(free.values()) < min_free_gib:
        detail += f": under the {min_free_gib:g} GiB the course needs"
        return Check("Free disk space", False, detail, DISK_FIX)
    return Check("Free disk space", True, detail)


def nvidia_gpu() -> Check:
    if not gpu_present():
        hint = _for_platform(
            "if this machine has an NVIDIA GPU, install its driver (`sudo ubuntu-drivers install`"
            " or your distribution's nvidia-driver package) and reboot",
            "if this PC has an NVIDIA GPU, install the NVIDIA driver on Windows only (never a "
            "Linux driver inside WSL); WSL then finds nvidia-smi in /usr/lib/wsl/lib",
        )
        return Check("NVIDIA GPU", True, "nvidia-smi not found; " + NO_GPU, hint, skipped=True)
    answer = nvidia_smi(*GPU_QUERY)
    if answer is None:
        fix = _for_platform(
            "the driver is not loaded: reinstall it for this kernel and reboot",
            "update the NVIDIA driver on Windows and run `wsl --shutdown`, then reopen WSL",
        )
        return Check("NVIDIA GPU", False, "nvidia-smi is installed but fails", fix)
    gpus = [
        "{} (driver {}, {})".format(*(part.strip() for part in line.split(",")))
        for line in answer.splitlines()
    ]
    return Check("NVIDIA GPU", True, "; ".join(gpus))


def torch_cuda() -> Check:
    """Whether the host's PyTorch can train on the GPU (the kernel's, not a container's)."""
    cuda = torch.version.cuda
    build = f"torch {torch.__version__}, " + (f"CUDA {cuda} build" if cuda else "CPU-only build")
    if torch.cuda.is_available():
        return Check("PyTorch CUDA", True, f"{build}, sees {torch.cuda.get_device_name(0)}")
    if not gpu_present():
        return Check("PyTorch CUDA", True, f"{build}; {NO_GPU}", skipped=True)
    if cuda is None:
        release = torch.__version__.split("+")[0]
        fix = (
            f"install the CUDA build of the same version: `pip install torch=={release} "
            "--index-url https://download.pytorch.org/whl/cu128` (pytorch.org lists the tags)"
        )
    else:
        fix = f"the NVIDIA driver is too old for CUDA {cuda} or not loaded: update it" + (
            " on Windows" if is_wsl() else ""
        )
    return Check("PyTorch CUDA", False, f"{build}; a GPU is present but PyTorch cannot use it", fix)


def container_gpu(image: str = IMAGES["training"]) -> Check:
    """What ``local_gpu`` needs: ``docker run --gpus all`` hands the GPU to the course's image."""
    if not gpu_present():
        return Check("GPU in a container", True, NO_GPU, skipped=True)
    toolkit_fix = _for_platform(
        "install the NVIDIA Container Toolkit, then `sudo nvidia-ctk runtime configure "
        "--runtime=docker && sudo systemctl restart docker`",
        "Docker Desktop: use the WSL 2 backend with a current Windows NVIDIA driver (GPU support "
        "is built in); Docker Engine inside WSL: install the NVIDIA Container Toolkit there",
    )
    try:
        output = _docker().containers.run(
            image, ["python", "-c", CUDA_PROBE], remove=True, device_requests=device_requests(True)
        )
    except ImageNotFound:
        return Check("GPU in a container", False, f"{image} is not built", IMAGES_FIX)
    except ContainerError as exc:
        detail = f"the probe failed: {_first_line(exc)}"
        by_hand = f"to see why: docker run --rm --gpus all {image} python -c '{CUDA_PROBE}'"
        return Check("GPU in a container", False, detail, by_hand)
    except DockerException as exc:
        detail = f"Docker cannot hand the GPU over ({_first_line(exc)})"
        return Check("GPU in a container", False, detail, toolkit_fix)
    if output.decode().strip() == "True":
        return Check("GPU in a container", True, f"a {image} container sees the GPU")
    return Check(
        "GPU in a container",
        False,
        f"the container gets the GPU but the PyTorch in {image} is a CPU build",
        "rebuild the images on a CUDA base with the CUDA build of torch (README, "
        "'SageMaker local mode': BASE_IMAGE=pytorch/pytorch:2.x-cuda12.x-cudnn9-runtime)",
    )


def instance_type() -> Check:
    """The instance type the course's jobs will use; a GPU that jobs cannot use fails."""
    choice = choose_instance_type()
    usable = choice.instance_type == "local_gpu" or not gpu_present()
    detail = f"{choice.instance_type}: {choice.reason}"
    fix = "" if usable else "fix the GPU checks above; until then jobs run on CPU (local)"
    return Check("Instance type", usable, detail, fix)


def local_s3(endpoint_url: str, bucket: str = DEFAULT_BUCKET) -> Check:
    client = boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
        config=_PROBE,
    )
    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        detail = f"{endpoint_url} answers, but not for bucket {bucket} ({_first_line(exc)})"
        return Check("Local S3", False, detail, SERVICES_FIX)
    except BotoCoreError as exc:
        detail = f"nothing answers at {endpoint_url} ({_first_line(exc)})"
        return Check("Local S3", False, detail, SERVICES_FIX)
    return Check("Local S3", True, f"bucket {bucket} at {endpoint_url}")


def mlflow_server(tracking_uri: str) -> Check:
    try:
        health = requests.get(f"{tracking_uri}/health", timeout=3)
        version = requests.get(f"{tracking_uri}/version", timeout=3)
    except requests.RequestException as exc:
        detail = f"nothing answers at {tracking_uri} ({type(exc).__name__})"
        return Check("MLflow", False, detail, SERVICES_FIX)
    if not health.ok:
        detail = f"{tracking_uri}/health answers HTTP {health.status_code}"
        return Check("MLflow", False, detail, SERVICES_FIX)
    # The port, not the address: on the host it is the Docker network's gateway, a detail of
    # this machine; a failure names the whole URI, which is what the fix needs.
    port = urlsplit(tracking_uri).port
    return Check("MLflow", True, f"MLflow {version.text.strip()} answers on port {port}")


def service_checks(services: LocalServices) -> list[Check]:
    return [
        local_s3(services.s3.endpoint_url, services.s3.bucket),
        mlflow_server(services.mlflow.tracking_uri),
    ]


def environment_checks() -> list[Check]:
    """Everything but the services, in the order a learner fixes them."""
    return [
        docker_engine(),
        compose(),
        images(),
        disk_space(),
        nvidia_gpu(),
        torch_cuda(),
        container_gpu(),
        instance_type(),
    ]


def passed(checks: Sequence[Check]) -> bool:
    """Nothing failed (a skipped check is no failure)."""
    return all(check.ok for check in checks)


def report(checks: Sequence[Check]) -> None:
    """One line per check; under each failure its fix, under each skip its hint."""
    width = max((len(check.name) for check in checks), default=0)
    for check in checks:
        print(f"{check.status}  {check.name:<{width}}  {check.detail}")
        if check.fix and (check.skipped or not check.ok):
            label = "hint" if check.skipped else "fix"
            print(f"      {'':<{width}}  {label}: {check.fix}")


def main() -> int:
    results = environment_checks()
    report(results)
    return 0 if passed(results) else 1


if __name__ == "__main__":
    sys.exit(main())
