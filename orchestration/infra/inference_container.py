"""The inference image run by hand, the way SageMaker hosting runs it: ``docker run IMAGE
serve``, the model folder at /opt/ml/model (read-only), port 8080 published, and the CPU quota
of an instance. Lesson 07 calls it, and tests/docker checks the image with it."""

from __future__ import annotations

import contextlib
from pathlib import Path

import docker
from docker.models.containers import Container

from orchestration.infra.served import Served
from orchestration.names import IMAGES


class InferenceContainer(Served):
    """``with InferenceContainer(model_dir, port) as served: requests.get(served.url + "/ping")``.

    ``cpus``: the quota (``docker run --cpus``); ``cpuset``: the CPUs it may use (a benchmark
    keeps the load generator off them); ``env``: variables such as NCF_MICRO_BATCH_USERS.
    """

    def __init__(
        self,
        model_dir: Path,
        port: int,
        *,
        cpus: float = 1.0,
        cpuset: str | None = None,
        env: dict[str, str] | None = None,
        name: str = "ncf-inference-by-hand",
        timeout: float = 60.0,
    ) -> None:
        self.model_dir, self.port, self.cpus, self.cpuset = model_dir, port, cpus, cpuset
        self.env, self.name, self.timeout = env or {}, name, timeout
        self.url = f"http://127.0.0.1:{port}"
        self.container: Container | None = None

    def launch(self) -> None:
        client = docker.from_env()
        with contextlib.suppress(docker.errors.NotFound):  # left by an interrupted run
            client.containers.get(self.name).remove(force=True)
        self.container = client.containers.run(
            IMAGES["inference"],
            "serve",
            name=self.name,
            detach=True,
            ports={"8080/tcp": ("127.0.0.1", self.port)},
            volumes={str(self.model_dir.resolve()): {"bind": "/opt/ml/model", "mode": "ro"}},
            nano_cpus=int(self.cpus * 1e9),
            cpuset_cpus=self.cpuset,
            environment=self.env,
        )

    def logs(self) -> list[str]:
        assert self.container is not None
        return self.container.logs().decode(errors="replace").splitlines()

    def stop(self) -> None:
        if self.container is not None:
            self.container.stop(timeout=10)
            self.container.remove(force=True)
            self.container = None
