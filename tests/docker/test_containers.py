"""The training image under a plain ``docker run``: the /opt/ml tree SageMaker would write."""

from __future__ import annotations

import pytest

from orchestration.infra import containers


@pytest.mark.slow
def test_training_image_runs_by_hand_and_reports_a_bad_hyperparameter(
    docker_ready, processed_dir, tmp_path
):
    good = containers.write_opt_ml(
        tmp_path / "good", {"model": "gmf", "epochs": 1, "num_factors": 8}, ["train"]
    )
    run = containers.run_training_container(good, {"train": processed_dir})
    assert run.exit_code == 0, run.logs
    assert {"model.pt", "config.json", "metrics.json", "seen_items.parquet"} <= {
        p.name for p in good.model.iterdir()
    }
    bad = containers.write_opt_ml(tmp_path / "bad", {"model": "gmf", "epochs": 0}, ["train"])
    failed = containers.run_training_container(bad, {"train": processed_dir})
    assert failed.exit_code == 2
    assert failed.failure.startswith("invalid hyperparameter: epochs must be >= 1")
