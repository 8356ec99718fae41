"""Building a stage image from Python: the base image choice and the BuildKit command."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from docker.errors import ImageNotFound

from orchestration.infra import images


class _Images:
    def __init__(self, present):
        self.present = present
        self.images = self

    def get(self, name):
        if name not in self.present:
            raise ImageNotFound(name)
        return name


def test_offline_base_only_where_the_bootstrap_made_it():
    assert images.default_base_image(_Images({images.OFFLINE_BASE})) == images.OFFLINE_BASE
    assert images.default_base_image(_Images(set())) == images.PUBLIC_BASE


def test_docker_cli_honours_the_DOCKER_variable(tmp_path, monkeypatch):
    cli = tmp_path / "docker"
    cli.write_text("#!/bin/sh\n")
    cli.chmod(0o755)
    monkeypatch.setenv("DOCKER", str(cli))
    assert images.docker_cli() == str(cli)


@pytest.fixture
def repo(tmp_path, monkeypatch):
    (tmp_path / images.WHEELHOUSE).mkdir(parents=True)
    monkeypatch.setenv("DOCKER", "/bin/true")
    return tmp_path


def test_build_uses_buildkit_and_the_chosen_base(repo):
    calls = []

    def run(command, **kwargs):
        calls.append((command, kwargs))
        return subprocess.CompletedProcess(command, 0, "", "#9 CACHED\n")

    result = images.build_image(repo, "training", "t:latest", "base:1", run=run)
    ((command, kwargs),) = calls
    assert command[:2] == ["/bin/true", "build"]
    assert "BASE_IMAGE=base:1" in command and command[-1] == str(repo)
    assert command[command.index("-t") + 1] == "t:latest"
    assert command[command.index("--target") + 1] == "training"  # the repository's Dockerfile
    assert command[command.index("--label") + 1] == images.IMAGE_LABEL  # make clean prunes by it
    assert kwargs["env"]["DOCKER_BUILDKIT"] == "1"
    assert "CACHED" in result.log and result.base_image == "base:1"


def test_build_script_labels_its_images_for_make_clean():
    # scripts/build_images.sh cannot import IMAGE_LABEL, so it repeats the literal.
    script = (Path(__file__).resolve().parents[2] / "scripts" / "build_images.sh").read_text()
    assert f"--label {images.IMAGE_LABEL} " in script


def test_failed_build_shows_the_end_of_the_output(repo):
    def run(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, "", "step 1\nERROR: no such base\n")

    with pytest.raises(images.ImageBuildError, match="no such base"):
        images.build_image(repo, "training", "t:latest", "nope", run=run)


def test_missing_wheelhouse_says_how_to_make_it(tmp_path):
    with pytest.raises(images.ImageBuildError, match="make images"):
        images.build_image(tmp_path, "training", "t:latest", "base")


def test_a_stage_is_shown_with_the_stages_it_is_built_from():
    dockerfile = Path(__file__).resolve().parents[2] / "Dockerfile"
    training = images.stage_lines(dockerfile, "training")
    froms = [line for line in training if line.startswith("FROM")]
    assert froms == [
        "FROM ${BASE_IMAGE} AS python",
        "FROM python AS preprocessing-dependencies",
        "FROM preprocessing-dependencies AS torch-dependencies",
        "FROM torch-dependencies AS training-dependencies",
        "FROM training-dependencies AS training",
    ]
    inference = images.stage_lines(dockerfile, "inference")
    assert "FROM torch-dependencies AS inference-dependencies" in inference
    assert not any("training-dependencies" in line for line in inference)  # nothing that trains
    assert training[0].startswith("ARG BASE_IMAGE") and not any(x[:1] == "#" for x in training)
    assert "COPY inference/ inference/" not in training
    preprocessing = images.stage_lines(dockerfile, "preprocessing")
    assert not any("torch" in line or "training" in line for line in preprocessing)
    with pytest.raises(ValueError, match="no stage 'serving'; it has python"):
        images.stage_lines(dockerfile, "serving")


def _builds(monkeypatch, present, returncode=0):
    """ensure_images against a faked engine; returns the build script calls it made."""
    monkeypatch.setattr(
        images, "docker_client", lambda: None if present is None else _Images(present)
    )
    calls = []

    def run(command, **kwargs):
        calls.append((command, kwargs["env"]))
        return subprocess.CompletedProcess(command, returncode)

    return calls, run


def test_without_an_engine_nothing_is_built_and_the_line_says_so(monkeypatch):
    calls, run = _builds(monkeypatch, None)
    assert images.ensure_images(run=run).startswith("no Docker engine answers")
    assert calls == []


def test_built_images_are_left_alone(monkeypatch):
    calls, run = _builds(monkeypatch, set(images.COURSE_IMAGES))
    assert images.ensure_images(run=run) == "the course's 7 images are built"
    assert calls == []


def test_missing_images_are_built_by_the_build_script_from_the_right_base(monkeypatch, capsys):
    present = set(images.COURSE_IMAGES[1:]) | {images.OFFLINE_BASE}
    calls, run = _builds(monkeypatch, present)
    assert images.ensure_images(Path("/repo"), run=run) == "built 1 image(s) in the course's 7"
    ((command, env),) = calls
    assert command == ["bash", "/repo/scripts/build_images.sh"]
    assert env["BASE_IMAGE"] == images.OFFLINE_BASE
    assert images.COURSE_IMAGES[0] in capsys.readouterr().out


def test_a_failed_build_is_an_error(monkeypatch):
    calls, run = _builds(monkeypatch, set(), returncode=1)
    with pytest.raises(images.ImageBuildError, match=r"build_images\.sh failed"):
        images.ensure_images(run=run)
    assert len(calls) == 1
