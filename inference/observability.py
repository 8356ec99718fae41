"""What the server tells its operator: Prometheus metrics and one JSON log line per request, from
one ASGI middleware, so every route and every refusal counts.

Metrics are labelled with the model's name and version. With several worker processes
(``SAGEMAKER_MODEL_SERVER_WORKERS``) ``python -m inference`` sets ``PROMETHEUS_MULTIPROC_DIR``
and ``/metrics`` sums the workers' files, so a scrape sees the whole server, not one worker.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

INFERENCE_ID = "x-amzn-sagemaker-inference-id"
CUSTOM_ATTRIBUTES = "x-amzn-sagemaker-custom-attributes"
# From half a millisecond up: the model answers in about one.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02,
                   0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5)  # fmt: skip
LABELS = ("model", "version")

REQUESTS = Counter(
    "ncf_http_requests", "HTTP requests answered", ("route", "method", "status", *LABELS)
)
LATENCY = Histogram(
    "ncf_http_request_duration_seconds",
    "Time from a request's first byte read to its last byte sent",
    ("route", "method", *LABELS),
    buckets=LATENCY_BUCKETS,
)
USERS_PER_PASS = Histogram(
    "ncf_users_per_pass",
    "Users scored in one pass over the catalogue (micro-batching gathers concurrent requests)",
    LABELS,
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
MODEL_LOAD = Gauge(
    "ncf_model_load_seconds", "Seconds the model took to load", LABELS, multiprocess_mode="max"
)

log = logging.getLogger("inference.requests")


def metrics_text() -> tuple[bytes, str]:
    """The exposition of this server: every worker's, where there are several."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


class JsonFormatter(logging.Formatter):
    """Every log line one JSON object: a log shipper indexes it without parsing rules."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,  # which worker, where there are several
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line)


class Observed:
    """ASGI middleware: the inference id, the metrics and the request's log line."""

    def __init__(self, app: ASGIApp, labels: Callable[[], dict[str, str]]) -> None:
        self.app = app
        self.labels = labels  # the model's name and version, known once it has loaded

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope["headers"])
        inference_id = headers.get(INFERENCE_ID.encode(), b"").decode("latin-1")
        scope.setdefault("state", {})["inference_id"] = inference_id or uuid.uuid4().hex
        status = 500  # what the client gets if the app raises

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            self._record(scope, status, time.perf_counter() - started)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        path = getattr(route, "path", "unmatched")  # a template: label values stay few
        labels = self.labels()
        route_labels = {"route": path, "method": scope["method"], **labels}
        REQUESTS.labels(status=str(status), **route_labels).inc()
        LATENCY.labels(**route_labels).observe(seconds)
        fields = {
            "inference_id": scope["state"]["inference_id"],
            "method": scope["method"],
            "path": scope["path"],
            "status": status,
            "latency_ms": round(seconds * 1000, 3),
        }
        log.info("request", extra={"fields": fields})
