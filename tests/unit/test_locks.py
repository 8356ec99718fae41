"""locks/ against pyproject.toml: every image's pins satisfy its groups and agree with the host's.

``make lock`` (scripts/lock.sh) writes the files; these checks fail when a dependency is edited in
pyproject.toml and the locks are not made again, or when a lock gets what its image must not ship.
"""

from __future__ import annotations

import re
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.helpers import REPO

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
# Each image's lock and the extras it installs (the project's dependencies come with every one).
IMAGE_GROUPS = {
    "preprocessing": (),
    "torch": ("torch",),
    "training": ("training",),
    "inference": ("serving",),
    "mlflow": ("tracking-server",),
    "jupyterlab": ("serving", "notebooks", "localmode"),
}


def pins(name: str) -> dict[str, str]:
    """Package -> pinned version of locks/<name>.txt."""
    found = {}
    for line in (REPO / "locks" / f"{name}.txt").read_text().splitlines():
        if match := re.match(r"([A-Za-z0-9._-]+)==(\S+)", line):
            found[canonicalize_name(match[1])] = match[2]
    return found


def requirements(extras: tuple[str, ...]) -> list[Requirement]:
    """pyproject's lines for these extras, an extra that names the project's others expanded."""
    lines = list(PROJECT["dependencies"])
    pending = list(extras)
    while pending:
        for line in PROJECT["optional-dependencies"][pending.pop()]:
            requirement = Requirement(line)
            if canonicalize_name(requirement.name) == canonicalize_name(PROJECT["name"]):
                pending.extend(requirement.extras)
            else:
                lines.append(line)
    return [Requirement(line) for line in lines]


@pytest.mark.parametrize("lock", ["all", *IMAGE_GROUPS])
def test_every_requirement_is_pinned_within_its_range(lock):
    extras = tuple(PROJECT["optional-dependencies"]) if lock == "all" else IMAGE_GROUPS[lock]
    pinned = pins(lock)
    for requirement in requirements(extras):
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"locks/{lock}.txt lacks {requirement}: run `make lock`"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"locks/{lock}.txt pins {name}=={pinned[name]}, outside {requirement}: run `make lock`"
        )


@pytest.mark.parametrize("lock", IMAGE_GROUPS)
def test_images_get_the_hosts_versions(lock):
    host = pins("all")
    differing = {name: v for name, v in pins(lock).items() if host.get(name) != v}
    assert differing == {}


def test_the_preprocessing_image_ships_no_torch_and_no_tracking_client():
    assert {"torch", "mlflow-skinny"}.isdisjoint(pins("preprocessing"))
    assert "torch" in pins("training") and "torch" in pins("inference")


def test_the_inference_image_ships_nothing_that_trains_and_shares_the_torch_layer():
    assert {"mlflow-skinny", "matplotlib", "sagemaker-training"}.isdisjoint(pins("inference"))
    for image in ("training", "inference"):  # a layer on top of torch's installs no other torch
        assert pins("torch").items() <= pins(image).items()


def test_torch_is_pinned_by_version_alone_so_either_build_fits():
    """2.13.0 admits the CPU wheel (2.13.0+cpu) here and the CUDA one on a GPU machine."""
    assert "+" not in pins("all")["torch"]
    assert all(not canonicalize_name(p).startswith("nvidia") for p in pins("training"))


def test_neither_the_project_nor_a_machine_path_is_in_a_lock():
    for lock in ["all", *IMAGE_GROUPS]:
        text = (REPO / "locks" / f"{lock}.txt").read_text()
        assert canonicalize_name(PROJECT["name"]) not in pins(lock)
        assert not re.search(r"^(--|-e |\S+ @ file:)", text, re.MULTILINE), lock
