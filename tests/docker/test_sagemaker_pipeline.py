"""The lesson-2 SageMaker Pipeline run for real in local mode: processing, the gate, training."""

from __future__ import annotations

import json

import pytest

from orchestration.sagemaker_local import pipeline as smp
from orchestration.sagemaker_local.session import container_root, download, upload
from preprocessing.manifest import read_split
from training.artifacts import extract_model_archive


@pytest.fixture(scope="module")
def session(services, tmp_path_factory):
    scratch = container_root(tmp_path_factory.mktemp("sagemaker-local"))
    return smp.pipeline_session(services.s3, scratch)


@pytest.fixture(scope="module")
def artifacts(services) -> str:
    return f"s3://{services.s3.bucket}/tests/pipeline"


@pytest.fixture(scope="module")
def pipeline(session, services, artifacts):
    return smp.build_pipeline(session, artifacts, tracking_uri=services.mlflow.tracking_uri)


@pytest.fixture(scope="module")
def raw_ml100k(session, ml100k_dir) -> str:
    return upload(session, ml100k_dir, "tests/pipeline/raw/ml-100k")


@pytest.fixture(scope="module")
def raw_with_three_bad_lines(session, ml100k_dir, tmp_path_factory) -> str:
    """ML-100K plus a comma-separated line, a string user id and a rating of 7."""
    folder = tmp_path_factory.mktemp("bad")
    bad = "1,2,3,881250949\nabc\t2\t3\t881250949\n1\t3\t7\t881250949\n"
    (folder / "u.data").write_text((ml100k_dir / "u.data").read_text() + bad)
    return upload(session, folder, "tests/pipeline/raw/bad")


@pytest.mark.slow
def test_pipeline_processes_checks_and_trains(session, pipeline, artifacts, raw_ml100k, tmp_path):
    run = smp.execute(pipeline, {"InputData": raw_ml100k, "Epochs": 1, "Seed": 3})
    assert run.status == "Succeeded", run.failure_reason
    assert run.statuses == {
        smp.PREPROCESS: "Succeeded",
        smp.QUALITY: "Succeeded",
        smp.TRAIN: "Succeeded",
    }
    assert run.processed.endswith(f"/{run.execution_id}/{smp.OUTPUT}")
    split = read_split(download(session, run.processed, tmp_path / "processed"))
    assert (split.n_users, split.n_items) == (943, 1682)
    assert split.manifest["params"]["seed"] == 3
    assert run.model_data.startswith(f"{artifacts}/{run.execution_id}/{smp.MODEL_FOLDER}/")
    archive = download(session, run.model_data, tmp_path / "archive") / "model.tar.gz"
    model = extract_model_archive(archive, tmp_path / "model")
    architecture = json.loads((model / "config.json").read_text())["architecture"]
    assert (architecture["model"], architecture["num_factors"]) == ("gmf", 16)


@pytest.mark.slow
def test_gate_stops_a_run_with_too_few_users_before_training(pipeline, raw_ml100k):
    run = smp.execute(pipeline, {"InputData": raw_ml100k, "MinUsers": 10_000})
    assert run.status == "Failed" and run.model_data is None
    assert run.statuses == {
        smp.PREPROCESS: "Succeeded",
        smp.QUALITY: "Succeeded",
        smp.FAIL: "Failed",
    }
    assert "943 users (at least 10000 needed)" in run.failure_reason


@pytest.mark.slow
def test_bad_raw_data_fails_the_processing_step(pipeline, raw_with_three_bad_lines):
    run = smp.execute(pipeline, {"InputData": raw_with_three_bad_lines})
    assert run.status == "Failed"
    assert run.statuses == {smp.PREPROCESS: "Failed"}
    assert smp.PREPROCESS in run.failure_reason


@pytest.mark.slow
def test_dropped_rows_stop_at_the_gate(pipeline, raw_with_three_bad_lines):
    run = smp.execute(pipeline, {"InputData": raw_with_three_bad_lines, "Policy": "drop"})
    assert run.statuses[smp.FAIL] == "Failed"
    assert "3 rejected rows (at most 0 allowed)" in run.failure_reason
