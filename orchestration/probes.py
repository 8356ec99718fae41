"""One helper for each question the host side asks of this machine, each with a time limit.

Is a Docker engine up, is compose there, does an NVIDIA GPU answer, which images are missing, is
it MLflow that answers, can local mode run at all, and a poll that waits for any of those. A
wedged NVIDIA driver or Docker engine can leave ``nvidia-smi`` or ``docker`` hanging, so every
probe gives up after a timeout and says "no" rather than hang a lesson. Heavy clients (the Docker
SDK, requests) are imported inside the probes, so importing this module costs nothing.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from orchestration.names import IMAGES

if TYPE_CHECKING:
    import docker

ENABLE_HINT = (
    "to run every stage as a SageMaker local-mode job, start Docker and build the images with "
    "`make images` (offline machines: `sudo make bootstrap`)"
)


def command_output(command: list[str], timeout: float = 30) -> str | None:
    """Stripped stdout of a command that succeeded; None when it is missing, fails or hangs."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def poll_until(condition: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Whether ``condition`` came true within ``timeout`` seconds, asking every ``interval``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def docker_client(timeout: float = 10) -> docker.DockerClient | None:
    """A client of the engine that answers a ping; None when none does (or the SDK is missing)."""
    try:
        import docker
        from docker.errors import DockerException
    except ImportError:
        return None
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except DockerException:
        return None
    return client


def compose_version() -> tuple[str, str] | None:
    """``(command, version)`` of the compose local mode will use: the v2 plugin, else v1."""
    for tool in (["docker", "compose"], ["docker-compose"]):
        if found := command_output([*tool, "version", "--short"]):
            return " ".join(tool), found.removeprefix("v")
    return None


def nvidia_smi_installed() -> bool:
    """An NVIDIA driver is installed; whether it works is what ``nvidia_smi`` finds out."""
    return shutil.which("nvidia-smi") is not None


def nvidia_smi(*arguments: str) -> str | None:
    """``nvidia-smi``'s answer; None without the tool or when the driver fails or hangs."""
    if not nvidia_smi_installed():
        return None
    return command_output(["nvidia-smi", *arguments])


def mlflow_version(tracking_uri: str) -> str | None:
    """The version an MLflow server reports at /version; None when what answers is no MLflow."""
    import re

    import requests

    try:
        answer = requests.get(f"{tracking_uri.rstrip('/')}/version", timeout=3)
    except requests.RequestException:
        return None
    version = answer.text.strip()
    return version if answer.ok and re.fullmatch(r"\d+\.\d+\.\d+\S*", version) else None


def missing_images(client: docker.DockerClient, names: Sequence[str]) -> list[str]:
    """Those of ``names`` the engine has no image of, in their order."""
    from docker.errors import ImageNotFound

    missing = []
    for image in names:
        try:
            client.images.get(image)
        except ImageNotFound:
            missing.append(image)
    return missing


MISSING_IMAGE = "the image"  # how local_mode_problem's answer starts when only an image is missing


def local_mode_problem() -> str | None:
    """Why SageMaker local mode cannot run here, or None when it can."""
    try:
        # The package itself, not docker.errors, which may already sit in sys.modules.
        import docker  # noqa: F401
    except ImportError as missing:
        return (
            f"the localmode extra is not installed ({missing.name} is missing: "
            "pip install -e '.[localmode]')"
        )
    client = docker_client()
    if client is None:
        return "no Docker engine answers"
    if compose_version() is None:
        return "neither `docker compose` nor `docker-compose` is installed"
    if missing := missing_images(client, list(IMAGES.values())):
        return f"{MISSING_IMAGE} {missing[0]} is not built"
    return None


@dataclass(frozen=True)
class InstanceChoice:
    instance_type: str  # "local" or "local_gpu"
    reason: str


def choose_instance_type() -> InstanceChoice:
    """``local_gpu`` only when Docker can hand a GPU to a container; ``local`` otherwise."""
    if not nvidia_smi_installed():
        return InstanceChoice("local", "no nvidia-smi on this machine: no NVIDIA GPU or driver")
    if nvidia_smi("-L") is None:
        return InstanceChoice(
            "local", "nvidia-smi fails or hangs: the NVIDIA driver is not working"
        )
    runtimes = command_output(["docker", "info", "--format", "{{json .Runtimes}}"])
    if runtimes is None:
        return InstanceChoice("local", "`docker info` fails or hangs: no Docker engine answers")
    if "nvidia" not in runtimes:
        return InstanceChoice(
            "local",
            "a GPU is present but Docker has no nvidia runtime: install the NVIDIA Container "
            "Toolkit and run `nvidia-ctk runtime configure --runtime=docker` (lesson 01)",
        )
    return InstanceChoice("local_gpu", "nvidia-smi works and Docker has the nvidia runtime")
