"""The request and answer shapes of every route, and the parsing of request bodies.

Bodies are parsed here rather than by FastAPI because ``/invocations`` takes two media types:
``application/json`` (one query or ``{"instances": [...]}``) and ``application/jsonlines``
(one query a line, what SageMaker batch transform sends with ``SplitType=Line``). Every mistake
is a :class:`BadRequest` naming the field (``instances[0].k``, ``line 3: user_id``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    Tag,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import PydanticCustomError

JSON = "application/json"
JSON_LINES = "application/jsonlines"
JSON_LINES_ALIASES = (JSON_LINES, "application/x-jsonlines", "application/jsonl")
MAX_INSTANCES = 1000  # one pass scores them all; bounds the time a batch holds the server
MAX_PAIRS = 10_000


def _not_text(value: Any) -> Any:
    if isinstance(value, str | bool):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


# JSON Schema's integer: 7 and 7.0, never "7", true or 7.5.
Integer = Annotated[int, BeforeValidator(_not_text)]


class BadRequest(ValueError):
    """The client's mistake: answered 400 with this message."""


class UnsupportedMediaType(ValueError):
    """A Content-Type this route does not read: answered 415."""


class Error(BaseModel):
    error: str = Field(description="what was wrong, naming the field or the limit")


class Invocation(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt "k" must not silently become 10

    user_id: Integer
    k: Integer = Field(10, ge=1, description="how many items; at most the catalogue's size")
    fallback: StrictBool = Field(
        True, description="answer a user the model never saw with the most popular items"
    )


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
    score: float | None = Field(description="the model's logit; null in a popularity fallback")


class Recommendations(BaseModel):
    user_id: int
    items: list[ScoredItem]
    fallback: Literal["popularity"] | None = Field(
        description="'popularity' when the user is new to the model and the items are the most "
        "popular ones; null when the model ranked them"
    )


class Predictions(BaseModel):
    predictions: list[Recommendations]


class TitledItem(ScoredItem):
    title: str | None = Field(description="null where the dataset has no titles")


class TitledRecommendations(Recommendations):
    items: list[TitledItem]


class Pair(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: Integer
    item_id: Integer


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pairs: list[Pair] = Field(min_length=1, max_length=MAX_PAIRS)


class PairScore(BaseModel):
    user_id: int
    item_id: int
    score: float
    title: str | None


class Scores(BaseModel):
    scores: list[PairScore]


class ItemInfo(BaseModel):
    item_id: int
    title: str | None
    n_train: int = Field(description="training interactions: the item's popularity")
    mean_rating: float | None


class ExecutionParameters(BaseModel):
    """What batch transform may send at once (``GET /execution-parameters``)."""

    MaxConcurrentTransforms: int
    BatchStrategy: Literal["MULTI_RECORD", "SINGLE_RECORD"]
    MaxPayloadInMB: int


_INVOCATION = TypeAdapter(InvocationBody)
_LINE = TypeAdapter(Invocation)
_SCORE = TypeAdapter(ScoreRequest)


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def is_json(media: str) -> bool:
    return media == JSON or media.endswith("+json")


def parse_invocation(body: bytes, content_type: str | None) -> tuple[list[Invocation], str]:
    """The queries of an ``/invocations`` body, and the form to answer in: ``single``,
    ``batch`` or ``lines``."""
    media = media_type(content_type)
    if media in JSON_LINES_ALIASES:
        return _parse_lines(body), "lines"
    if not is_json(media):
        raise UnsupportedMediaType(
            f"Content-Type must be {JSON} or {JSON_LINES}, got {content_type or 'none'}"
        )
    parsed = _validated(_INVOCATION, body)
    if isinstance(parsed, BatchInvocation):
        return parsed.instances, "batch"
    return [parsed], "single"


def parse_score(body: bytes, content_type: str | None) -> ScoreRequest:
    if not is_json(media_type(content_type)):
        raise UnsupportedMediaType(f"Content-Type must be {JSON}, got {content_type or 'none'}")
    return _validated(_SCORE, body)


def _parse_lines(body: bytes) -> list[Invocation]:
    lines = body.decode("utf-8", errors="replace").split("\n")
    if lines and not lines[-1].strip():
        lines.pop()  # the newline that ends the last record
    if not lines:
        raise BadRequest("the JSON Lines body has no lines: one JSON object a line, one a user")
    if len(lines) > MAX_INSTANCES:
        raise BadRequest(f"{len(lines)} lines: at most {MAX_INSTANCES} users a request")
    queries = []
    for number, line in enumerate(lines, start=1):
        try:
            queries.append(_validated(_LINE, line.encode()))
        except BadRequest as exc:
            raise BadRequest(f"line {number}: {exc}") from None
    return queries


def _validated(adapter: TypeAdapter, body: bytes) -> Any:
    try:
        return adapter.validate_json(body)
    except ValidationError as exc:
        raise BadRequest(validation_message(exc.errors())) from None


def validation_message(errors: list[dict[str, Any]], skip: tuple[str, ...] = ()) -> str:
    """One line per problem, located by field path (``instances[0].k``), leaving out location
    parts in ``skip`` (FastAPI's ``body``/``query``) and the union's form tag."""
    problems = []
    for error in errors:
        if error["type"] == "json_invalid":  # its message says the line and column
            return f"malformed JSON: {error.get('ctx', {}).get('error', error['msg'])}"
        loc = [part for part in error["loc"] if part not in ("single", "batch", *skip)]
        path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)
        problems.append(f"{path.lstrip('.') or 'request body'}: {error['msg']}")
    return "; ".join(problems)
