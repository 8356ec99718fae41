"""Build one stage image from Python, the way ``scripts/build_images.sh`` builds them all: a
target of the repository's Dockerfile (preprocessing, training or inference); and build the
course's images where an engine answers but they are missing (``python -m
orchestration.infra.images``, which ``make test`` runs first).

The Dockerfiles need BuildKit (``RUN --mount`` binds the host wheelhouse into the build), which
the Docker SDK's builder does not speak, so this calls the ``docker`` CLI.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.errors import ImageNotFound

from orchestration.names import COURSE_IMAGES, IMAGE_LABEL
from orchestration.probes import docker_client, missing_images

PUBLIC_BASE = "python:3.11-slim-bookworm"  # pulled from Docker Hub on a learner's machine
OFFLINE_BASE = "ncf-base:bookworm"  # what scripts/bootstrap.sh makes where no registry answers
WHEELHOUSE = Path("build") / "wheelhouse"
REPO = Path(__file__).resolve().parents[2]


class ImageBuildError(RuntimeError):
    """The build could not start or failed; the message holds the end of Docker's output."""


@dataclass(frozen=True)
class BuildResult:
    tag: str
    base_image: str
    seconds: float
    log: str


def default_base_image(client: docker.DockerClient) -> str:
    """The offline base when the bootstrap made one (no registry here), else the public one."""
    try:
        client.images.get(OFFLINE_BASE)
    except ImageNotFound:
        return PUBLIC_BASE
    return OFFLINE_BASE


def docker_cli() -> str:
    """As build_images.sh picks it: $DOCKER, else /usr/bin/docker (some hosts put a CLI without
    buildx first on PATH), else whatever ``docker`` is on PATH."""
    for candidate in (os.environ.get("DOCKER"), "/usr/bin/docker"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("docker")
    if found is None:
        raise ImageBuildError("no docker CLI found: install Docker (lesson 01)")
    return found


def build_image(
    repo: Path,
    target: str,
    tag: str,
    base_image: str,
    run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
) -> BuildResult:
    """``docker build`` from the repository root; a no-change rebuild is all cache hits."""
    if not (repo / WHEELHOUSE).is_dir():
        raise ImageBuildError(
            f"{repo / WHEELHOUSE} is missing: run `make images` once (offline machines: "
            "`sudo make bootstrap`), which makes the wheelhouse every image installs from"
        )
    command = [docker_cli(), "build", "--progress=plain", "--build-arg", f"BASE_IMAGE={base_image}"]
    command += ["--label", IMAGE_LABEL, "--target", target, "-t", tag, str(repo)]
    started = time.perf_counter()
    done = run(
        command,
        capture_output=True,
        text=True,
        check=False,
        env=os.environ | {"DOCKER_BUILDKIT": "1"},
    )
    seconds = time.perf_counter() - started
    log = done.stdout + done.stderr  # BuildKit reports progress on stderr
    if done.returncode != 0:
        tail = "\n".join(log.splitlines()[-15:])
        raise ImageBuildError(f"docker build of {tag} failed (exit {done.returncode}):\n{tail}")
    return BuildResult(tag, base_image, seconds, log)


def stage_lines(dockerfile: Path, target: str) -> list[str]:
    """The instructions ``target`` is built from, its parent stages first, comments and blank
    lines left out: what a reader needs to see one image of a multi-stage Dockerfile."""
    stages: dict[str, tuple[str | None, list[str]]] = {}
    preamble: list[str] = []
    current = preamble
    for line in dockerfile.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if match := re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.IGNORECASE):
            base, name = match.groups()
            current = [line]
            stages[name or f"stage{len(stages)}"] = (base, current)
            continue
        current.append(line)
    if target not in stages:
        raise ValueError(f"{dockerfile} has no stage {target!r}; it has {', '.join(stages)}")
    chain: list[str] = []
    name: str | None = target
    while name in stages:
        base, lines = stages[name]
        chain = lines + chain
        name = base
    return preamble + chain


def ensure_images(
    repo: Path = REPO, run: Callable[..., subprocess.CompletedProcess] = subprocess.run
) -> str:
    """Build the course's images with ``scripts/build_images.sh`` where an engine answers and
    any is missing (its progress lines stream through). Returns one line saying what it found."""
    client = docker_client()
    if client is None:
        return "no Docker engine answers: what needs Docker is skipped (lesson 01 says how)"
    missing = missing_images(client, COURSE_IMAGES)
    if not missing:
        return f"the course's {len(COURSE_IMAGES)} images are built"
    print(f"building the missing images ({', '.join(missing)}): a few minutes the first time")
    env = os.environ | {"BASE_IMAGE": default_base_image(client), "PYTHON": sys.executable}
    built = run(["bash", str(repo / "scripts" / "build_images.sh")], env=env, check=False)
    if built.returncode != 0:
        raise ImageBuildError("scripts/build_images.sh failed: its last lines are above")
    return f"built {len(missing)} image(s) in the course's {len(COURSE_IMAGES)}"


def main() -> int:
    try:
        print(ensure_images())
    except ImageBuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
