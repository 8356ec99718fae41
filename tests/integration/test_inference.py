"""The HTTP contract through a real uvicorn server on a free port (the stack SageMaker talks
to; fastapi.testclient would need httpx2, which the project does not install)."""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests
import torch
import uvicorn
from fastapi import FastAPI

from inference.app import create_app
from inference.contract import MAX_INSTANCES
from inference.observability import JsonFormatter
from inference.recommender import (
    NonFiniteScoresError,
    Recommender,
)
from preprocessing.schema import ITEMS, write_table
from tests.helpers import metric_total
from training.artifacts import load_model

JSON = {"Content-Type": "application/json"}
LINES = {"Content-Type": "application/jsonlines"}
CUSTOM = "X-Amzn-SageMaker-Custom-Attributes"
INFERENCE = "X-Amzn-SageMaker-Inference-Id"


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
    assert response.json() == {"user_id": user_id, "items": expected, "fallback": None}


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


def test_json_lines_answer_one_line_per_line_in_order(url, recommender, split):
    user_ids = [int(u) for u in split.users["user_id"].iloc[:4]] + [987654]
    body = "".join(json.dumps({"user_id": u, "k": 2}) + "\n" for u in user_ids)
    response = requests.post(f"{url}/invocations", data=body, headers=LINES, timeout=5)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/jsonlines"
    lines = response.text.splitlines()
    answers = [json.loads(line) for line in lines]
    assert [a["user_id"] for a in answers] == user_ids
    assert answers[0]["items"][0]["item_id"] == recommender.recommend(user_ids[0], 1)[0][0]
    assert answers[-1]["fallback"] == "popularity"
    assert response.text.endswith("\n") and len(lines) == len(user_ids)


def test_sagemaker_headers_come_back_and_an_inference_id_is_made_when_absent(url, user_id):
    headers = {CUSTOM: "trace=abc; tenant=7", INFERENCE: "req-123"}
    echoed = requests.post(
        f"{url}/invocations", json={"user_id": user_id}, headers=headers, timeout=5
    )
    assert (echoed.headers[CUSTOM], echoed.headers[INFERENCE]) == ("trace=abc; tenant=7", "req-123")
    made = requests.post(f"{url}/invocations", json={"user_id": user_id}, timeout=5)
    assert CUSTOM not in made.headers
    assert len(made.headers[INFERENCE]) == 32


def test_execution_parameters_say_what_batch_transform_may_send(url):
    response = requests.get(f"{url}/execution-parameters", timeout=5)
    assert response.json() == {
        "MaxConcurrentTransforms": 1,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 6,
    }


def test_a_new_user_gets_the_most_popular_items_marked_as_a_fallback(url, split):
    response = requests.post(f"{url}/invocations", json={"user_id": 987654, "k": 5}, timeout=5)
    assert response.status_code == 200
    answer = response.json()
    popular = split.items.sort_values(["n_train", "item"], ascending=[False, True])
    assert [item["item_id"] for item in answer["items"]] == popular["item_id"].head(5).tolist()
    assert answer["fallback"] == "popularity"
    assert {item["score"] for item in answer["items"]} == {None}


def test_a_wrong_method_is_405_with_allow(url):
    response = requests.get(f"{url}/invocations", timeout=5)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json() == {"error": "Method Not Allowed"}


def test_a_body_over_6_mb_is_refused_before_it_is_read(url, user_id):
    big = json.dumps({"user_id": user_id, "pad": "x" * (6 * 1024 * 1024)})
    declared = requests.post(f"{url}/invocations", data=big, headers=JSON, timeout=30)
    chunked = requests.post(  # no Content-Length: counted as it arrives
        f"{url}/invocations",
        data=iter([big[:1000].encode(), big[1000:].encode()]),
        headers=JSON,
        timeout=30,
    )
    for response in (declared, chunked):
        assert response.status_code == 413
        assert "over 6291456 bytes" in response.json()["error"]


ONE = '{"user_id": USER}'  # USER: a known user id, filled in by the test
BAD_REQUESTS = {
    "malformed JSON": (JSON, '{"user_id": ', 400, "malformed JSON: EOF while parsing"),
    "CSV": ({"Content-Type": "text/csv"}, ONE, 415, "or application/jsonlines, got text/csv"),
    "no content type": (
        {},
        ONE,
        415,
        "must be application/json or application/jsonlines, got none",
    ),
    "empty body": (JSON, "", 400, "malformed JSON"),
    "not an object": (JSON, "[1, 2]", 400, "request body: Input should be an object"),
    "no user_id": (JSON, '{"k": 3}', 400, "user_id: Field required"),
    "string user_id": (JSON, '{"user_id": "7"}', 400, "user_id: Input should be a valid integer"),
    "unknown field": (JSON, '{"user_id": USER, "top": 3}', 400, "top: Extra inputs are not"),
    "k zero": (JSON, '{"user_id": USER, "k": 0}', 400, "k: Input should be greater than or equal"),
    "k too big": (JSON, '{"user_id": USER, "k": 401}', 400, "k must be between 1 and 400"),
    "fractional k": (
        JSON,
        '{"user_id": USER, "k": 2.5}',
        400,
        "k: Input should be a valid integer",
    ),
    "fallback off": (JSON, '{"user_id": 987654, "fallback": false}', 404, "unknown user_id 987654"),
    "empty batch": (JSON, '{"instances": []}', 400, "instances: List should have at least 1"),
    "bad instance": (JSON, f'{{"instances": [{ONE}, {{"k": 1}}]}}', 400, "instances[1].user_id"),
    "fallback off in batch": (
        JSON,
        f'{{"instances": [{ONE}, {{"user_id": 987654, "fallback": false}}]}}',
        404,
        "unknown user_id 987654",
    ),
    "batch too big": (
        JSON,
        f'{{"instances": [{", ".join([ONE] * (MAX_INSTANCES + 1))}]}}',
        400,
        f"instances: List should have at most {MAX_INSTANCES} items",
    ),
    "malformed line": (LINES, f'{ONE}\n{{"user_id": \n', 400, "line 2: malformed JSON"),
    "batch form in lines": (
        LINES,
        f'{{"instances": [{ONE}]}}\n',
        400,
        "line 1: user_id: Field required; instances: Extra inputs",
    ),
    "k too big in lines": (LINES, f'{ONE}\n{{"user_id": USER, "k": 999}}', 400, "got 999"),
    "custom attributes too long": (
        {**JSON, CUSTOM: "a" * 1025},
        ONE,
        400,
        "x-amzn-sagemaker-custom-attributes: String should",
    ),
    "inference id too long": (
        {**JSON, INFERENCE: "i" * 65},
        ONE,
        400,
        "x-amzn-sagemaker-inference-id: String should",
    ),
}


@pytest.mark.parametrize("case", BAD_REQUESTS)
def test_a_bad_request_gets_a_documented_4xx_naming_the_problem(url, openapi, user_id, case):
    headers, body, status, message = BAD_REQUESTS[case]
    response = requests.post(
        f"{url}/invocations", data=body.replace("USER", str(user_id)), headers=headers, timeout=5
    )
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    assert str(status) in openapi["paths"]["/invocations"]["post"]["responses"]


# --- the REST API for people ------------------------------------------------------------------


@pytest.fixture(scope="module")
def titled(model_dir, tmp_path_factory):
    """The model with a title for every item, served."""
    folder = tmp_path_factory.mktemp("titled") / "model"
    shutil.copytree(model_dir, folder)
    items = pq.read_table(folder / "items.parquet")
    titles = pa.array([f"Movie {item_id}" for item_id in items["item_id"].to_pylist()])
    items = items.set_column(items.schema.get_field_index("title"), "title", titles)
    write_table(items, ITEMS, folder / "items.parquet")
    with serving(create_app(folder)) as base:
        yield base


def test_recommendations_for_a_person_carry_titles(titled, recommender, user_id):
    response = requests.get(f"{titled}/recommendations/{user_id}", params={"k": 3}, timeout=5)
    assert response.status_code == 200
    expected = recommender.recommend(user_id, 3)
    assert [(i["item_id"], i["title"]) for i in response.json()["items"]] == [
        (item_id, f"Movie {item_id}") for item_id, _ in expected
    ]
    new = requests.get(f"{titled}/recommendations/987654", timeout=5).json()
    assert new["fallback"] == "popularity" and new["items"][0]["title"].startswith("Movie ")
    off = requests.get(f"{titled}/recommendations/987654", params={"fallback": "false"}, timeout=5)
    assert off.status_code == 404


def test_score_gives_the_models_logit_for_each_pair(titled, model_dir, split):
    users = [int(u) for u in split.users["user_id"].iloc[:3]]
    items = [int(i) for i in split.items["item_id"].iloc[[5, 0, 9]]]
    pairs = [{"user_id": u, "item_id": i} for u, i in zip(users, items, strict=True)]
    response = requests.post(f"{titled}/score", json={"pairs": pairs}, timeout=5)
    assert response.status_code == 200, response.text
    model, _ = load_model(model_dir)
    dense_users = split.users.set_index("user_id").loc[users, "user"].tolist()
    dense_items = split.items.set_index("item_id").loc[items, "item"].tolist()
    with torch.no_grad():
        logits = model(torch.as_tensor(dense_users), torch.as_tensor(dense_items)).tolist()
    assert response.json()["scores"] == [
        {**pair, "score": pytest.approx(logit, abs=1e-6), "title": f"Movie {pair['item_id']}"}
        for pair, logit in zip(pairs, logits, strict=True)
    ]


def test_an_item_is_described_by_its_catalogue_row(titled, split):
    row = split.items.iloc[7]
    response = requests.get(f"{titled}/items/{int(row['item_id'])}", timeout=5)
    assert response.json() == {
        "item_id": int(row["item_id"]),
        "title": f"Movie {int(row['item_id'])}",
        "n_train": int(row["n_train"]),
        "mean_rating": pytest.approx(row["mean_rating"]),
    }


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("GET", "/items/987654", None, 404, "unknown item_id 987654"),
        ("GET", "/items/seven", None, 400, "item_id: Input should be a valid integer"),
        ("GET", "/recommendations/USER?k=0", None, 400, "k: Input should be greater than"),
        ("GET", "/recommendations/USER?k=401", None, 400, "k must be between 1 and 400"),
        ("POST", "/score", {"pairs": []}, 400, "pairs: List should have at least 1 item"),
        ("POST", "/score", {"pairs": [{"user_id": 987654, "item_id": 1}]}, 404, "user_id 987654"),
        ("POST", "/score", {"pairs": [{"user_id": "USER", "item_id": -5}]}, 404, "item_id -5"),
        ("POST", "/score", {"pairs": [{"user_id": 1}]}, 400, "pairs[0].item_id: Field required"),
    ],
)
def test_rest_mistakes_get_a_documented_4xx(
    titled, openapi, user_id, method, path, body, status, message
):
    path = path.replace("USER", str(user_id))
    if body is not None:
        body = json.loads(json.dumps(body).replace('"USER"', str(user_id)))
    response = requests.request(method, f"{titled}{path}", json=body, timeout=5)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    route = path.split("?")[0].replace(str(user_id), "{user_id}")
    route = "/items/{item_id}" if route.startswith("/items/") else route
    assert str(status) in openapi["paths"][route][method.lower()]["responses"]


# --- what the operator sees -------------------------------------------------------------------


@pytest.fixture(scope="module")
def openapi(url):
    return requests.get(f"{url}/openapi.json", timeout=5).json()


def test_the_openapi_document_lists_no_status_the_server_never_answers(openapi):
    statuses = {
        status
        for operations in openapi["paths"].values()
        for operation in operations.values()
        for status in operation["responses"]
    }
    assert "422" not in statuses
    errors = openapi["paths"]["/invocations"]["post"]["responses"]
    assert set(errors) == {"200", "400", "404", "413", "415", "500", "503"}
    assert errors["404"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }


def test_metrics_count_requests_by_route_and_status_with_the_model_as_labels(url, user_id):
    before = requests.get(f"{url}/metrics", timeout=5).text
    for body in ({"user_id": user_id}, {"user_id": user_id, "k": 0}, {"user_id": user_id}):
        requests.post(f"{url}/invocations", json=body, timeout=5)
    after = requests.get(f"{url}/metrics", timeout=5).text
    name, route = "ncf_http_requests_total", {"route": "/invocations", "model": "gmf"}
    for status, count in (("200", 2), ("400", 1)):
        grew = metric_total(after, name, status=status, **route) - metric_total(
            before, name, status=status, **route
        )
        assert grew == count
    seconds = "ncf_http_request_duration_seconds_count"
    assert metric_total(after, seconds, **route) - metric_total(before, seconds, **route) == 3
    assert metric_total(after, "ncf_model_load_seconds", model="gmf") > 0


def test_each_request_is_one_json_log_line_with_its_inference_id(url, user_id, caplog):
    caplog.set_level(logging.INFO, logger="inference.requests")
    requests.post(
        f"{url}/invocations", json={"user_id": user_id}, headers={INFERENCE: "log-me"}, timeout=5
    )
    [record] = [r for r in caplog.records if r.fields["inference_id"] == "log-me"]
    line = json.loads(JsonFormatter().format(record))
    assert (line["status"], line["path"], line["message"]) == (200, "/invocations", "request")
    assert 0 < line["latency_ms"] < 5000


def test_without_a_model_ping_and_invocations_say_why(tmp_path):
    with serving(create_app(tmp_path / "missing")) as base:
        ping = requests.get(f"{base}/ping", timeout=5)
        invocation = requests.post(f"{base}/invocations", json={"user_id": 1}, timeout=5)
    for response in (ping, invocation):
        assert response.status_code == 503
        assert "model not loaded" in response.json()["error"]
        assert "is not a model folder" in response.json()["error"]
