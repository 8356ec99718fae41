"""The main job end to end on real MovieLens-100K, in plain processes (one epoch a model)."""

import json

from mlflow import MlflowClient

from orchestration.main_job.cli import main
from training.tracking import local_tracking_uri


def test_main_job_on_movielens_100k(ml100k_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    work, results = tmp_path / "work", tmp_path / "results"
    argv = ["--dataset", "ml-100k", "--data-dir", str(ml100k_dir), "--epochs", "1"]
    argv += ["--work-dir", str(work), "--results-dir", str(results), "--gpu", "false"]
    argv += ["--mode", "processes"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "| stage | HR@10 | NDCG@10 | MAP@10 |" in out
    assert len([line for line in out.splitlines() if line.startswith("[")]) == 6  # one a stage
    assert "epoch" not in out  # the stages' own output is in their logs
    assert "wrote " in (work / "logs" / "prepare-data.log").read_text()
    assert "epoch 1 " in (work / "logs" / "train-gmf.log").read_text()
    payload = json.loads((results / "results.json").read_text())
    stages = {stage["name"]: stage for stage in payload["stages"]}
    assert list(stages) == ["prepare data", "gmf", "mlp", "neumf-pretrained"]
    for name in ("gmf", "mlp", "neumf-pretrained"):
        metrics = stages[name]["metrics"]
        assert 0.1 < metrics["hr@10"] <= 1.0  # better than a random ranking of 100 candidates
        assert metrics["ndcg@10"] <= metrics["hr@10"]
        assert (work / "models" / name / "model.pt").is_file()
    assert payload["ran_as"] == "plain processes"
    recommendations = payload["recommendations"]
    assert [row["user_id"] for row in recommendations] == [1, 2, 3]
    for row in recommendations:
        scores = [item["score"] for item in row["items"]]
        assert len(scores) == 5 and scores == sorted(scores, reverse=True)
        assert all(item["title"] for item in row["items"])  # ML-100K's u.item has every title
    first = recommendations[0]["items"][0]
    shown = f"| 1 | 1 | {first['title']} ({first['item_id']}) | {first['score']:.2f} |"
    assert shown in (results / "results.md").read_text()
    client = MlflowClient(local_tracking_uri(work / "mlflow"))
    runs = client.search_runs([client.get_experiment_by_name("ncf").experiment_id])
    assert {run.info.run_name for run in runs} == {"gmf", "mlp", "neumf-pretrained"}
