"""The training loop over real epochs: it learns, and resumes exactly after SIGTERM (a few
seconds a test; the quick checks are in unit/test_training.py)."""

import dataclasses
import subprocess
import sys

import pytest
import torch

from tests.helpers import CPU, StopAfter
from tests.helpers import FAST_FIT as FAST
from training import precision as precision_module
from training.checkpoint import CheckpointStore
from training.config import TrainConfig
from training.evaluate import evaluate_holdout
from training.models import build_model
from training.train import (
    TrainingInterrupted,
    fit,
)


@pytest.mark.parametrize(("model", "loss"), [("gmf", "bce"), ("mlp", "bpr"), ("neumf", "softmax")])
def test_learns_the_planted_structure(data, model, loss):
    config = TrainConfig(model=model, loss=loss, learning_rate=0.01, **(FAST | {"epochs": 5}))
    result = fit(config, data, device=CPU, progress=False)
    # 100 candidates: a random ranking hits the top 10 one time in ten.
    assert result.metrics["test_hr@10"] > 0.2
    assert [row["epoch"] for row in result.history] == [0, 1, 2, 3, 4, 5]
    assert result.history[-1]["train_loss"] < result.history[1]["train_loss"]
    assert result.metrics["selected_on"] == "validation"
    assert 0 < result.metrics["test_full_recall@10"] <= 1


@pytest.mark.parametrize(("imports", "denormals"), [("", 1 << 22), ("import training;", 0)])
def test_importing_training_flushes_denormals_in_every_thread(imports, denormals):
    """Dead ReLU units' weights decay into denormals, which x86 computes many times slower.

    The flag is per thread: the product is split across PyTorch's worker threads."""
    probe = "y = torch.full((1 << 22,), 1e-20) * 1e-20; print(int(y.count_nonzero()))"
    code = f"import torch; {imports} torch.set_num_threads(2); {probe}"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == denormals


@pytest.mark.parametrize("ema_decay", [0.0, 0.99])
@pytest.mark.parametrize("stop_after", [5, 25])  # mid-epoch, and in a later epoch
def test_resume_after_sigterm_matches_an_uninterrupted_run(data, tmp_path, stop_after, ema_decay):
    config = TrainConfig(model="neumf", learning_rate=0.01, ema_decay=ema_decay, **FAST)
    reference = fit(config, data, device=CPU, progress=False)
    store = CheckpointStore(tmp_path)
    with pytest.raises(TrainingInterrupted, match="saved"):
        fit(config, data, device=CPU, checkpoints=store, stop=StopAfter(stop_after), progress=False)
    assert store.path.exists()
    resumed = fit(config, data, device=CPU, checkpoints=store, progress=False)
    assert resumed.metrics["test_hr@10"] == reference.metrics["test_hr@10"]
    assert [r.get("train_loss") for r in resumed.history[1:]] == pytest.approx(
        [r.get("train_loss") for r in reference.history[1:]], rel=1e-6
    )
    for name, value in reference.model.state_dict().items():  # with averaging: the average's
        torch.testing.assert_close(resumed.model.state_dict()[name], value, rtol=1e-6, atol=1e-7)


def test_the_moving_average_is_evaluated_and_kept_without_changing_training(data, tmp_path):
    plain = TrainConfig(model="mlp", learning_rate=0.01, **FAST)
    raw_store, averaged_store = CheckpointStore(tmp_path / "raw"), CheckpointStore(tmp_path / "ema")
    raw = fit(plain, data, device=CPU, checkpoints=raw_store, progress=False)
    config = dataclasses.replace(plain, ema_decay=0.9)
    averaged = fit(config, data, device=CPU, checkpoints=averaged_store, progress=False)
    raw_saved, averaged_saved = raw_store.load(), averaged_store.load()
    # The optimiser's path is untouched: same losses, same raw weights after the last step.
    assert [r.get("train_loss") for r in averaged.history] == [
        r.get("train_loss") for r in raw.history
    ]
    for name, value in raw_saved["model"].items():
        assert torch.equal(averaged_saved["model"][name], value)
    # What is evaluated (and so selected and kept) is the average, not the raw weights.
    average = build_model("mlp", data.n_users, data.n_items, 8, (16, 8))
    average.load_state_dict(
        {
            k.removeprefix("module."): v
            for k, v in averaged_saved["averaged"].items()
            if k != "n_averaged"
        }
    )
    last = evaluate_holdout(average, data.validation, k=10)
    assert averaged.history[-1]["val_ndcg@10"] == pytest.approx(last["ndcg@10"])
    assert averaged.history[-1]["val_ndcg@10"] != raw.history[-1]["val_ndcg@10"]
    kept = averaged_saved["best_state"]
    assert not torch.equal(kept["tower.0.weight"], raw_saved["best_state"]["tower.0.weight"])
    for name, value in averaged.model.state_dict().items():
        assert torch.equal(value, kept[name])


def test_resuming_with_more_patience_goes_on(data, tmp_path):
    impatient = TrainConfig(
        model="gmf", learning_rate=1e-9, **(FAST | {"epochs": 5, "patience": 1})
    )
    store = CheckpointStore(tmp_path)
    stopped = fit(impatient, data, device=CPU, checkpoints=store, progress=False)
    assert len(stopped.history) < 6
    patient = dataclasses.replace(impatient, patience=10)
    resumed = fit(patient, data, device=CPU, checkpoints=store, progress=False)
    reference = fit(patient, data, device=CPU, progress=False)
    assert [row["epoch"] for row in resumed.history] == [0, 1, 2, 3, 4, 5]
    assert [r["train_loss"] for r in resumed.history[1:]] == pytest.approx(
        [r["train_loss"] for r in reference.history[1:]], rel=1e-6
    )
    assert resumed.metrics["test_hr@10"] == reference.metrics["test_hr@10"]


def test_cpu_bf16_training_runs_under_autocast(data, monkeypatch):
    """Weights and evaluation stay fp32; the steps round differently and learn as well."""
    monkeypatch.setattr(precision_module, "cpu_computes_bf16", lambda: True)
    config = TrainConfig(model="neumf", learning_rate=0.01, **(FAST | {"epochs": 2}))
    mixed = fit(config, data, device=CPU, progress=False)
    full = fit(dataclasses.replace(config, amp=False), data, device=CPU, progress=False)
    assert {p.dtype for p in mixed.model.parameters()} == {torch.float32}
    assert not torch.allclose(mixed.model.predict.weight, full.model.predict.weight)
    assert mixed.history[-1]["train_loss"] == pytest.approx(
        full.history[-1]["train_loss"], rel=0.02
    )
    assert mixed.metrics["test_hr@10"] == pytest.approx(full.metrics["test_hr@10"], abs=0.05)
