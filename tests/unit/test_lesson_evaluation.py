"""What lesson 06 builds on the evaluation stage: its candidates (reused from the registry or
trained), the offline A/B comparison of two candidates, and recommendations by title."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from evaluation import stage
from orchestration.lessons import candidates as candidates_module
from orchestration.lessons import evaluation_report
from orchestration.lessons.ab_test import paired_comparison
from orchestration.lessons.candidates import CandidateBuilder, registered_on
from orchestration.lessons.recommendations import held_out, side_by_side
from orchestration.lessons.registry import register
from orchestration.lessons.training_jobs import TrainingJob
from training.tracking import local_tracking_uri


def _per_user(hits: dict[str, np.ndarray]) -> pd.DataFrame:
    frames = [
        pd.DataFrame(
            {"candidate": name, "user": np.arange(len(h)), "hit@10": h, "ndcg@10": h * 0.5}
        )
        for name, h in hits.items()
    ]
    return pd.concat(frames, ignore_index=True)


def test_a_real_difference_is_called_and_noise_is_not():
    rng = np.random.default_rng(0)
    a = rng.random(2000) < 0.4
    better = a | (rng.random(2000) < 0.2)  # B hits every user A hits, and more
    noise = a.copy()  # A with 100 hits turned into misses and 100 misses into hits
    noise[rng.choice(np.flatnonzero(a), 100, replace=False)] = False
    noise[rng.choice(np.flatnonzero(~a), 100, replace=False)] = True
    frame = _per_user({"a": a, "better": better, "noise": noise})
    real = paired_comparison(frame, "a", "better")
    assert real["verdict"] == "better better" and real["McNemar p"] < 1e-6
    assert real["ΔHR@10"] == pytest.approx(better.mean() - a.mean())
    low = float(real["95% interval"].strip("[]").split(",")[0])
    assert low > 0
    same = paired_comparison(frame, "a", "noise")
    assert same["verdict"] == "no detectable difference" and same["McNemar p"] > 0.05
    assert 0 < same["MDE (80% power)"] < 0.1


def test_a_comparison_names_a_missing_candidate_and_refuses_other_users():
    frame = _per_user({"a": np.array([True, False]), "b": np.array([False, False])})
    with pytest.raises(KeyError, match=r"'c'.*it has a, b"):
        paired_comparison(frame, "a", "c")
    shifted = frame.copy()
    shifted.loc[shifted.candidate == "b", "user"] += 5
    with pytest.raises(ValueError, match="same users"):
        paired_comparison(shifted, "a", "b")


def test_recommendations_are_unseen_movies_side_by_side(model_dir, processed_dir, split):
    user_ids = split.users["user_id"].head(2).tolist()
    table = side_by_side({"one": model_dir, "again": model_dir}, processed_dir, user_ids, k=3)
    assert list(table.index.get_level_values("user")) == [u for u in user_ids for _ in range(3)]
    assert (table["one"] == table["again"]).all()  # the same model ranks the same way
    assert table["one"].str.len().le(38).all()


def test_held_out_ranks_are_the_stage_s_full_catalogue_ranks(
    model_dir, processed_dir, split, tmp_path
):
    stage.evaluate(processed_dir, {"gmf/seed0": model_dir}, tmp_path, baselines=["random"])
    per_user = pd.read_parquet(tmp_path / stage.PER_USER_FILE)
    user_id = int(split.users["user_id"].iloc[3])
    table = held_out(per_user, processed_dir, [user_id], ["gmf/seed0", "random"])
    user = int(split.users.set_index("user_id").at[user_id, "user"])
    mine = per_user[(per_user.user == user) & (per_user.candidate == "gmf/seed0")]
    assert table.at[user_id, "gmf/seed0"] == int(mine["full_rank"].iloc[0]) + 1


class FakeJobs:
    """Stands in for TrainingJobs: records each job and the pre-trained models it was given."""

    def __init__(self, work_dir: Path) -> None:
        self.session, self.work_dir, self.ran = None, work_dir, []

    def run(self, name, hyperparameters, *, pretrained=None):
        self.ran.append((name, hyperparameters, sorted((pretrained or {}).items())))
        metrics = {"val_hr@10": 0.7, "test_hr@10": 0.6, "test_ndcg@10": 0.3, "best_epoch": 3}
        return TrainingJob(name, f"s3://b/{name}/model.tar.gz", Path(name), metrics, 2.0, None)


@pytest.fixture
def client(tmp_path):
    return MlflowClient(local_tracking_uri(tmp_path / "mlflow"))


def test_seed_zero_is_reused_when_registered_on_this_split_and_still_stored(
    client, tmp_path, monkeypatch
):
    experiment = client.create_experiment("lesson-06")
    for name in ("gmf-seed0", "mlp-seed0", "neumf-pre-seed0"):
        client.create_run(experiment, run_name=name)
    old = client.create_run(client.create_experiment("lesson-05"), run_name="course-gmf")
    metrics = {"val_hr@10": 0.7, "test_hr@10": 0.6, "test_ndcg@10": 0.3}
    stored = TrainingJob("course-gmf", "s3://b/gmf.tar.gz", None, metrics, 1.0, None)
    stale = TrainingJob("course-mlp", "s3://b/gone.tar.gz", None, metrics, 1.0, None)
    register(client, "gmf", client.get_run(old.info.run_id), stored, "this-split")
    register(client, "mlp", client.get_run(old.info.run_id), stale, "this-split")  # not stored
    register(client, "neumf", client.get_run(old.info.run_id), stored, "another-split")
    assert set(registered_on(client, "this-split")) == {"gmf", "mlp"}

    monkeypatch.setattr(
        candidates_module, "in_store", lambda session, uri: uri == "s3://b/gmf.tar.gz"
    )
    reused = []

    def reuse(self, name, version):
        reused.append((name, version.name))
        job = TrainingJob(name, version.tags["sagemaker_model_data"], None, {}, 0.0, None)
        return candidates_module.Candidate(name.replace("-seed", "/seed"), job, "registry", version)

    monkeypatch.setattr(CandidateBuilder, "reuse", reuse)
    jobs = FakeJobs(tmp_path)
    built = CandidateBuilder(jobs, client, "lesson-06", "this-split", {"epochs": 2}).build([0, 1])

    assert reused == [("gmf-seed0", "ncf-gmf")]
    assert list(built) == [
        f"{f}/seed{s}" for s in (0, 1) for f in ("gmf", "mlp", "neumf", "neumf-pre")
    ]
    trained = {name: (hp, pre) for name, hp, pre in jobs.ran}
    assert "gmf-seed0" not in trained and trained["mlp-seed0"][0] == {
        "model": "mlp",
        "seed": 0,
        "epochs": 2,
    }
    # Pre-trained NeuMF starts from its own seed's halves; NeuMF from scratch from nothing.
    halves = trained["neumf-pre-seed1"][1]
    assert [(half, job.name) for half, job in halves] == [
        ("gmf", "gmf-seed1"),
        ("mlp", "mlp-seed1"),
    ]
    assert trained["neumf-pre-seed0"][1][0][1].model_data == "s3://b/gmf.tar.gz"
    assert trained["neumf-seed1"][1] == []
    # The seed-0 models trained here are registered, so the decision always has all three.
    assert built["mlp/seed0"].version.name == "ncf-mlp"
    assert built["neumf-pre/seed0"].version.name == "ncf-neumf"
    assert built["neumf/seed0"].version is None and built["gmf/seed1"].version is None


class FakeStore:
    """list_s3_files and download_data of a LocalSession over a few keys."""

    def __init__(self, keys: list[str]) -> None:
        self.keys, self.asked = keys, []

    def list_s3_files(self, bucket, key_prefix):
        return [key for key in self.keys if key.startswith(key_prefix)]

    def download_data(self, path, bucket, key_prefix):
        self.asked.append(key_prefix)


def test_a_folder_download_does_not_pull_its_siblings_and_a_file_stays_a_file(tmp_path):
    from orchestration.sagemaker_local.session import download

    store = FakeStore(["run/evaluation/evaluation.json", "run/evaluation-refined/evaluation.json"])
    download(store, "s3://b/run/evaluation", tmp_path)
    download(store, "s3://b/run/evaluation/evaluation.json", tmp_path)
    assert store.asked == ["run/evaluation/", "run/evaluation/evaluation.json"]


def _summary(hr: float, recall: float) -> dict:
    return {
        "sampled": {"hr": {"10": hr}, "ndcg": {"10": hr / 2}, "mrr": hr / 3},
        "full_catalogue": {"recall": {"10": recall}},
        "coverage@10": 0.5,
        "popularity_percentile@10": 0.9,
    }


def test_report_tables_group_seeds_order_families_and_place_both_views():
    result = {
        "top_n": 10,
        "candidates": {
            "gmf/seed0": _summary(0.60, 0.12),
            "gmf/seed1": _summary(0.62, 0.10),
            "ease": _summary(0.65, 0.09),
            "random": _summary(0.10, 0.01),
        },
    }
    figures = evaluation_report.headline(result)
    assert figures.at["gmf/seed1", "MRR"] == pytest.approx(0.62 / 3)
    families = evaluation_report.by_family(result)
    assert list(families.index) == ["ease", "gmf", "random"]
    assert families.at["gmf", "seeds"] == 2
    assert families.at["gmf", "HR@10"] == f"0.6100 ± {np.std([0.60, 0.62], ddof=1):.4f}"
    assert families.at["ease", "HR@10"] == "0.6500 ± 0.0000"
    assert evaluation_report.best_model_family(result) == "gmf"  # ease has no seeds
    views = evaluation_report.views(result)
    assert list(views.index) == ["ease", "gmf/seed1", "gmf/seed0", "random"]
    assert list(views["full rank"]) == [3, 2, 1, 4]
