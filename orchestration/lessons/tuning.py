"""Hyperparameter search with Optuna, every trial a real local-mode training job.

SageMaker's ``HyperparameterTuner`` has no local mode (it is a managed service that starts cloud
jobs), so on one machine Optuna plays the tuner: it proposes hyperparameters, a job trains with
them, and the job's own ``metrics.json`` (inside ``model.tar.gz``) says how good they were. The
objective is the **validation** HR@10 from model selection; the test figures are recorded on each
trial but never optimised, or the test set would stop being a fair final check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
import pandas as pd

from orchestration.sagemaker_local.session import LocalModeError

OBJECTIVE = "val_hr@10"
RECORDED = ("test_hr@10", "test_ndcg@10")  # kept on each trial for the report, not optimised

# (run name, hyperparameters) -> the job's metrics.json, e.g. TrainingJobs.train_for_metrics
Trainer = Callable[[str, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class SearchSpace:
    """Learning rate on a log scale (its effect is multiplicative), embedding sizes as choices."""

    learning_rate: tuple[float, float] = (5e-4, 2e-2)
    num_factors: tuple[int, ...] = (8, 16, 32)

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        return {
            "learning_rate": trial.suggest_float("learning_rate", *self.learning_rate, log=True),
            "num_factors": trial.suggest_categorical("num_factors", list(self.num_factors)),
        }


def objective(
    train: Trainer, base: dict[str, Any], space: SearchSpace
) -> Callable[[optuna.Trial], float]:
    """One trial: a job named ``trial-<n>`` with ``base`` plus the trial's picks."""

    def run(trial: optuna.Trial) -> float:
        metrics = train(f"trial-{trial.number}", base | space.suggest(trial))
        for key in RECORDED:
            trial.set_user_attr(key, metrics.get(key))
        return float(metrics[OBJECTIVE])

    return run


def tune(
    train: Trainer, base: dict[str, Any], space: SearchSpace, n_trials: int, seed: int = 0
) -> optuna.Study:
    """Maximise validation HR@10 over ``n_trials`` jobs; a failed job is a failed trial."""
    study = optuna.create_study(
        study_name="ncf-local-mode",
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
    )
    study.optimize(objective(train, base, space), n_trials=n_trials, catch=(LocalModeError,))
    return study


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row a trial: its picks, the objective, the recorded test figures and its state, the
    numbers at 4 significant decimals (a learning rate of 0.0003786 stays readable)."""
    frame = study.trials_dataframe(attrs=("number", "value", "params", "user_attrs", "state"))
    frame = frame.rename(columns=lambda name: name.removeprefix("params_"))
    frame = frame.rename(columns=lambda name: name.removeprefix("user_attrs_")).set_index("number")
    numbers = frame.select_dtypes("number").columns
    frame[numbers] = frame[numbers].map(lambda value: float(f"{value:.4g}"))
    return frame
