"""Runs read back from a real (SQLite) MLflow store, as the job containers log them."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from orchestration.lessons import mlflow_runs
from training.tracking import local_tracking_uri


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    client = MlflowClient(local_tracking_uri(tmp_path_factory.mktemp("mlflow")))
    experiment = client.create_experiment("lesson")
    for name, lr, start in [("slow", "0.001", 0.1), ("fast", "0.01", 0.3), ("slow", "0.002", 0.2)]:
        run = client.create_run(experiment, run_name=name)
        client.log_param(run.info.run_id, "learning_rate", lr)
        for epoch in range(3):
            client.log_metric(run.info.run_id, "val_hr_at_10", start + epoch / 10, step=epoch)
    return client


def test_the_latest_run_of_each_name(client):
    runs = mlflow_runs.find_runs(client, "lesson", ["fast", "slow"])
    assert list(runs) == ["fast", "slow"]
    assert runs["slow"].data.params["learning_rate"] == "0.002"  # the re-run, not the first


def test_missing_runs_and_experiments_are_named(client):
    with pytest.raises(LookupError, match="nope"):
        mlflow_runs.find_runs(client, "lesson", ["fast", "nope"])
    with pytest.raises(LookupError, match="no MLflow experiment"):
        mlflow_runs.find_runs(client, "absent", ["fast"])


def test_histories_line_up_on_the_epoch_axis(client):
    runs = mlflow_runs.find_runs(client, "lesson", ["slow", "fast"])
    curves = mlflow_runs.metric_histories(client, runs, ["val_hr_at_10"])
    assert list(curves.index) == [0, 1, 2]
    assert list(curves["val_hr_at_10"].columns) == ["slow", "fast"]
    assert curves["val_hr_at_10"]["fast"].tolist() == pytest.approx([0.3, 0.4, 0.5])


def test_table_holds_params_and_last_values(client):
    runs = mlflow_runs.find_runs(client, "lesson", ["slow", "fast"])
    table = mlflow_runs.runs_table(runs, ["learning_rate"], ["val_hr_at_10"])
    assert table.loc["fast", "learning_rate"] == "0.01"
    assert table.loc["slow", "val_hr_at_10"] == pytest.approx(0.4)
