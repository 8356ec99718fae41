"""Training runs read back from MLflow to compare them: what the job containers logged.

Every job logs its parameters once and its metrics once per epoch (``step`` = epoch, ``@`` written
``_at_``), so the curves of several jobs line up on the epoch axis.
"""

from __future__ import annotations

import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Run


def find_runs(client: MlflowClient, experiment: str, run_names: list[str]) -> dict[str, Run]:
    """The latest run of each name, in the order asked; a re-run job replaces its older run."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise LookupError(f"no MLflow experiment {experiment!r} at {client.tracking_uri}")
    latest: dict[str, Run] = {}
    for run in client.search_runs(
        [found.experiment_id], order_by=["attributes.start_time DESC"], max_results=1000
    ):
        latest.setdefault(run.info.run_name, run)
    missing = [name for name in run_names if name not in latest]
    if missing:
        raise LookupError(f"no run named {missing} in {experiment!r}; it has {sorted(latest)}")
    return {name: latest[name] for name in run_names}


def metric_histories(
    client: MlflowClient, runs: dict[str, Run], metrics: list[str]
) -> pd.DataFrame:
    """Index: epoch; columns: (metric, run name); ``frame[metric].plot()`` draws one curve a run."""
    rows = [
        {"epoch": point.step, "metric": metric, "run": name, "value": point.value}
        for name, run in runs.items()
        for metric in metrics
        for point in client.get_metric_history(run.info.run_id, metric)
    ]
    frame = pd.DataFrame(rows, columns=["epoch", "metric", "run", "value"])
    wide = frame.pivot_table(index="epoch", columns=["metric", "run"], values="value")
    return wide.reindex(columns=pd.MultiIndex.from_product([metrics, list(runs)]))


def runs_table(runs: dict[str, Run], params: list[str], metrics: list[str]) -> pd.DataFrame:
    """One row a run: the chosen parameters as logged and each metric's last value, at 4
    decimals."""
    return pd.DataFrame(
        {
            name: {key: run.data.params.get(key) for key in params}
            | {key: round(run.data.metrics[key], 4) for key in metrics if key in run.data.metrics}
            for name, run in runs.items()
        }
    ).T
