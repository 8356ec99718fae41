"""Building a stage image from Python: the base image choice and the BuildKit command."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from docker.errors import ImageNotFound, NotFound

from orchestration import images


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

    result = images.build_image(repo, "training/Dockerfile", "t:latest", "base:1", run=run)
    ((command, kwargs),) = calls
    assert command[:2] == ["/bin/true", "build"]
    assert "BASE_IMAGE=base:1" in command and command[-1] == str(repo)
    assert command[command.index("-t") + 1] == "t:latest"
    assert command[command.index("--label") + 1] == images.IMAGE_LABEL  # make clean prunes by it
    assert kwargs["env"]["DOCKER_BUILDKIT"] == "1"
    assert "CACHED" in result.log and result.base_image == "base:1"


def test_build_script_labels_its_images_for_make_clean():
    # scripts/build_images.sh cannot import IMAGE_LABEL, so it repeats the literal.
    script = (Path(__file__).resolve().parents[1] / "scripts" / "build_images.sh").read_text()
    assert f"--label {images.IMAGE_LABEL} " in script


def test_build_script_drops_the_project_wheel_from_an_up_to_date_wheelhouse(tmp_path):
    """A wheelhouse made before the project's wheel was left out still holds it; every build of
    a fresh clone would then miss the dependency layers' cache. Docker is a logging stand-in."""
    repo = Path(__file__).resolve().parents[1]
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
    script = Path(__file__).resolve().parents[1] / "scripts" / "build_images.sh"
    result = subprocess.run(
        [shutil.which("bash"), str(script)],
        env={"PATH": str(tmp_path), "DOCKER": str(tmp_path / "no-docker")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "no docker command: install Docker" in result.stderr


def test_failed_build_shows_the_end_of_the_output(repo):
    def run(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, "", "step 1\nERROR: no such base\n")

    with pytest.raises(images.ImageBuildError, match="no such base"):
        images.build_image(repo, "training/Dockerfile", "t:latest", "nope", run=run)


def test_missing_wheelhouse_says_how_to_make_it(tmp_path):
    with pytest.raises(images.ImageBuildError, match="make images"):
        images.build_image(tmp_path, "training/Dockerfile", "t:latest", "base")


def _scratch_image(client, tag: str, version: int, labelled: bool, extra: str = ""):
    """A layer-less image; a new version under the same tag leaves the old one untagged."""
    dockerfile = f"FROM scratch\nLABEL prune-test={tag}-{version}\n{extra}".encode()  # no cache
    labels = {images.IMAGE_LABEL: ""} if labelled else {}
    image, _ = client.images.build(
        fileobj=io.BytesIO(dockerfile), tag=tag, labels=labels, rm=True, forcerm=True
    )
    return image


@pytest.mark.docker
def test_clean_prunes_only_the_course_images_a_rebuild_superseded(docker_ready):
    import docker

    from orchestration.cleanup import remove_old_images

    client = docker.from_env()
    old = _scratch_image(client, "ncf-prune-test:latest", 1, labelled=True)
    current = _scratch_image(client, "ncf-prune-test:latest", 2, labelled=True)
    foreign = _scratch_image(client, "other-prune-test:latest", 1, labelled=False)
    _scratch_image(client, "other-prune-test:latest", 2, labelled=False)
    try:
        removed, _ = remove_old_images(client)
        assert removed >= 1
        with pytest.raises(ImageNotFound):
            client.images.get(old.id)
        assert client.images.get("ncf-prune-test:latest").id == current.id
        assert client.images.get(foreign.id)  # another project's untagged image stays
    finally:
        client.images.remove("ncf-prune-test:latest")
        client.images.remove("other-prune-test:latest")
        client.images.remove(foreign.id)


@pytest.mark.docker
def test_clean_removes_stopped_containers_of_superseded_images_so_they_can_be_pruned(
    docker_ready,
):
    """A job container of an image version that a rebuild replaced kept that image alive."""
    import docker

    from orchestration.cleanup import remove_old_images, remove_stopped_containers

    client = docker.from_env()
    old = _scratch_image(client, "ncf-stopped-test:latest", 1, labelled=True, extra="VOLUME /data")
    job = client.containers.create(old.id, command=["train"])  # "created" counts as stopped
    (volume,) = [mount["Name"] for mount in job.attrs["Mounts"]]  # anonymous, for /data
    _scratch_image(client, "ncf-stopped-test:latest", 2, labelled=True)
    foreign_image = _scratch_image(client, "other-stopped-test:latest", 1, labelled=False)
    foreign = client.containers.create(foreign_image.id, command=["run"])
    try:
        assert job.name in remove_stopped_containers(client)
        with pytest.raises(NotFound):
            client.containers.get(job.id)
        assert client.containers.get(foreign.id)  # another project's container stays
        assert client.volumes.get(volume)  # what was in it is not lost
        remove_old_images(client)
        with pytest.raises(ImageNotFound):
            client.images.get(old.id)
    finally:
        for container in (job, foreign):
            with contextlib.suppress(NotFound):
                container.remove()
        client.images.remove("ncf-stopped-test:latest")
        client.images.remove("other-stopped-test:latest")
        with contextlib.suppress(NotFound):
            client.volumes.get(volume).remove()
