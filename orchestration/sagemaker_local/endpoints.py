"""A model served by local mode: deploy, wait until it answers, ask it, take it down."""

from __future__ import annotations

import time
from typing import Any

import requests
from sagemaker.deserializers import JSONDeserializer
from sagemaker.local import LocalSession
from sagemaker.model import Model
from sagemaker.predictor import Predictor
from sagemaker.serializers import JSONSerializer

from orchestration.names import IMAGES, ROLE, SERVING_PORT
from orchestration.probes import accepts_connections, poll_until
from orchestration.sagemaker_local.jobs import CONTAINER_ENV
from orchestration.sagemaker_local.session import LocalModeError


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

    def healthy() -> bool:
        nonlocal last
        try:
            response = requests.get(ping_url, timeout=2)
        except requests.RequestException as exc:
            last = type(exc).__name__
            return False
        if response.status_code == 503 and (reason := _error_of(response)):
            raise LocalModeError(f"the endpoint is up but cannot serve ({ping_url}): {reason}")
        last = f"HTTP {response.status_code}"
        return response.status_code == 200

    if poll_until(healthy, timeout, interval=0.25):
        return time.monotonic() - started
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
