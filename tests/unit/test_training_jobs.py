"""One name per job, everywhere: MLflow run, job name, store prefix, log file, model folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestration.lessons import training_jobs
from orchestration.lessons.training_jobs import TrainingJobs


@pytest.fixture
def launched(monkeypatch):
    calls = []

    def run_training(session, **kwargs):
        calls.append(kwargs)
        print("container says hello")
        return f"{kwargs['output_path']}/{kwargs['job_name']}/output/model.tar.gz"

    def fetch_model(session, model_data, target):
        target.mkdir(parents=True)
        return target

    monkeypatch.setattr(training_jobs, "run_training", run_training)
    monkeypatch.setattr(training_jobs, "fetch_model", fetch_model)
    monkeypatch.setattr(training_jobs, "read_metrics", lambda folder: {"val_hr@10": 0.4})
    return calls


def _jobs(tmp_path: Path) -> TrainingJobs:
    return TrainingJobs(
        session=None,
        train_uri="s3://b/processed",
        output_prefix="s3://b/lesson",
        work_dir=tmp_path,
        environment={"MLFLOW_TRACKING_URI": "http://mlflow"},
    )


def test_a_job_is_named_once_and_its_log_is_kept(tmp_path, launched, capsys):
    job = _jobs(tmp_path).run("base", {"model": "gmf"}, instance_count=2)
    (call,) = launched
    assert call["hyperparameters"] == {"model": "gmf", "run_name": "base"}
    assert call["job_name"] == "ncf-base" and call["instance_count"] == 2
    assert call["output_path"] == "s3://b/lesson/base"
    assert call["channels"] == {"train": "s3://b/processed"}
    assert call["environment"] == {"MLFLOW_TRACKING_URI": "http://mlflow"}
    assert job.folder == tmp_path / "models" / "base"
    assert job.metrics == {"val_hr@10": 0.4} and job.seconds >= 0
    assert job.log == _jobs(tmp_path).log_file("base")
    assert job.log.read_text() == "container says hello\n"
    assert capsys.readouterr().out == ""


def test_a_live_job_prints_its_log(tmp_path, launched, capsys):
    job = _jobs(tmp_path).run("live", {}, live=True, checkpoint_dir=tmp_path / "ck")
    assert job.log is None and "container says hello" in capsys.readouterr().out
    assert launched[0]["checkpoint_dir"] == tmp_path / "ck"


def test_metrics_is_a_tuner_trainer(tmp_path, launched):
    assert _jobs(tmp_path).train_for_metrics("trial-0", {"learning_rate": 0.01}) == {
        "val_hr@10": 0.4
    }
    assert launched[0]["hyperparameters"]["run_name"] == "trial-0"


def test_a_job_starts_from_earlier_jobs_models_given_as_channels(tmp_path, launched):
    jobs = _jobs(tmp_path)
    gmf, mlp = jobs.run("gmf", {"model": "gmf"}), jobs.run("mlp", {"model": "mlp"})
    jobs.run("neumf", {"model": "neumf"}, pretrained={"gmf": gmf, "mlp": mlp})
    assert launched[2]["channels"] == {
        "train": "s3://b/processed",
        "gmf": "s3://b/lesson/gmf/ncf-gmf/output/model.tar.gz",
        "mlp": "s3://b/lesson/mlp/ncf-mlp/output/model.tar.gz",
    }
