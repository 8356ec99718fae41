"""MLflow tracking into a local store, and training untracked where there is none."""

from mlflow import MlflowClient

from training.tracking import Tracker, local_tracking_uri


def test_local_store_gets_params_metrics_per_epoch_and_artifacts(tmp_path):
    tracker = Tracker(local_tracking_uri(tmp_path / "store"), "exp", "run")
    tracker.start({"num_factors": 8, "layers": [16, 8]})
    for epoch in (1, 2):
        tracker.log_metrics({"val_hr@10": 0.1 * epoch}, step=epoch)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    tracker.log_artifacts(tmp_path / "model")
    tracker.end()
    assert tracker.enabled
    client = MlflowClient(tracking_uri=tracker.tracking_uri)
    run = client.get_run(tracker.run_id)
    assert run.data.params == {"num_factors": "8", "layers": "[16, 8]"}
    history = client.get_metric_history(tracker.run_id, "val_hr_at_10")
    assert [(m.step, round(m.value, 3)) for m in history] == [(1, 0.1), (2, 0.2)]
    assert [a.path for a in client.list_artifacts(tracker.run_id, "model")] == ["model/config.json"]
    assert run.info.status == "FINISHED"


def test_without_a_server_or_a_local_store_training_is_not_tracked(tmp_path, monkeypatch, caplog):
    from training import tracking

    assert tracking.default_tracking_uri(tmp_path).startswith("sqlite:///")
    real_find_spec = tracking.importlib.util.find_spec
    monkeypatch.setattr(
        tracking.importlib.util,
        "find_spec",
        lambda name: None if name == "sqlalchemy" else real_find_spec(name),
    )
    with caplog.at_level("INFO", logger="training.tracking"):
        assert tracking.default_tracking_uri(tmp_path / "image") is None
    assert "MLFLOW_TRACKING_URI" in caplog.text
    assert not (tmp_path / "image").exists()


def test_a_local_store_that_cannot_be_made_turns_tracking_off(tmp_path, caplog):
    """A read-only working directory, say: training goes on untracked."""
    from training import tracking

    (tmp_path / "a-file").write_text("")
    with caplog.at_level("WARNING", logger="training.tracking"):
        assert tracking.default_tracking_uri(tmp_path / "a-file" / "mlruns") is None
    assert "cannot keep a local store" in caplog.text and "not tracking" in caplog.text
