"""Leftovers of local-mode jobs: stopped containers, the job network, scratch folders, and the
course's superseded image versions.

Local mode runs each job with docker-compose and leaves its stopped containers behind; the
containers run as root, so the files they write into mounted scratch folders belong to root and a
learner's own user cannot delete them. ``python -m orchestration.infra.cleanup`` (``make clean``)
removes all of it and says what it removed. Every rebuild of an image after a code change leaves
the previous version behind untagged (about 1.6 GB for a stage image), so without pruning a
learner's disk fills over a few dozen rebuilds.
"""

from __future__ import annotations

import argparse
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import docker
from docker.errors import NotFound

from orchestration.infra.services import services_running_under
from orchestration.names import IMAGE_LABEL, IMAGES, NETWORK
from orchestration.probes import docker_client

STOPPED = ("created", "exited", "dead")


@dataclass
class CleanupReport:
    containers: list[str] = field(default_factory=list)
    network: bool = False
    folders: list[Path] = field(default_factory=list)
    old_images: int = 0
    reclaimed_bytes: int = 0
    # Folders left in place because services that `orchestration.infra.services up` started keep
    # their data there, with the folders to pass to `down`.
    kept: dict[Path, list[Path]] = field(default_factory=dict)

    def format(self) -> str:
        removed = (
            f"removed {len(self.containers)} stopped container(s), "
            f"{'the' if self.network else 'no'} {NETWORK} network, "
            f"{len(self.folders)} scratch folder(s), "
            f"{self.old_images} old image version(s) ({self.reclaimed_bytes / 1e9:.1f} GB)"
        )
        for folder, states in self.kept.items():
            downs = "; ".join(
                f"python -m orchestration.infra.services down --folder {state.parent}"
                for state in states
            )
            removed += f"\nkept {folder}: services still run from it; stop them first ({downs})"
        return removed


def remove_stopped_containers(client: docker.DockerClient) -> list[str]:
    """Stopped containers of the course's images, found by the images' label, so those of a
    superseded version go too (by image name they were missed, and each kept its image, over a
    GB, from being pruned). Running ones (an endpoint, a service) are left alone, and so are
    volumes: an ``ncf-s3`` container run without compose keeps its objects in an anonymous one."""
    removed = []
    for status in STOPPED:
        filters = {"label": IMAGE_LABEL, "status": status}
        for container in client.containers.list(all=True, filters=filters):
            container.remove()
            removed.append(container.name)
    return removed


def remove_old_images(client: docker.DockerClient) -> tuple[int, int]:
    """Untagged images that the course built (its label), and the bytes that frees. Other
    projects' images and every tagged image stay."""
    pruned = client.images.prune(filters={"dangling": True, "label": IMAGE_LABEL})
    deleted = [entry for entry in pruned.get("ImagesDeleted") or [] if "Deleted" in entry]
    return len(deleted), pruned.get("SpaceReclaimed") or 0


def remove_network(client: docker.DockerClient) -> bool:
    """The shared job network, unless something (a service, an endpoint) still uses it."""
    try:
        network = client.networks.get(NETWORK)
    except NotFound:
        return False
    network.reload()
    if network.attrs.get("Containers"):
        return False
    network.remove()
    return True


def remove_folder(client: docker.DockerClient | None, folder: Path) -> bool:
    """Delete a scratch folder; root-owned contents are deleted from inside a container."""
    if not folder.exists():
        return False
    try:
        shutil.rmtree(folder)
    except PermissionError:
        if client is None:
            raise
        client.containers.run(
            IMAGES["preprocessing"],
            entrypoint=["find", "/scratch/contents", "-mindepth", "1", "-delete"],
            volumes={str(folder.resolve()): {"bind": "/scratch/contents", "mode": "rw"}},
            remove=True,
            user="0",
        )
        shutil.rmtree(folder, ignore_errors=True)
    return True


def clean(folders: list[Path], network: bool = True) -> CleanupReport:
    report = CleanupReport()
    client = docker_client()
    if client is not None:
        report.containers = remove_stopped_containers(client)
        report.network = network and remove_network(client)
        report.old_images, report.reclaimed_bytes = remove_old_images(client)
    for folder in folders:
        if running := services_running_under(folder):
            report.kept[folder] = running
        elif remove_folder(client, folder):
            report.folders.append(folder)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestration.infra.cleanup", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "folders", nargs="*", type=Path, help="scratch folders to delete (e.g. runs)"
    )
    parser.add_argument(
        "--keep-network", action="store_true", help=f"leave the {NETWORK} network in place"
    )
    args = parser.parse_args(argv)
    report = clean(args.folders, network=not args.keep_network)
    print(report.format())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
