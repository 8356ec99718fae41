"""``make clean``'s image pruning against the real engine: only superseded course images go."""

from __future__ import annotations

import contextlib
import io

import pytest
from docker.errors import ImageNotFound, NotFound

from orchestration.infra import images


def _scratch_image(client, tag: str, version: int, labelled: bool, extra: str = ""):
    """A layer-less image; a new version under the same tag leaves the old one untagged."""
    dockerfile = f"FROM scratch\nLABEL prune-test={tag}-{version}\n{extra}".encode()  # no cache
    labels = {images.IMAGE_LABEL: ""} if labelled else {}
    image, _ = client.images.build(
        fileobj=io.BytesIO(dockerfile), tag=tag, labels=labels, rm=True, forcerm=True
    )
    return image


def test_clean_prunes_only_the_course_images_a_rebuild_superseded(docker_ready):
    import docker

    from orchestration.infra.cleanup import remove_old_images

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


def test_clean_removes_stopped_containers_of_superseded_images_so_they_can_be_pruned(
    docker_ready,
):
    """A job container of an image version that a rebuild replaced kept that image alive."""
    import docker

    from orchestration.infra.cleanup import remove_old_images, remove_stopped_containers

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
