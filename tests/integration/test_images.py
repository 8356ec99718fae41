"""scripts/build_images.sh run as a subprocess: the wheelhouse and a missing docker command."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path


def test_build_script_drops_the_project_wheel_from_an_up_to_date_wheelhouse(tmp_path):
    """A wheelhouse made before the project's wheel was left out still holds it; every build of
    a fresh clone would then miss the dependency layers' cache. Docker is a logging stand-in."""
    repo = Path(__file__).resolve().parents[2]
    for name in ("scripts/build_images.sh", "scripts/common.sh", "pyproject.toml"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        shutil.copy(repo / name, tmp_path / name)
    wheelhouse = tmp_path / "build" / "wheelhouse"
    wheelhouse.mkdir(parents=True)
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    tables = [project["dependencies"], project["optional-dependencies"]]
    stamp = hashlib.sha256(json.dumps(tables, sort_keys=True).encode()).hexdigest()
    (wheelhouse / ".complete").write_text(stamp + "\n")
    wheels = ["ncf_sagemaker_local-0.1.0-py3-none-any.whl", "torch-2.13.0-cp311-linux.whl"]
    for wheel in wheels:
        (wheelhouse / wheel).touch()
    docker = tmp_path / "docker"
    docker.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/docker.log\necho 1000\n')
    docker.chmod(0o755)

    result = subprocess.run(
        ["bash", str(tmp_path / "scripts/build_images.sh")],
        env=os.environ | {"DOCKER": str(docker), "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout  # no pip wheel ran
    assert sorted(path.name for path in wheelhouse.glob("*.whl")) == wheels[1:]
    assert "build --quiet --label ncf-course" in (tmp_path / "docker.log").read_text()


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
