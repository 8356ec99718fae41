"""Real SageMaker local-mode jobs in the course's images, against a real Docker engine.

One local S3 and MLflow server (tests/docker/conftest.py: shared with test_sagemaker_pipeline.py);
ML-100K processed once by a processing job and reused. Skipped, with the reason, where no engine
answers or the images are not built (``make images``; CI runs the offline bootstrap first).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import docker
import pytest
import requests
from mlflow import MlflowClient

from orchestration.lessons.job_outputs import fetch_model, read_metrics
from orchestration.names import IMAGES, SERVING_PORT
from orchestration.sagemaker_local.endpoints import deploy, recommend, teardown
from orchestration.sagemaker_local.jobs import run_evaluation, run_processing, run_training
from orchestration.sagemaker_local.session import (
    LocalModeError,
    container_root,
    download,
    local_session,
    upload,
)
from preprocessing.manifest import read_split

pytestmark = [pytest.mark.slow]

# Small enough for 2 cores (4 negatives, not the recipe's 16; the rest is the recipe), long
# enough that a SIGTERM lands mid-run.
GMF = {
    "model": "gmf",
    "num_factors": 16,
    "epochs": 4,
    "batch_size": 1024,
    "num_negatives": 4,
    "seed": 3,
}


@pytest.fixture(scope="module")
def session(services, tmp_path_factory):
    scratch = container_root(tmp_path_factory.mktemp("sagemaker-local"))
    return local_session(services.s3, scratch)


@pytest.fixture(scope="module")
def processed_ml100k(session, ml100k_dir) -> str:
    raw = upload(session, ml100k_dir, "tests/raw/ml-100k")
    output = f"s3://{session.default_bucket()}/tests/processed/ml-100k"
    run_processing(session, raw=raw, output=output, arguments=["--dataset", "ml-100k"])
    return output


def test_processing_job_writes_the_split_contract_to_s3(session, processed_ml100k, tmp_path):
    folder = download(session, processed_ml100k, tmp_path / "processed")
    split = read_split(folder)  # checks schema version, tables and checksums
    assert (split.n_users, split.n_items) == (943, 1682)
    assert split.manifest["source"]["dataset"] == "ml-100k"


def test_processing_job_on_synthetic_data(session, tmp_path):
    output = f"s3://{session.default_bucket()}/tests/processed/synthetic"
    arguments = ["--dataset", "synthetic", "--synthetic-shape", "ml-100k", "--seed", "5"]
    run_processing(session, raw=None, output=output, arguments=arguments)
    manifest = json.loads((download(session, output, tmp_path) / "manifest.json").read_text())
    assert manifest["source"]["dataset"] == "synthetic"
    assert manifest["counts"]["users"] > 0


def test_processing_job_reports_bad_input(session, tmp_path):
    bad = tmp_path / "raw"
    bad.mkdir()
    (bad / "u.data").write_text("1\t2\t5\n")  # three fields: no timestamp
    raw = upload(session, bad, "tests/raw/bad")
    with pytest.raises(LocalModeError, match="processing job failed"):
        run_processing(
            session,
            raw=raw,
            output=f"s3://{session.default_bucket()}/tests/processed/bad",
            arguments=["--dataset", "ml-100k"],
        )


@pytest.fixture(scope="module")
def one_instance(session, services, processed_ml100k, tmp_path_factory):
    """GMF trained by a 1-instance job that logs to the MLflow server."""
    model_data = run_training(
        session,
        channels={"train": processed_ml100k},
        hyperparameters=GMF | {"run_name": "one-instance"},
        output_path=f"s3://{session.default_bucket()}/tests/models/one",
        environment={"MLFLOW_TRACKING_URI": services.mlflow.tracking_uri},
    )
    return model_data, fetch_model(session, model_data, tmp_path_factory.mktemp("one"))


def test_training_job_produces_model_tar_gz_and_logs_to_mlflow(one_instance, services):
    model_data, folder = one_instance
    assert model_data.endswith("/output/model.tar.gz")
    assert {"model.pt", "config.json", "metrics.json", "seen_items.parquet"} <= {
        path.name for path in folder.iterdir()
    }
    client = MlflowClient(services.mlflow.tracking_uri)
    experiment = client.get_experiment_by_name("ncf")
    runs = client.search_runs([experiment.experiment_id], "attributes.run_name = 'one-instance'")
    assert len(runs) == 1
    history = client.get_metric_history(runs[0].info.run_id, "test_hr_at_10")
    assert len(history) >= 2 and all(0 < point.value <= 1 for point in history)


def test_two_instances_train_data_parallel_to_the_same_accuracy(
    session, processed_ml100k, one_instance, tmp_path
):
    model_data = run_training(
        session,
        channels={"train": processed_ml100k},
        hyperparameters=GMF,
        output_path=f"s3://{session.default_bucket()}/tests/models/two",
        instance_count=2,
    )
    two = read_metrics(fetch_model(session, model_data, tmp_path))
    one = read_metrics(one_instance[1])
    # The global batch and its loss mean are the same, so only float rounding differs.
    assert two["test_hr@10"] == pytest.approx(one["test_hr@10"], abs=0.01)
    assert two["test_ndcg@10"] == pytest.approx(one["test_ndcg@10"], abs=0.01)


def test_spot_interruption_resumes_to_the_uninterrupted_result(
    session, processed_ml100k, one_instance, tmp_path
):
    checkpoints = tmp_path / "checkpoints"
    first: dict[str, Exception] = {}

    def interrupted_job():
        try:
            _train_with_checkpoints(session, processed_ml100k, checkpoints, "spot-1")
        except LocalModeError as exc:
            first["error"] = exc

    job = threading.Thread(target=interrupted_job)
    job.start()
    container = _wait_for_checkpoint_then_sigterm(checkpoints / "selection" / "checkpoint.pt")
    job.join(timeout=300)
    assert "error" in first, "the interrupted job should have ended as failed (exit 143)"
    assert container.attrs["State"]["ExitCode"] == 143
    model_data = _train_with_checkpoints(session, processed_ml100k, checkpoints, "spot-2")
    resumed = json.loads((fetch_model(session, model_data, tmp_path) / "metrics.json").read_text())
    uninterrupted = json.loads((one_instance[1] / "metrics.json").read_text())
    for key in ("best_epoch", "test_hr@10", "test_ndcg@10", "test_map@10"):
        assert resumed[key] == pytest.approx(uninterrupted[key], abs=1e-6), key


def _train_with_checkpoints(session, train: str, checkpoints: Path, name: str) -> str:
    return run_training(
        session,
        channels={"train": train},
        hyperparameters=GMF,
        output_path=f"s3://{session.default_bucket()}/tests/models/{name}",
        checkpoint_dir=checkpoints,
    )


def _wait_for_checkpoint_then_sigterm(checkpoint: Path, timeout: float = 120.0):
    client = docker.from_env()
    deadline = time.monotonic() + timeout
    while not checkpoint.exists():
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    (container,) = client.containers.list(filters={"ancestor": IMAGES["training"]})
    container.kill(signal="SIGTERM")
    container.wait(timeout=60)
    container.reload()
    return container


def test_evaluation_job_ranks_the_trained_model_and_the_baselines(
    session, processed_ml100k, one_instance, tmp_path
):
    model_data, folder = one_instance
    output = f"s3://{session.default_bucket()}/tests/evaluation"
    run_evaluation(
        session, processed=processed_ml100k, models={"gmf/seed3": model_data}, output=output
    )
    written = download(session, output, tmp_path)
    result = json.loads((written / "evaluation.json").read_text())
    # The evaluation image draws the plots in the job (matplotlib is in it, not in training's).
    assert sorted(path.name for path in (written / "plots").iterdir()) == [
        "comparison.png",
        "metrics_at_k.png",
        "sampled_vs_full.png",
        "segments.png",
    ]
    candidates = result["candidates"]
    assert set(candidates) == {"gmf/seed3", "random", "most-popular", "ease"}
    # The job's figure is the one the training job measured on the same split.
    trained = read_metrics(folder)["test_hr@10"]
    assert candidates["gmf/seed3"]["sampled"]["hr"]["10"] == pytest.approx(trained, abs=1e-6)
    assert result["test_users"] == 943


def test_endpoint_recommends_unseen_items_and_rejects_bad_requests(session, one_instance):
    model_data, folder = one_instance
    import pyarrow.parquet as pq

    seen = pq.read_table(folder / "seen_items.parquet").to_pandas()
    items = pq.read_table(folder / "items.parquet").to_pandas().set_index("item")["item_id"]
    user_index = int(pq.read_table(folder / "users.parquet").to_pandas().iloc[0]["user"])
    user_id = int(pq.read_table(folder / "users.parquet").to_pandas().iloc[0]["user_id"])
    seen_ids = set(items[seen[seen["user"] == user_index]["item"]].tolist())

    predictor = deploy(session, model_data)
    try:
        answer = recommend(predictor, user_id, 10)
        new_user = recommend(predictor, 10**9, 3)  # cold start: the popularity fallback
        with pytest.raises(LocalModeError, match=rf"for {user_id}: k must be between 1 and"):
            recommend(predictor, user_id, 10**6)
        url = f"http://127.0.0.1:{SERVING_PORT}/invocations"
        bad = {
            "not json": requests.post(url, data="{", headers=_JSON),
            "unknown user, no fallback": requests.post(
                url, json={"user_id": 10**9, "k": 3, "fallback": False}
            ),
            "k too large": requests.post(url, json={"user_id": user_id, "k": 10**6}),
            "csv": requests.post(url, data="1,2", headers={"Content-Type": "text/csv"}),
        }
    finally:
        teardown(predictor)
    assert answer["user_id"] == user_id and answer["fallback"] is None
    assert new_user["fallback"] == "popularity" and len(new_user["items"]) == 3
    recommended = [item["item_id"] for item in answer["items"]]
    scores = [item["score"] for item in answer["items"]]
    assert len(recommended) == 10 and not set(recommended) & seen_ids
    assert scores == sorted(scores, reverse=True)
    for case, response in bad.items():
        assert 400 <= response.status_code < 500, case
        assert response.json()["error"], case
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{SERVING_PORT}/ping", timeout=2)


_JSON = {"Content-Type": "application/json"}


def test_main_job_runs_every_stage_as_a_local_mode_job(docker_ready, ml100k_dir, tmp_path):
    from orchestration.main_job.cli import main

    work, results = tmp_path / "work", tmp_path / "results"
    argv = ["--dataset", "ml-100k", "--data-dir", str(ml100k_dir), "--epochs", "1"]
    argv += ["--work-dir", str(work), "--results-dir", str(results), "--mode", "local-mode"]
    assert main(argv) == 0
    payload = json.loads((results / "results.json").read_text())
    assert payload["ran_as"].startswith("SageMaker local-mode jobs on instance type local")
    stages = {stage["name"]: stage["metrics"] for stage in payload["stages"]}
    assert 0.1 < stages["neumf-pretrained"]["hr@10"] <= 1.0
    assert len(payload["recommendations"]) == 3
    assert all(len(row["items"]) == 5 for row in payload["recommendations"])
