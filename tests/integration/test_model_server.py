"""The server as SageMaker runs it, ``python -m inference`` with its workers: metrics summed over
the workers, one JSON log line a request, and an OpenAPI fuzzer (schemathesis, all its checks)
that must find nothing."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests

from orchestration.infra.model_server import ModelServer
from orchestration.lessons.load_test import best_within_slo, naive_code
from tests.helpers import metric_total


def test_two_workers_count_every_request_and_log_each_once(model_dir, split, free_port, tmp_path):
    log = tmp_path / "server.log"
    user_id = int(split.users["user_id"].iloc[0])
    with ModelServer(model_dir, free_port(), workers=2, log=log) as server:
        for number in range(40):  # a new connection each: the kernel spreads them over workers
            headers = {"X-Amzn-SageMaker-Inference-Id": f"req-{number}", "Connection": "close"}
            response = requests.post(
                f"{server.url}/invocations", json={"user_id": user_id}, headers=headers, timeout=10
            )
            assert response.status_code == 200
        scrapes = [requests.get(f"{server.url}/metrics", timeout=10).text for _ in range(4)]
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    requests_logged = [line for line in lines if line.get("message") == "request"]
    invocations = [line for line in requests_logged if line["path"] == "/invocations"]
    assert sorted(line["inference_id"] for line in invocations) == sorted(
        f"req-{n}" for n in range(40)
    )
    workers = {line["pid"] for line in invocations}
    assert len(workers) == 2, "the kernel gave every connection to one worker"
    loaded = [line for line in lines if line.get("message") == "model loaded"]
    assert len(loaded) == 2 and all(len(line["sha256"]) == 64 for line in loaded)
    for scrape in scrapes:  # whichever worker answers the scrape, it reports both
        assert (
            metric_total(scrape, "ncf_http_requests_total", route="/invocations", status="200")
            == 40
        )


def test_the_openapi_fuzzer_finds_nothing(model_dir, free_port, tmp_path):
    with ModelServer(model_dir, free_port()) as server:
        run = subprocess.run(
            [
                sys.executable, "-m", "schemathesis.cli", "run", f"{server.url}/openapi.json",
                "--checks", "all", "--max-examples", "60", "--seed", "7", "--no-color",
            ],
            capture_output=True, text=True, timeout=600, cwd=tmp_path,
        )  # fmt: skip
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "No issues found" in run.stdout


def test_the_naive_baseline_is_an_older_commits_server_or_a_clear_error(tmp_path):
    naive = naive_code(tmp_path / "naive")
    assert "def invocations" in (naive / "inference" / "app.py").read_text()
    assert not (naive / "inference" / "scoring.py").exists()  # before the precomputed scorer
    with pytest.raises(RuntimeError, match=r"commit deadbeef, .* full `git clone`"):
        naive_code(tmp_path / "missing", "deadbeef")


def test_the_best_throughput_is_the_fastest_step_that_holds_the_objective():
    rows = [
        {"req/s": 500.0, "p99 ms": 5.0, "failures": 0},
        {"req/s": 900.0, "p99 ms": 19.0, "failures": 0},
        {"req/s": 950.0, "p99 ms": 19.0, "failures": 3},  # failures do not count as served
        {"req/s": 990.0, "p99 ms": 40.0, "failures": 0},
    ]
    assert best_within_slo(rows, 20.0) == 900.0
    assert best_within_slo(rows[3:], 20.0) == 0.0
