"""The evaluation stage (``python -m evaluation``): one code path for models and baselines, the
figures it writes, and the inputs it refuses before writing anything."""

import json
import shutil
import tarfile

import pyarrow.parquet as pq
import pytest
import torch

import evaluation.__main__ as cli
from evaluation import stage
from preprocessing.manifest import write_split
from preprocessing.split import leave_one_out
from training.evaluate import evaluate_test


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, processed_dir, model_dir):
    output = tmp_path_factory.mktemp("evaluation")
    result = stage.evaluate(processed_dir, {"gmf/seed0": model_dir}, output, k_max=20)
    return result, output


def test_figures_come_from_the_same_ranks_as_training_reports(evaluated, model_dir, data):
    from training.artifacts import load_model

    result, _ = evaluated
    model, _ = load_model(model_dir)
    reference = evaluate_test(model.eval(), data, 10)
    figures = result["candidates"]["gmf/seed0"]
    assert figures["sampled"]["hr"]["10"] == pytest.approx(reference["hr@10"])
    assert figures["sampled"]["ndcg"]["10"] == pytest.approx(reference["ndcg@10"])
    assert figures["full_catalogue"]["recall"]["10"] == pytest.approx(reference["full_recall@10"])
    assert figures["full_catalogue"]["ndcg"]["10"] == pytest.approx(reference["full_ndcg@10"])


def test_metrics_grow_with_k_and_hr_at_1_is_ndcg_at_1(evaluated):
    for figures in evaluated[0]["candidates"].values():
        hr = [figures["sampled"]["hr"][str(k)] for k in range(1, 21)]
        assert hr == sorted(hr) and len(hr) == 20
        assert figures["sampled"]["ndcg"]["1"] == pytest.approx(hr[0])
        assert figures["sampled"]["map"]["1"] == pytest.approx(hr[0])


def test_baselines_sit_in_the_same_table_and_order_as_expected(evaluated):
    candidates = evaluated[0]["candidates"]
    assert set(candidates) == {"gmf/seed0", *stage.BASELINES}
    hr10 = {name: figures["sampled"]["hr"]["10"] for name, figures in candidates.items()}
    assert hr10["random"] < 0.2  # 10 of 100 candidates in expectation
    assert hr10["ease"] > hr10["most-popular"] > hr10["random"]
    # Most-popular recommends the same few items to everyone: little coverage, top popularity.
    assert candidates["most-popular"]["coverage@10"] < candidates["random"]["coverage@10"]
    assert candidates["most-popular"]["popularity_percentile@10"] > 0.95


def test_segments_partition_the_test_users(evaluated, data):
    for figures in evaluated[0]["candidates"].values():
        for segmentation in ("user_history", "item_popularity"):
            segments = figures["segments"][segmentation]
            assert sum(segment["users"] for segment in segments.values()) == len(data.test.users)
            weighted = sum(s["users"] * s["hr@10"] for s in segments.values()) / len(
                data.test.users
            )
            assert weighted == pytest.approx(figures["sampled"]["hr"]["10"])


def test_per_user_table_has_a_row_per_candidate_and_user(evaluated, data):
    result, output = evaluated
    table = pq.read_table(output / stage.PER_USER_FILE)
    assert table.schema.equals(stage.PER_USER_SCHEMA)
    frame = table.to_pandas()
    assert len(frame) == len(result["candidates"]) * len(data.test.users)
    mine = frame[frame.candidate == "gmf/seed0"]
    assert mine["hit@10"].mean() == pytest.approx(
        result["candidates"]["gmf/seed0"]["sampled"]["hr"]["10"]
    )
    assert ((mine["rank"] < 10) == mine["hit@10"]).all()
    written = json.loads((output / stage.EVALUATION_FILE).read_text())
    assert written["schema_version"] == stage.SCHEMA_VERSION
    assert written["test_users"] == len(data.test.users)


def test_seeds_of_a_group_give_mean_and_standard_deviation(tmp_path, processed_dir, model_dir):
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in model_dir.iterdir():
            tar.add(path, arcname=path.name)
    models = {"gmf/a": model_dir, "gmf/b": archive}  # a folder and the same model archived
    result = stage.evaluate(processed_dir, models, tmp_path / "out", baselines=[])
    group = result["groups"]["gmf"]
    hr = result["candidates"]["gmf/a"]["sampled"]["hr"]["10"]
    assert group["members"] == 2
    assert group["hr@10"] == {"mean": pytest.approx(hr), "std": pytest.approx(0.0)}


def test_a_model_of_another_split_is_refused_and_nothing_is_written(
    tmp_path, small_interactions, model_dir
):
    other = tmp_path / "other"
    write_split(leave_one_out(small_interactions, seed=2), other, extra={"params": {"seed": 2}})
    with pytest.raises(stage.EvaluationError, match="trained on another split"):
        stage.evaluate(other, {"gmf": model_dir}, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_same_data_processed_again_is_the_same_split(tmp_path, small_interactions, model_dir):
    """Processing is seeded: a second run writes the same tables under a new manifest (its time
    differs), and the models trained on the first are still evaluated on it."""
    again = tmp_path / "again"
    params = {"seed": 1, "note": "processed again"}  # the manifest differs, the tables do not
    write_split(leave_one_out(small_interactions, seed=1), again, extra={"params": params})
    result = stage.evaluate(again, {"gmf": model_dir}, tmp_path / "out", baselines=[])
    assert "gmf" in result["candidates"]


def test_a_model_without_an_identity_is_checked_by_the_manifest_checksum(model_dir, data):
    config = json.loads((model_dir / "config.json").read_text())
    assert config["data"]["identity"] == data.identity
    legacy = {"data": {"manifest_sha256": data.manifest_sha256}}
    assert data.trained(legacy)
    assert not data.trained({"data": {"manifest_sha256": "another manifest"}})
    assert not data.trained({"data": {"identity": "another split"}})


@pytest.mark.parametrize("beyond", [False, True])
def test_k_outside_the_candidates_is_refused(tmp_path, processed_dir, data, beyond):
    candidates = 1 + data.test.negatives.shape[1]
    with pytest.raises(stage.EvaluationError, match=f"outside 1..{candidates}: "):
        stage.evaluate(processed_dir, {}, tmp_path / "out", k_max=candidates + 1 if beyond else 0)


def test_missing_and_corrupt_models_name_the_model(tmp_path, processed_dir, model_dir):
    with pytest.raises(stage.EvaluationError, match=r"model 'gone'.*does not exist"):
        stage.evaluate(processed_dir, {"gone": tmp_path / "nowhere"}, tmp_path / "out")
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    (broken / "model.pt").write_bytes(b"not a state dict")
    with pytest.raises(stage.EvaluationError, match=r"model 'broken'.*not a readable model"):
        stage.evaluate(processed_dir, {"broken": broken}, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unknown_baseline_and_a_model_named_like_one_are_refused(
    tmp_path, processed_dir, model_dir
):
    with pytest.raises(stage.EvaluationError, match="unknown baseline"):
        stage.evaluate(processed_dir, {}, tmp_path / "out", baselines=["oracle"])
    with pytest.raises(stage.EvaluationError, match="are baseline names"):
        stage.evaluate(processed_dir, {"ease": model_dir}, tmp_path / "out")


def test_a_split_without_test_rows_is_refused(monkeypatch, tmp_path, processed_dir, data):
    empty = data.test.__class__(*(tensor[:0] for tensor in vars(data.test).values()))
    monkeypatch.setattr(
        stage.TrainingData,
        "load",
        classmethod(lambda cls, *a: data.__class__(**vars(data) | {"test": empty})),
    )
    with pytest.raises(stage.EvaluationError, match="no test rows"):
        stage.evaluate(processed_dir, {}, tmp_path / "out")


def test_cli_reads_a_processing_jobs_model_folders(monkeypatch, tmp_path, processed_dir, model_dir):
    models = tmp_path / "models"
    shutil.copytree(model_dir, models / "gmf--seed0")
    monkeypatch.setattr(cli, "MODELS_INPUT", models)
    out = tmp_path / "out"
    assert cli.main(["--data", str(processed_dir), "--output", str(out), "--baselines"]) == 0
    written = json.loads((out / stage.EVALUATION_FILE).read_text())
    assert list(written["candidates"]) == ["gmf/seed0"]


def test_cli_failure_is_exit_1_with_the_reason(tmp_path, processed_dir, capsys):
    code = cli.main(
        ["--data", str(processed_dir), "--output", str(tmp_path), "--model", f"x={tmp_path}/no"]
    )
    assert code == 1
    assert "error: model 'x'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["--data", str(processed_dir), "--output", str(tmp_path), "--model", "nameonly"])


def test_random_scores_are_seeded():
    items = torch.zeros(3, 5, dtype=torch.long)
    first = stage.RandomScores(seed=1)(torch.zeros(3, dtype=torch.long), items)
    again = stage.RandomScores(seed=1)(torch.zeros(3, dtype=torch.long), items)
    assert torch.equal(first, again) and first.shape == (3, 5)
