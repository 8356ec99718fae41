"""The SageMaker hosting contract over HTTP: ``GET /ping`` and ``POST /invocations``.

``/invocations`` takes ``Content-Type: application/json``, either one request
``{"user_id": 196, "k": 10}`` or a batch ``{"instances": [{"user_id": 196, "k": 5}, ...]}``, and
answers ``{"user_id": 196, "items": [{"item_id": 242, "score": 3.1}, ...]}`` or
``{"predictions": [...]}`` with one such object per instance. Scores are logits (see
:mod:`inference.recommender`). A client's mistake is a 4xx with ``{"error": "..."}`` naming it:
400 for malformed JSON, a missing, unknown or mistyped field, or k outside 1..n_items; 404 for
a user id the model does not know (a batch fails as a whole); 415 for another content type.
A model whose scores overflow to NaN or infinity answers 500 with the reason rather than a
ranking it cannot make. ``/ping`` is 503 while no model is loaded, with the reason, so a broken
artifact is visible in the endpoint's health check and its log rather than as a crash loop.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Discriminator, Field, StrictInt, Tag
from starlette.exceptions import HTTPException

from inference.recommender import (
    InvalidKError,
    NonFiniteScoresError,
    Recommender,
    UnknownUserError,
)
from training.artifacts import ArtifactError

log = logging.getLogger(__name__)

DEFAULT_MODEL_DIR = "/opt/ml/model"
MAX_INSTANCES = 100  # one forward pass each: bounds a request's latency


class Invocation(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt "k" must not silently become 10

    user_id: StrictInt
    k: StrictInt = Field(10, ge=1)


class BatchInvocation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instances: list[Invocation] = Field(min_length=1, max_length=MAX_INSTANCES)


def _form(body: Any) -> str:
    return "batch" if isinstance(body, dict) and "instances" in body else "single"


# Tagged so a bad body is reported against the form it was meant as, not against both.
InvocationBody = Annotated[
    Annotated[Invocation, Tag("single")] | Annotated[BatchInvocation, Tag("batch")],
    Discriminator(_form),
]


class ScoredItem(BaseModel):
    item_id: int
    score: float


class Recommendations(BaseModel):
    user_id: int
    items: list[ScoredItem]


class Predictions(BaseModel):
    predictions: list[Recommendations]


def _recommender(request: Request) -> Recommender:
    recommender = request.app.state.recommender
    if recommender is None:
        raise HTTPException(503, f"model not loaded: {request.app.state.load_error}")
    return recommender


def _require_json(content_type: Annotated[str | None, Header()] = None) -> None:
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise HTTPException(
            415, f"Content-Type must be application/json, got {content_type or 'none'}"
        )


router = APIRouter()


@router.get("/ping", dependencies=[Depends(_recommender)])
def ping() -> dict[str, str]:
    return {"status": "ok"}


@router.post("/invocations", dependencies=[Depends(_require_json)])
def invocations(
    body: InvocationBody, recommender: Annotated[Recommender, Depends(_recommender)]
) -> Recommendations | Predictions:
    def answer(query: Invocation) -> Recommendations:
        items = recommender.recommend(query.user_id, query.k)
        scored = [ScoredItem(item_id=item_id, score=score) for item_id, score in items]
        return Recommendations(user_id=query.user_id, items=scored)

    if isinstance(body, BatchInvocation):
        return Predictions(predictions=[answer(query) for query in body.instances])
    return answer(body)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _validation_message(exc: RequestValidationError) -> str:
    """One line per problem, located by field path (``instances[0].k``) without FastAPI's
    ``body`` prefix or the union's form tag."""
    problems = []
    for error in exc.errors():
        if error["type"] == "json_invalid":
            return f"malformed JSON at character {error['loc'][-1]}: {error['ctx']['error']}"
        loc = [part for part in error["loc"][1:] if part not in ("single", "batch")]
        path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)
        problems.append(f"{path.lstrip('.') or 'request body'}: {error['msg']}")
    return "; ".join(problems)


def _broken_model(_: Request, exc: Exception) -> JSONResponse:
    """The model's fault, not the client's: a 500 that says why, and a line in the log."""
    log.error("%s", exc)
    return _error(500, str(exc))


def create_app(model_dir: Path | None = None) -> FastAPI:
    """The app; the model is read once at startup from ``model_dir``, else ``$SM_MODEL_DIR``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        folder = model_dir or Path(os.environ.get("SM_MODEL_DIR", DEFAULT_MODEL_DIR))
        app.state.recommender, app.state.load_error = None, None
        try:
            app.state.recommender = Recommender.from_folder(folder)
            log.info("serving %s (%d items)", folder, app.state.recommender.n_items)
        except (ArtifactError, OSError) as exc:  # OSError: e.g. a folder it may not read
            app.state.load_error = str(exc)
            log.error("no model loaded, /ping answers 503: %s", exc)
        yield

    app = FastAPI(title="NCF recommendations", lifespan=lifespan)
    app.include_router(router)
    app.add_exception_handler(
        HTTPException, lambda _, exc: _error(exc.status_code, str(exc.detail))
    )
    app.add_exception_handler(
        RequestValidationError, lambda _, exc: _error(400, _validation_message(exc))
    )
    app.add_exception_handler(UnknownUserError, lambda _, exc: _error(404, str(exc)))
    app.add_exception_handler(InvalidKError, lambda _, exc: _error(400, str(exc)))
    app.add_exception_handler(NonFiniteScoresError, _broken_model)
    return app


app = create_app()
