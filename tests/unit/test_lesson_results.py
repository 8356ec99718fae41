"""What lesson 05 hands to lessons 06-08 (registered model versions) and how every lesson shows a
model beside the baselines."""

from __future__ import annotations

import json
import math

import pytest
from mlflow import MlflowClient

from orchestration.lessons.compare import against_baselines
from orchestration.lessons.registry import (
    crown,
    decide,
    holder,
    log_evaluation,
    manifest_sha256,
    register,
    versions_table,
)
from orchestration.lessons.training_jobs import TrainingJob
from training.tracking import local_tracking_uri


def test_models_then_baselines_at_four_decimals_and_missing_figures_left_empty():
    table = against_baselines(
        {"gmf": {"val_hr@10": 0.712345, "test_hr@10": 0.65, "test_ndcg@10": 0.37}},
        {"most-popular": {"val_hr@10": 0.41251, "test_hr@10": 0.30965, "test_ndcg@10": 0.16327}},
    )
    assert list(table.index) == ["gmf", "most-popular (baseline)"]
    assert table.loc["gmf", "val_hr@10"] == 0.7123
    refit = against_baselines({"refit": {"test_hr@10": 0.6}}, {})
    assert math.isnan(refit.loc["refit", "val_hr@10"])


@pytest.fixture
def client(tmp_path):
    return MlflowClient(local_tracking_uri(tmp_path / "mlflow"))


def _job(name: str, hr: float) -> TrainingJob:
    metrics = {"val_hr@10": hr + 0.1, "test_hr@10": hr, "test_ndcg@10": hr / 2}
    return TrainingJob(name, f"s3://b/{name}/model.tar.gz", None, metrics, 1.0, None)


def test_each_job_is_a_new_version_of_its_architectures_model(client, tmp_path):
    manifest = {"schema_version": "1.1", "files": {"train": {"sha256": "ab"}}, "created_at": "1"}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    data = manifest_sha256(tmp_path)
    (tmp_path / "again").mkdir()
    (tmp_path / "again" / "manifest.json").write_text(json.dumps(manifest | {"created_at": "2"}))
    assert manifest_sha256(tmp_path / "again") == data  # processed again: the same data
    manifest["files"]["train"]["sha256"] = "cd"
    (tmp_path / "again" / "manifest.json").write_text(json.dumps(manifest))
    assert manifest_sha256(tmp_path / "again") != data
    experiment = client.create_experiment("lesson-05")
    for name, hr in [("course-gmf", 0.6512), ("course-gmf-again", 0.6498)]:
        run = client.create_run(experiment, run_name=name)
        version = register(client, "gmf", client.get_run(run.info.run_id), _job(name, hr), data)
    assert version.name == "ncf-gmf" and int(version.version) == 2
    assert version.source.endswith("/model") and version.run_id == run.info.run_id
    assert version.tags["data_manifest_sha256"] == data
    assert version.tags["sagemaker_model_data"] == "s3://b/course-gmf-again/model.tar.gz"
    assert version.tags["test_hr_at_10"] == "0.6498"  # MLflow keys allow no "@"
    table = versions_table(client, ["ncf-gmf"])
    assert list(table["version"]) == [2, 1]
    assert list(table["test_hr@10"]) == ["0.6498", "0.6512"]
    with pytest.raises(KeyError):
        register(client, "bpr", run, _job("x", 0.1), data)


def test_champion_and_challenger_each_name_one_version_across_the_models(client):
    experiment = client.create_experiment("lesson-05")
    versions = {}
    for model, hr in [("gmf", 0.65), ("mlp", 0.63), ("neumf", 0.66)]:
        run = client.get_run(client.create_run(experiment, run_name=model).info.run_id)
        versions[model] = register(client, model, run, _job(model, hr), "sha")
    crown(client, [versions["gmf"], versions["mlp"]])
    crown(client, [versions["neumf"], versions["gmf"]])  # decided again: the old ones move
    assert holder(client, "champion").name == "ncf-neumf"
    assert holder(client, "challenger").name == "ncf-gmf"
    assert client.get_registered_model("ncf-mlp").aliases == {}
    assert holder(client, "nobody") is None
    with pytest.raises(ValueError, match="needs 2 ranked versions"):
        crown(client, [versions["gmf"]])
    log_evaluation(client, versions["neumf"], {"hr@10": 0.6564, "full_recall@10": 0.125})
    logged = client.get_run(versions["neumf"].run_id).data.metrics
    assert logged == {"eval_hr_at_10": 0.6564, "eval_full_recall_at_10": 0.125}


def test_a_decision_logs_each_version_s_figures_and_crowns_the_best_two(client):
    import pandas as pd

    experiment = client.create_experiment("lesson-06")
    registered = {}
    for name, model in [("gmf/seed0", "gmf"), ("mlp/seed0", "mlp"), ("neumf-pre/seed0", "neumf")]:
        run = client.get_run(client.create_run(experiment, run_name=name).info.run_id)
        registered[name] = register(client, model, run, _job(name, 0.6), "sha")
    figures = pd.DataFrame(
        {"HR@10": [0.65, 0.63, 0.66, 0.60], "NDCG@10": [0.37, 0.36, 0.38, 0.33]}
        | {"full recall@10": [0.12, 0.11, 0.13, 0.09], "coverage@10": [0.4, 0.5, 0.45, 0.3]},
        index=["gmf/seed0", "mlp/seed0", "neumf-pre/seed0", "ease"],
    )
    assert decide(client, registered, figures) == ["neumf-pre/seed0", "gmf/seed0", "mlp/seed0"]
    assert holder(client, "champion").name == "ncf-neumf"
    assert holder(client, "challenger").name == "ncf-gmf"
    logged = client.get_run(registered["mlp/seed0"].run_id).data.metrics
    assert logged == {
        "eval_hr_at_10": 0.63,
        "eval_ndcg_at_10": 0.36,
        "eval_full_recall_at_10": 0.11,
        "eval_coverage_at_10": 0.5,
    }
