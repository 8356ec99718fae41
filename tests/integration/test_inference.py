"""The HTTP contract through a real uvicorn server on a free port (the stack SageMaker talks
to; fastapi.testclient would need httpx2, which the project does not install)."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests
import torch
import uvicorn
from fastapi import FastAPI

from inference.app import MAX_INSTANCES, create_app
from inference.recommender import (
    NonFiniteScoresError,
    Recommender,
)

JSON = {"Content-Type": "application/json"}


def _overflowing_weights(folder):
    """Finite weights whose products overflow float32: every score comes out NaN."""
    state = torch.load(folder / "model.pt", weights_only=True)
    state["user_embedding.weight"].fill_(1e30)
    state["item_embedding.weight"].fill_(1e30)
    state["predict.weight"][0, ::2] = -state["predict.weight"][0, 1::2]  # inf - inf
    torch.save(state, folder / "model.pt")


def test_scores_that_overflow_are_an_error_not_a_ranking(model_dir, tmp_path, user_id):
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    _overflowing_weights(folder)
    with pytest.raises(NonFiniteScoresError, match=f"user {user_id}: .* overflow"):
        Recommender.from_folder(folder, "cpu").recommend(user_id)
    with serving(create_app(folder)) as base:
        response = requests.post(f"{base}/invocations", json={"user_id": user_id}, timeout=5)
    assert response.status_code == 500
    assert "non-finite scores" in response.json()["error"]


# --- the HTTP contract ------------------------------------------------------------------------


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "the server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def url(model_dir):
    with serving(create_app(model_dir)) as base:
        yield base


@pytest.fixture(scope="module")
def user_id(split):
    return int(split.users["user_id"].iloc[3])


def test_ping_answers_once_the_model_is_loaded(url):
    assert requests.get(f"{url}/ping", timeout=5).status_code == 200


def test_invocation_returns_the_recommenders_top_k(url, recommender, user_id):
    response = requests.post(f"{url}/invocations", json={"user_id": user_id, "k": 3}, timeout=5)
    assert response.status_code == 200
    expected = [
        {"item_id": item, "score": pytest.approx(score)}
        for item, score in recommender.recommend(user_id, 3)
    ]
    assert response.json() == {"user_id": user_id, "items": expected}


def test_k_defaults_to_ten(url, user_id):
    response = requests.post(f"{url}/invocations", json={"user_id": user_id}, timeout=5)
    assert len(response.json()["items"]) == 10


def test_batch_answers_each_instance_in_order(url, recommender, split):
    user_ids = [int(u) for u in split.users["user_id"].iloc[:3]]
    instances = [{"user_id": u, "k": k} for u, k in zip(user_ids, (1, 2, 3), strict=True)]
    response = requests.post(f"{url}/invocations", json={"instances": instances}, timeout=5)
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert [p["user_id"] for p in predictions] == user_ids
    assert [len(p["items"]) for p in predictions] == [1, 2, 3]
    assert predictions[2]["items"][0]["item_id"] == recommender.recommend(user_ids[2], 1)[0][0]


ONE = '{"user_id": USER}'  # USER: a known user id, filled in by the test
BAD_REQUESTS = {
    "malformed JSON": (JSON, '{"user_id": ', 400, "malformed JSON at character"),
    "CSV": ({"Content-Type": "text/csv"}, ONE, 415, "must be application/json, got text/csv"),
    "no content type": ({}, ONE, 415, "must be application/json, got none"),
    "empty body": (JSON, "", 400, "request body: Field required"),
    "not an object": (JSON, "[1, 2]", 400, "request body: Input should be a valid dictionary"),
    "no user_id": (JSON, '{"k": 3}', 400, "user_id: Field required"),
    "string user_id": (JSON, '{"user_id": "7"}', 400, "user_id: Input should be a valid integer"),
    "unknown field": (JSON, '{"user_id": USER, "top": 3}', 400, "top: Extra inputs are not"),
    "k zero": (JSON, '{"user_id": USER, "k": 0}', 400, "k: Input should be greater than or equal"),
    "k too big": (
        JSON,
        '{"user_id": USER, "k": 401}',
        400,
        "k must be between 1 and 400 (the catalogue), got 401",
    ),
    "fractional k": (
        JSON,
        '{"user_id": USER, "k": 2.5}',
        400,
        "k: Input should be a valid integer",
    ),
    "unknown user": (JSON, '{"user_id": 987654}', 404, "unknown user_id 987654"),
    "empty batch": (JSON, '{"instances": []}', 400, "instances: List should have at least 1"),
    "bad instance": (JSON, f'{{"instances": [{ONE}, {{"k": 1}}]}}', 400, "instances[1].user_id"),
    "unknown user in batch": (
        JSON,
        f'{{"instances": [{ONE}, {{"user_id": 987654}}]}}',
        404,
        "unknown user_id 987654",
    ),
    "batch too big": (
        JSON,
        f'{{"instances": [{", ".join([ONE] * (MAX_INSTANCES + 1))}]}}',
        400,
        f"instances: List should have at most {MAX_INSTANCES} items",
    ),
}


@pytest.mark.parametrize("case", BAD_REQUESTS)
def test_a_bad_request_gets_a_4xx_naming_the_problem(url, user_id, case):
    headers, body, status, message = BAD_REQUESTS[case]
    response = requests.post(
        f"{url}/invocations", data=body.replace("USER", str(user_id)), headers=headers, timeout=5
    )
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


def test_without_a_model_ping_and_invocations_say_why(tmp_path):
    with serving(create_app(tmp_path / "missing")) as base:
        ping = requests.get(f"{base}/ping", timeout=5)
        invocation = requests.post(f"{base}/invocations", json={"user_id": 1}, timeout=5)
    for response in (ping, invocation):
        assert response.status_code == 503
        assert "model not loaded" in response.json()["error"]
        assert "is not a model folder" in response.json()["error"]
