"""The model server: SageMaker's hosting contract, and a REST API for people beside it.

SageMaker's routes: ``GET /ping``; ``POST /invocations`` with ``application/json`` (one query
``{"user_id": 196, "k": 10}`` or ``{"instances": [...]}``) or ``application/jsonlines`` (one
query a line, answered one line each in order: batch transform); ``GET /execution-parameters``.
``X-Amzn-SageMaker-Inference-Id`` and ``X-Amzn-SageMaker-Custom-Attributes`` come back as sent.
For people: ``GET /recommendations/{user_id}``, ``POST /score`` and ``GET /items/{item_id}``,
with titles. ``GET /metrics`` is for Prometheus.

Every answer the server can give is in its OpenAPI document, errors as ``{"error": "..."}``
naming the problem: 400 a malformed body or field, 404 an unknown user (fallback off) or item,
405 a wrong method (with ``Allow``), 413 a body over 6 MB, 415 another content type, 500 a
model whose scores overflow, 503 no model (``/ping`` says why, so a broken artifact shows in
the health check rather than as a crash loop). A client's mistake is never a 5xx.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import torch
from fastapi import APIRouter, FastAPI, Header, Request
from fastapi import Query as QueryParam
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from inference.batching import MicroBatcher
from inference.body_limit import MAX_BODY_BYTES, BodyLimit
from inference.contract import (
    JSON,
    JSON_LINES,
    BadRequest,
    BatchInvocation,
    Error,
    ExecutionParameters,
    Invocation,
    ItemInfo,
    Predictions,
    Recommendations,
    ScoreRequest,
    Scores,
    TitledRecommendations,
    UnsupportedMediaType,
    parse_invocation,
    parse_score,
    validation_message,
)
from inference.observability import (
    CUSTOM_ATTRIBUTES,
    INFERENCE_ID,
    MODEL_LOAD,
    USERS_PER_PASS,
    Observed,
    metrics_text,
)
from inference.recommender import (
    InvalidKError,
    NonFiniteScoresError,
    Query,
    Ranking,
    Recommender,
    UnknownItemError,
    UnknownUserError,
)
from inference.resources import threads_per_worker
from training.artifacts import MODEL_FILE, ArtifactError

log = logging.getLogger(__name__)

DEFAULT_MODEL_DIR = "/opt/ml/model"
_WHY = {
    400: "a malformed body, a missing, unknown or mistyped field, or k outside the catalogue",
    404: "an unknown user (with the fallback off) or item",
    413: f"a body over {MAX_BODY_BYTES} bytes",
    415: "a Content-Type the route does not read",
    500: "the model's scores overflowed: it cannot rank",
    503: "no model is loaded; the message says why",
}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": Error, "description": _WHY[status]} for status in statuses}


def _schema(model: type) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _body(schemas: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """An OpenAPI request body for a route that parses its body itself (media type: schema)."""
    content = {media: {"schema": schema} for media, schema in schemas.items()}
    return {"requestBody": {"required": True, "content": content}}


def _recommender(request: Request) -> Recommender:
    recommender = request.app.state.recommender
    if recommender is None:
        raise HTTPException(503, f"model not loaded: {request.app.state.load_error}")
    return recommender


async def _rank(request: Request, queries: list[Query]) -> list[Ranking]:
    _recommender(request).check(queries)  # a bad query fails its request, not a batch
    return await request.app.state.batcher.rank(queries)


def _items(ranking: Ranking) -> list[dict[str, Any]]:
    return [{"item_id": item_id, "score": score} for item_id, score in ranking.items]


def _answer(ranking: Ranking) -> dict[str, Any]:
    return {"user_id": ranking.user_id, "items": _items(ranking), "fallback": ranking.fallback}


CustomAttributes = Annotated[
    str | None,
    Header(
        alias=CUSTOM_ATTRIBUTES,
        max_length=1024,
        pattern=r"^[\x20-\x7e]*$",
        description="echoed in the answer (visible ASCII, at most 1024 characters)",
    ),
]
InferenceId = Annotated[
    str | None,
    Header(
        alias=INFERENCE_ID,
        max_length=64,
        pattern=r"^[\x21-\x7e][\x20-\x7e]*$",
        description="echoed in the answer and logged; one is made up when absent",
    ),
]
router = APIRouter()


@router.get("/ping", responses=_errors(503))
async def ping(request: Request) -> dict[str, str]:
    _recommender(request)
    return {"status": "ok"}


@router.post(
    "/invocations",
    response_model=None,
    responses={
        200: {
            "description": "one answer for a query, `predictions` for `instances`, one line "
            "for each line of a JSON Lines body",
            "content": {
                JSON: {"schema": {"anyOf": [_schema(Recommendations), _schema(Predictions)]}},
                JSON_LINES: {"schema": {"type": "string"}},
            },
        },
        **_errors(400, 404, 413, 415, 500, 503),
    },
    openapi_extra=_body(
        {
            JSON: {"anyOf": [_schema(Invocation), _schema(BatchInvocation)]},
            JSON_LINES: {"type": "string", "description": "one Invocation object a line"},
        }
    ),
)
async def invocations(
    request: Request, custom_attributes: CustomAttributes = None, inference_id: InferenceId = None
) -> Response:
    queries, form = parse_invocation(await request.body(), request.headers.get("content-type"))
    rankings = await _rank(request, [Query(q.user_id, q.k, q.fallback) for q in queries])
    headers = {INFERENCE_ID: request.state.inference_id}
    if custom_attributes is not None:
        headers[CUSTOM_ATTRIBUTES] = custom_attributes
    if form == "lines":
        body = "".join(json.dumps(_answer(ranking)) + "\n" for ranking in rankings)
        return Response(body, media_type=JSON_LINES, headers=headers)
    answers = [_answer(ranking) for ranking in rankings]
    answer = answers[0] if form == "single" else {"predictions": answers}
    return Response(json.dumps(answer), media_type=JSON, headers=headers)


@router.get("/execution-parameters")
async def execution_parameters() -> ExecutionParameters:
    """SageMaker's spelling, ``MULTI_RECORD``. Local mode's transformer accepts only
    ``MultiRecord``: pass ``strategy="MultiRecord"`` to it and it never reads this route."""
    return ExecutionParameters(
        MaxConcurrentTransforms=1, BatchStrategy="MULTI_RECORD", MaxPayloadInMB=6
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics() -> Response:
    body, content_type = metrics_text()
    return Response(body, media_type=content_type)


@router.get("/recommendations/{user_id}", responses=_errors(400, 404, 500, 503))
async def recommendations(
    request: Request,
    user_id: int,
    k: Annotated[int, QueryParam(ge=1, description="at most the catalogue's size")] = 10,
    fallback: bool = True,
) -> TitledRecommendations:
    (ranking,) = await _rank(request, [Query(user_id, k, fallback)])
    items = _items(ranking)
    titles = _recommender(request).titles([item["item_id"] for item in items])
    for item, title in zip(items, titles, strict=True):
        item["title"] = title
    return TitledRecommendations(user_id=user_id, items=items, fallback=ranking.fallback)


@router.post(
    "/score",
    responses=_errors(400, 404, 413, 415, 503),
    openapi_extra=_body({JSON: _schema(ScoreRequest)}),
)
async def score(request: Request) -> Scores:
    body = parse_score(await request.body(), request.headers.get("content-type"))
    pairs = [(pair.user_id, pair.item_id) for pair in body.pairs]
    recommender = _recommender(request)
    scores = recommender.score(pairs)
    titles = recommender.titles([item_id for _, item_id in pairs])
    return Scores(
        scores=[
            {"user_id": user_id, "item_id": item_id, "score": value, "title": title}
            for (user_id, item_id), value, title in zip(pairs, scores, titles, strict=True)
        ]
    )


@router.get("/items/{item_id}", responses=_errors(400, 404, 503))
async def item(request: Request, item_id: int) -> ItemInfo:
    found = _recommender(request).item(item_id)
    return ItemInfo(**found.__dict__)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _http_error(_: Request, exc: HTTPException) -> JSONResponse:
    """Starlette's own refusals (404, 405 with its Allow) in this server's error shape."""
    return _error(exc.status_code, str(exc.detail), exc.headers)


def _model_error(_: Request, exc: Exception) -> JSONResponse:
    """The model's fault, not the client's: a 500 that says why, and a line in the log."""
    log.error("%s", exc)
    return _error(500, str(exc))


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document without the 422 it adds to every route with parameters (this server
    answers 400 instead), with the schemas of the bodies parsed by hand, and with what the loaded
    model allows: k's maximum, a user and an item it knows as examples."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        for operations in schema["paths"].values():
            for operation in operations.values():
                operation["responses"].pop("422", None)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (Invocation, BatchInvocation, ScoreRequest, Recommendations, Predictions):
            defs = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(defs.pop("$defs", {}))
            components[model.__name__] = defs
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        if app.state.recommender is not None:
            _describe_model(schema, app.state.recommender)
        app.openapi_schema = schema
    return app.openapi_schema


def _describe_model(schema: dict[str, Any], recommender: Recommender) -> None:
    user_id, item_id = recommender.first_ids()
    limits = {
        "k": {"maximum": recommender.n_items},
        "user_id": {"examples": [user_id]},
        "item_id": {"examples": [item_id]},
    }
    components = schema["components"]["schemas"]
    fields = [components[name]["properties"] for name in ("Invocation", "Pair")]
    for operations in schema["paths"].values():
        for operation in operations.values():
            params = operation.get("parameters", [])
            fields.append({param["name"]: param["schema"] for param in params})
    for properties in fields:
        for name, extra in limits.items():
            if name in properties:
                properties[name].update(extra)


def _load(app: FastAPI, folder: Path) -> None:
    started = time.perf_counter()
    workers = int(os.environ.get("SAGEMAKER_MODEL_SERVER_WORKERS", "1"))
    if "OMP_NUM_THREADS" not in os.environ:  # an explicit setting wins
        torch.set_num_threads(threads_per_worker(workers))
    recommender = Recommender.from_folder(folder, precision=os.environ.get("NCF_PRECISION", "auto"))
    digest = hashlib.sha256((folder / MODEL_FILE).read_bytes()).hexdigest()
    seconds = time.perf_counter() - started
    app.state.labels = {
        "model": recommender.model_name,
        "version": os.environ.get("NCF_MODEL_VERSION", digest[:12]),
    }
    MODEL_LOAD.labels(**app.state.labels).set(seconds)
    app.state.recommender = recommender
    app.state.batcher = MicroBatcher(
        recommender.rank,
        max_users=int(os.environ.get("NCF_MICRO_BATCH_USERS", "32")),
        wait=float(os.environ.get("NCF_MICRO_BATCH_WAIT_MS", "0")) / 1000,
        observe=USERS_PER_PASS.labels(**app.state.labels).observe,
    )
    fields = {
        **app.state.labels,
        "sha256": digest,
        "load_seconds": round(seconds, 3),
        "users": recommender.n_users,
        "items": recommender.n_items,
        "device": str(recommender.device),
        "precision": recommender.precision,
        "threads": torch.get_num_threads(),
    }
    log.info("model loaded", extra={"fields": fields})


def create_app(model_dir: Path | None = None) -> FastAPI:
    """The app; the model is read once at startup from ``model_dir``, else ``$SM_MODEL_DIR``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        folder = model_dir or Path(os.environ.get("SM_MODEL_DIR", DEFAULT_MODEL_DIR))
        try:
            _load(app, folder)
        except (ArtifactError, OSError) as exc:  # OSError: e.g. a folder it may not read
            app.state.load_error = str(exc)
            log.error("no model loaded, /ping answers 503: %s", exc)
        yield

    app = FastAPI(title="NCF recommendations", version="2.0", lifespan=lifespan)
    app.state.recommender, app.state.load_error = None, None
    app.state.labels = {"model": "none", "version": "none"}
    app.include_router(router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    handlers = {
        HTTPException: _http_error,
        RequestValidationError: lambda _, exc: _error(
            400, validation_message(exc.errors(), skip=("body", "query", "path", "header"))
        ),
        BadRequest: lambda _, exc: _error(400, str(exc)),
        InvalidKError: lambda _, exc: _error(400, str(exc)),
        UnsupportedMediaType: lambda _, exc: _error(415, str(exc)),
        UnknownUserError: lambda _, exc: _error(404, str(exc)),
        UnknownItemError: lambda _, exc: _error(404, str(exc)),
        NonFiniteScoresError: _model_error,
    }
    for exception, handler in handlers.items():
        app.add_exception_handler(exception, handler)
    app.add_middleware(BodyLimit)
    app.add_middleware(Observed, labels=lambda: app.state.labels)  # outermost: counts the 413s
    return app


app = create_app()
