"""Every SageMaker SDK call of the course, in one thin place (SDK v2: v3 has no local sessions).

A session made here never talks to AWS: static dummy credentials (no credential chain, no
instance metadata), a fixed region, telemetry opted out, and S3 pointed at the course's local
store (SeaweedFS, see ``orchestration.services``). The jobs run the project's own images
(bring-your-own-container): the image is what would ship to the cloud, unchanged, and its entry
points read SageMaker's ``/opt/ml`` contract themselves. Moving to SDK v3 means rewriting this
module only.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
# The SDK announces at import that it found no config files; ours is passed in explicitly.
logging.getLogger("sagemaker.config").setLevel(logging.WARNING)
# It announces telemetry before reading the opt-out every session here sets.
logging.getLogger("sagemaker.telemetry.telemetry_logging").setLevel(logging.WARNING)
# The SDK and boto3 must never look for credentials on an EC2 metadata endpoint.
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

from sagemaker.deserializers import JSONDeserializer  # noqa: E402
from sagemaker.estimator import Estimator  # noqa: E402
from sagemaker.local import LocalSession  # noqa: E402
from sagemaker.model import Model  # noqa: E402
from sagemaker.predictor import Predictor  # noqa: E402
from sagemaker.processing import ProcessingInput, ProcessingOutput, Processor  # noqa: E402
from sagemaker.serializers import JSONSerializer  # noqa: E402
from sagemaker.utils import _SENSITIVE_SYSTEM_PATHS  # noqa: E402

from orchestration.services import LocalS3, accepts_connections  # noqa: E402

log = logging.getLogger(__name__)

# Local mode never checks the role, but the SDK insists on one: any well-formed ARN does.
ROLE = "arn:aws:iam::000000000000:role/ncf-local-mode"
IMAGES = {
    "preprocessing": "ncf-preprocessing:latest",
    "training": "ncf-training:latest",
    "inference": "ncf-inference:latest",
}
NETWORK = "sagemaker-local"  # the network every local-mode compose file joins
SERVING_PORT = 8080  # where local mode publishes an endpoint's container on the host
PROCESSING_INPUT = "/opt/ml/processing/input/raw"
PROCESSING_OUTPUT = "/opt/ml/processing/output/processed"
# Two cores shared by several containers: one thread each avoids oversubscription stalls.
CONTAINER_ENV = {"OMP_NUM_THREADS": "1"}
_SDK_CONFIG = {
    "SchemaVersion": "1.0",
    "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}},
}


def training_environment(instance_count: int) -> dict[str, str]:
    """Threads for each instance of a local training job: an equal share of the host's cores.

    The instances of a local job run side by side on one machine; more threads than their share
    stall each other. The image itself sets no thread count, so on SageMaker, where each instance
    is a machine of its own, PyTorch uses all of that machine's cores.
    """
    share = max(1, (os.cpu_count() or 1) // instance_count)
    return {"OMP_NUM_THREADS": str(share)}


class LocalModeError(RuntimeError):
    """A local-mode job or endpoint could not run; the message says why and what to do."""


@dataclass(frozen=True)
class InstanceChoice:
    instance_type: str  # "local" or "local_gpu"
    reason: str


def command_output(command: list[str], timeout: float = 30) -> str | None:
    """Stripped stdout of a command that succeeded; None when it is missing, fails or hangs
    (a wedged NVIDIA driver or Docker engine can leave ``nvidia-smi`` or ``docker`` hanging)."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def choose_instance_type() -> InstanceChoice:
    """``local_gpu`` only when Docker can hand a GPU to a container; ``local`` otherwise."""
    if shutil.which("nvidia-smi") is None:
        return InstanceChoice("local", "no nvidia-smi on this machine: no NVIDIA GPU or driver")
    if command_output(["nvidia-smi", "-L"]) is None:
        return InstanceChoice(
            "local", "nvidia-smi fails or hangs: the NVIDIA driver is not working"
        )
    runtimes = command_output(["docker", "info", "--format", "{{json .Runtimes}}"])
    if runtimes is None:
        return InstanceChoice("local", "`docker info` fails or hangs: no Docker engine answers")
    if "nvidia" not in runtimes:
        return InstanceChoice(
            "local",
            "a GPU is present but Docker has no nvidia runtime: install the NVIDIA Container "
            "Toolkit and run `nvidia-ctk runtime configure --runtime=docker` (lesson 01)",
        )
    return InstanceChoice("local_gpu", "nvidia-smi works and Docker has the nvidia runtime")


def container_root(preferred: Path) -> Path:
    """Scratch space for local-mode jobs, outside the folders the SDK refuses to mount."""
    resolved = preferred.resolve()
    if any(str(resolved).startswith(path) for path in _SENSITIVE_SYSTEM_PATHS):
        fallback = Path(tempfile.gettempdir()) / "ncf-sagemaker-local"
        log.info("local mode cannot mount from %s; using %s instead", resolved, fallback)
        resolved = fallback
    resolved.mkdir(parents=True, exist_ok=True)
    return resolved


def local_session(store: LocalS3, scratch: Path) -> LocalSession:
    """A LocalSession that makes no request to AWS: S3 is the course's local store, its bucket
    the default one, and the store's own boto3 session its keys (and its full-disk errors)."""
    session = LocalSession(
        boto_session=store.session(),
        s3_endpoint_url=store.endpoint_url,
        default_bucket=store.bucket,
        sagemaker_config=_SDK_CONFIG,
    )
    session.config = {"local": {"local_code": True, "container_root": str(scratch)}}
    return session


def upload(session: LocalSession, local_path: Path, prefix: str) -> str:
    """Copy a file or folder into the session's bucket; returns its ``s3://`` URI."""
    return session.upload_data(str(local_path), bucket=session.default_bucket(), key_prefix=prefix)


def download(session: LocalSession, s3_uri: str, target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    bucket, _, prefix = s3_uri.removeprefix("s3://").partition("/")
    session.download_data(str(target), bucket, key_prefix=prefix)
    return target


def run_processing(
    session: LocalSession,
    *,
    raw: str | None,
    output: str,
    arguments: list[str],
    instance_type: str = "local",
    job_name: str | None = None,
) -> str:
    """The preprocessing image as a processing job: ``raw`` in, Parquet + manifest to ``output``.

    ``raw`` is an ``s3://`` URI or a local folder (the SDK uploads it); None for synthetic data,
    which the job generates itself.
    """
    inputs = [] if raw is None else [ProcessingInput(raw, PROCESSING_INPUT, input_name="raw")]
    processor = preprocessing_processor(session, instance_type)
    _run_job(
        "processing",
        lambda: processor.run(
            inputs=inputs,
            outputs=[
                ProcessingOutput(
                    source=PROCESSING_OUTPUT, destination=output, output_name="processed"
                )
            ],
            arguments=arguments,
            job_name=job_name,
            wait=True,
            logs=True,
        ),
    )
    return output


def preprocessing_processor(session: LocalSession, instance_type: str = "local") -> Processor:
    """The preprocessing image as a generic Processor: jobs and pipeline steps share it."""
    return Processor(
        role=ROLE,
        image_uri=IMAGES["preprocessing"],
        instance_count=1,
        instance_type=instance_type,
        entrypoint=["python", "-m", "preprocessing"],
        env=CONTAINER_ENV,
        sagemaker_session=session,
    )


def run_training(
    session: LocalSession,
    *,
    channels: dict[str, str],
    hyperparameters: dict[str, Any],
    output_path: str,
    instance_type: str = "local",
    instance_count: int = 1,
    checkpoint_dir: Path | None = None,
    environment: dict[str, str] | None = None,
    job_name: str | None = None,
) -> str:
    """The training image as a training job; returns the ``s3://`` URI of ``model.tar.gz``.

    Local mode does not sync ``checkpoint_s3_uri``; a ``checkpoints`` channel given as a
    ``file://`` folder is bind-mounted read-write instead, which gives the same resume
    behaviour: the training entry point writes its checkpoints there when the channel exists.
    """
    estimator = training_estimator(
        session,
        hyperparameters=hyperparameters,
        output_path=output_path,
        instance_type=instance_type,
        instance_count=instance_count,
        environment=environment,
    )
    inputs = dict(channels)
    if checkpoint_dir is not None:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        inputs["checkpoints"] = f"file://{checkpoint_dir.resolve()}"
    _run_job("training", lambda: estimator.fit(inputs, job_name=job_name, wait=True, logs="All"))
    return estimator.model_data


def training_estimator(
    session: LocalSession,
    *,
    hyperparameters: dict[str, Any],
    output_path: str,
    instance_type: str = "local",
    instance_count: int = 1,
    environment: dict[str, str] | None = None,
) -> Estimator:
    """The generic Estimator run_training fits, on its own so a lesson can inspect it unfitted."""
    return Estimator(
        image_uri=IMAGES["training"],
        role=ROLE,
        instance_count=instance_count,
        instance_type=instance_type,
        output_path=output_path,
        hyperparameters={key: hyperparameter_value(v) for key, v in hyperparameters.items()},
        environment=training_environment(instance_count) | (environment or {}),
        sagemaker_session=session,
    )


def deploy(
    session: LocalSession,
    model_data: str,
    *,
    instance_type: str = "local",
    endpoint_name: str = "ncf-endpoint",
    timeout: float = 120.0,
) -> Predictor:
    """Serve ``model.tar.gz`` in the inference image; returns once ``/ping`` answers 200.

    ``wait=False`` skips the SDK's fixed 30 s wait; our own readiness check polls the
    container's health route, which is what SageMaker itself does before routing traffic.
    """
    if accepts_connections("127.0.0.1", SERVING_PORT):
        # The SDK does not check: the container's bind would fail in a background thread while
        # the readiness check and every prediction got their answers from the squatter.
        raise LocalModeError(
            f"port {SERVING_PORT} is taken, and local mode publishes every endpoint there: stop "
            "what listens on it (`docker ps` shows an endpoint container an earlier run left; "
            "a `python -m inference` started by hand uses it too) and deploy again"
        )
    model = Model(
        image_uri=IMAGES["inference"],
        model_data=model_data,
        role=ROLE,
        env=CONTAINER_ENV,
        predictor_cls=Predictor,
        sagemaker_session=session,
    )
    model.deploy(
        initial_instance_count=1,
        instance_type=instance_type,
        endpoint_name=endpoint_name,
        wait=False,
    )
    predictor = Predictor(
        endpoint_name,
        sagemaker_session=session,
        serializer=JSONSerializer(),
        deserializer=JSONDeserializer(),
    )
    try:
        wait_until_ready(f"http://127.0.0.1:{SERVING_PORT}/ping", timeout)
    except LocalModeError:
        teardown(predictor)
        raise
    return predictor


def wait_until_ready(ping_url: str, timeout: float) -> float:
    """Poll the endpoint's health route; returns the seconds it took.

    The server reads its model once, at start: a 503 with a reason (the model could not be
    loaded) is final, so it ends the wait at once and the reason is the error."""
    started = time.monotonic()
    last = "no answer"
    while time.monotonic() - started < timeout:
        try:
            response = requests.get(ping_url, timeout=2)
            if response.status_code == 200:
                return time.monotonic() - started
            if response.status_code == 503 and (reason := _error_of(response)):
                raise LocalModeError(f"the endpoint is up but cannot serve ({ping_url}): {reason}")
            last = f"HTTP {response.status_code}"
        except requests.RequestException as exc:
            last = type(exc).__name__
        time.sleep(0.25)
    raise LocalModeError(
        f"the endpoint did not become healthy within {timeout:.0f} s ({ping_url}: {last}); "
        "its container log is above"
    )


def _error_of(response: requests.Response) -> str | None:
    try:
        answer = response.json()
    except ValueError:
        return None
    return answer.get("error") if isinstance(answer, dict) else None


def recommend(predictor: Predictor, user_id: Any, k: int) -> dict[str, Any]:
    """One user's recommendations. Local mode hands an error answer (4xx/5xx) back as if it were
    the result, so it is raised here instead of surfacing later as a missing key."""
    answer = predictor.predict({"user_id": user_id, "k": k})
    if not isinstance(answer, dict) or "items" not in answer:
        problem = answer.get("error", answer) if isinstance(answer, dict) else answer
        raise LocalModeError(f"the endpoint answered no recommendations for {user_id!r}: {problem}")
    return answer


def teardown(predictor: Predictor) -> None:
    """Delete the model first: local mode stops the container with the endpoint."""
    predictor.delete_model()
    predictor.delete_endpoint()


def _run_job(kind: str, run) -> None:
    try:
        run()
    except RuntimeError as exc:
        raise LocalModeError(
            f"the local-mode {kind} job failed ({exc}); its container log is above"
        ) from exc


def hyperparameter_value(value: Any) -> str:
    """SageMaker passes hyperparameters as strings; lists become space-separated numbers."""
    if isinstance(value, list | tuple):
        return " ".join(str(item) for item in value)
    return str(value)
