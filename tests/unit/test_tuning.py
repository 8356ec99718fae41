"""Optuna over training jobs, with a stand-in trainer: objective, records, failed trials."""

from __future__ import annotations

import math

import optuna
import pytest

from orchestration.lessons import tuning
from orchestration.sagemaker_local.session import LocalModeError

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _trainer(calls):
    def train(name, hyperparameters):
        calls.append((name, hyperparameters))
        closeness = -abs(math.log10(hyperparameters["learning_rate"]) + 2)  # best at 0.01
        # test figures that would pick another trial: the objective must not look at them
        return {"val_hr@10": 0.5 + closeness / 10, "test_hr@10": 0.5 - closeness / 10}

    return train


def test_each_trial_is_a_named_job_scored_on_validation(tmp_path):
    calls = []
    space = tuning.SearchSpace()
    study = tuning.tune(_trainer(calls), {"model": "gmf", "epochs": 2}, space, n_trials=4)
    assert [name for name, _ in calls] == ["trial-0", "trial-1", "trial-2", "trial-3"]
    for (_, hyperparameters), trial in zip(calls, study.trials, strict=True):
        assert hyperparameters["model"] == "gmf" and hyperparameters["epochs"] == 2
        low, high = space.learning_rate
        assert low <= hyperparameters["learning_rate"] <= high
        assert hyperparameters["num_factors"] in space.num_factors
        assert trial.value == pytest.approx(
            0.5 - abs(math.log10(hyperparameters["learning_rate"]) + 2) / 10
        )
    best = max(study.trials, key=lambda t: t.value)
    assert study.best_trial.number == best.number
    assert best.user_attrs["test_hr@10"] == min(t.user_attrs["test_hr@10"] for t in study.trials)


def test_a_failed_job_fails_its_trial_not_the_study():
    def train(name, hyperparameters):
        if name == "trial-1":
            raise LocalModeError("the local-mode training job failed")
        return {"val_hr@10": 0.3}

    study = tuning.tune(train, {}, tuning.SearchSpace(), n_trials=3)
    states = [trial.state for trial in study.trials]
    assert states.count(optuna.trial.TrialState.FAIL) == 1
    assert states.count(optuna.trial.TrialState.COMPLETE) == 2


def test_trials_table_names_columns_plainly():
    study = tuning.tune(_trainer([]), {}, tuning.SearchSpace(), n_trials=2)
    table = tuning.trials_table(study)
    assert list(table.index) == [0, 1]
    assert {"value", "learning_rate", "num_factors", "test_hr@10", "state"} <= set(table.columns)


def test_trials_table_shows_numbers_at_four_significant_digits():
    study = tuning.tune(_trainer([]), {}, tuning.SearchSpace(), n_trials=2)
    table = tuning.trials_table(study)
    for value in table["learning_rate"]:
        assert value == float(f"{value:.4g}")
