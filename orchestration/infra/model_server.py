"""The model server (``python -m inference``) as a host process: for the tests that need a real
server with its workers, for benchmarks/ (pinned to a CPU), and for a machine without Docker.

The container runs the same command (``serve`` execs it), so what is measured here is what the
image serves, less Docker's port forwarding.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from orchestration.infra.served import Served


class ModelServer(Served):
    """``with ModelServer(model_dir, port) as server: requests.get(server.url + "/ping")``.

    ``cpus``: a ``taskset`` CPU list ("0") the server may run on; ``code``: a folder whose
    ``inference`` package is served instead of this checkout's (benchmarks/ serves an older
    commit's as the baseline); ``env``: more variables (NCF_MICRO_BATCH_USERS, ...).
    """

    def __init__(
        self,
        model_dir: Path,
        port: int,
        *,
        workers: int = 1,
        cpus: str | None = None,
        code: Path | None = None,
        env: dict[str, str] | None = None,
        log: Path | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.model_dir, self.port, self.workers = model_dir, port, workers
        self.cpus, self.code, self.extra_env = cpus, code, env or {}
        self.log = log
        self.timeout = timeout
        self.url = f"http://127.0.0.1:{port}"
        self._process: subprocess.Popen[bytes] | None = None
        self._metrics = tempfile.TemporaryDirectory(prefix="ncf-metrics-")

    def command(self) -> list[str]:
        serve = [sys.executable, "-m", "inference", "serve"]
        return ["taskset", "--cpu-list", self.cpus, *serve] if self.cpus else serve

    def environment(self) -> dict[str, str]:
        env = {
            **os.environ,
            "SM_MODEL_DIR": str(self.model_dir),
            "SAGEMAKER_BIND_TO_PORT": str(self.port),
            "SAGEMAKER_MODEL_SERVER_WORKERS": str(self.workers),
            "PROMETHEUS_MULTIPROC_DIR": self._metrics.name,  # its own: servers may run side by side
            **self.extra_env,
        }
        if self.code is not None:
            env["PYTHONPATH"] = os.pathsep.join(
                filter(None, [str(self.code), env.get("PYTHONPATH")])
            )
        return env

    def launch(self) -> None:
        if self.log:
            self.log.parent.mkdir(parents=True, exist_ok=True)
        output = self.log.open("ab") if self.log else subprocess.DEVNULL
        self._process = subprocess.Popen(
            self.command(),
            env=self.environment(),
            cwd=self.code or None,
            stdout=output,
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._metrics.cleanup()
