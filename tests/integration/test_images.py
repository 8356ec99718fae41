"""scripts/build_images.sh run as a subprocess: the wheelhouse from locks/, the stage targets and
a missing docker command."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

IMAGE_LOCKS = (
    "preprocessing",
    "torch",
    "training",
    "inference",
    "toolkit",
    "evaluation",
    "mlflow",
    "jupyterlab",
)


@pytest.fixture
def script_copy(tmp_path) -> Path:
    """The build script beside the repository's locks, with a logging stand-in for docker."""
    repo = Path(__file__).resolve().parents[2]
    for name in ("scripts/build_images.sh", "scripts/common.sh"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        shutil.copy(repo / name, tmp_path / name)
    shutil.copytree(repo / "locks", tmp_path / "locks")
    docker = tmp_path / "docker"
    docker.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/docker.log\necho 1000\n')
    docker.chmod(0o755)
    return tmp_path


def _run(copy: Path, python: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(copy / "scripts/build_images.sh")],
        env=os.environ | {"DOCKER": str(copy / "docker"), "PYTHON": python},
        capture_output=True,
        text=True,
        check=False,
    )


def test_an_up_to_date_wheelhouse_is_reused_and_each_stage_is_a_target(script_copy):
    locks = b"".join((script_copy / "locks" / f"{name}.txt").read_bytes() for name in IMAGE_LOCKS)
    wheelhouse = script_copy / "build" / "wheelhouse"
    wheelhouse.mkdir(parents=True)
    (wheelhouse / ".complete").write_text(hashlib.sha256(locks).hexdigest() + "\n")
    (wheelhouse / "torch-2.13.0-cp311-linux.whl").touch()

    result = _run(script_copy, sys.executable)
    assert result.returncode == 0, result.stderr
    assert "up to date with locks/" in result.stdout  # no pip wheel ran
    log = (script_copy / "docker.log").read_text().splitlines()
    stages = [line for line in log if f"-f {script_copy}/Dockerfile " in line]
    assert [line.split("--target ")[1].split()[0] for line in stages] == [
        "preprocessing",
        "training",
        "inference",
        "training-toolkit",
        "evaluation",
    ]
    assert all("build --quiet --label ncf-course" in line for line in stages)


def test_a_changed_lock_rebuilds_the_wheelhouse_from_every_image_lock(script_copy, tmp_path):
    """A stand-in for ``python -m pip wheel`` records what it was asked for."""
    (script_copy / "build" / "wheelhouse").mkdir(parents=True)
    (script_copy / "build" / "wheelhouse" / ".complete").write_text("an older lock\n")
    python = tmp_path / "python"
    python.write_text(
        "#!/bin/sh\n"
        f'echo "$@" > {tmp_path}/pip.args\n'
        'for arg; do case $prev in --wheel-dir) mkdir -p "$arg" && touch "$arg/x.whl";; esac;'
        " prev=$arg; done\n"
    )
    python.chmod(0o755)
    result = _run(script_copy, str(python))
    assert result.returncode == 0, result.stderr
    arguments = (tmp_path / "pip.args").read_text().split()
    assert arguments[:3] == ["-m", "pip", "wheel"]
    wanted = [f"--requirement={script_copy}/locks/{name}.txt" for name in IMAGE_LOCKS]
    assert [arg for arg in arguments if arg.startswith("--requirement")] == wanted
    assert (script_copy / "build" / "wheelhouse" / "x.whl").exists()


def test_build_script_without_a_docker_command_says_so(tmp_path):
    """``set -e`` used to end the script silently at the failed lookup."""
    (tmp_path / "dirname").symlink_to(shutil.which("dirname"))
    script = Path(__file__).resolve().parents[2] / "scripts" / "build_images.sh"
    result = subprocess.run(
        [shutil.which("bash"), str(script)],
        env={"PATH": str(tmp_path), "DOCKER": str(tmp_path / "no-docker")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "no docker command: install Docker" in result.stderr
