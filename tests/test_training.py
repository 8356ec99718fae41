"""The training loop: it learns, stops on NaN, and resumes exactly after SIGTERM."""

import dataclasses
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from training import train as train_module
from training.checkpoint import CheckpointError, CheckpointStore, StopRequest
from training.config import ConfigError, TrainConfig
from training.data import TrainingData
from training.evaluate import evaluate_holdout
from training.models import build_model
from training.train import (
    NonFiniteLossError,
    TrainingInterrupted,
    _Checkpointed,
    _positive_weights,
    _Precision,
    _TrainState,
    cpu_computes_bf16,
    fit,
)

CPU = torch.device("cpu")
FAST = {"epochs": 3, "batch_size": 256, "num_factors": 8, "layers": (16, 8), "patience": 3}


@pytest.fixture(scope="module")
def data(processed_dir):
    return TrainingData.load(processed_dir, CPU)


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


def test_kept_model_is_the_best_validation_epoch(data):
    config = TrainConfig(model="gmf", learning_rate=0.01, **FAST)
    result = fit(config, data, device=CPU, progress=False)
    best = max(result.history, key=lambda row: row["val_ndcg@10"])
    assert result.best_epoch == best["epoch"]
    assert result.metrics["val_ndcg@10"] == best["val_ndcg@10"]


def test_early_stopping_respects_patience(data):
    config = TrainConfig(model="gmf", learning_rate=1e-9, **(FAST | {"epochs": 10, "patience": 1}))
    result = fit(config, data, device=CPU, progress=False)
    assert len(result.history) < 10


def test_nan_loss_names_the_epoch(data):
    config = TrainConfig(model="gmf", **FAST)
    model = build_model("gmf", data.n_users, data.n_items, 8, (16, 8))
    with torch.no_grad():
        model.item_embedding.weight[0, 0] = math.nan
    with pytest.raises(NonFiniteLossError, match="epoch 1 of gmf"):
        fit(config, data, device=CPU, model=model, progress=False)


@pytest.mark.parametrize(("imports", "denormals"), [("", 1 << 22), ("import training;", 0)])
def test_importing_training_flushes_denormals_in_every_thread(imports, denormals):
    """Dead ReLU units' weights decay into denormals, which x86 computes many times slower.

    The flag is per thread: the product is split across PyTorch's worker threads."""
    probe = "y = torch.full((1 << 22,), 1e-20) * 1e-20; print(int(y.count_nonzero()))"
    code = f"import torch; {imports} torch.set_num_threads(2); {probe}"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == denormals


class StopAfter(StopRequest):
    """Acts like a SIGTERM arriving during the n-th optimiser step."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.remaining = steps

    def __bool__(self) -> bool:
        self.remaining -= 1
        return self.remaining < 0


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


def test_corrupt_checkpoint_is_a_clear_error(data, tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    config = TrainConfig(model="gmf", **FAST)
    with pytest.raises(CheckpointError, match="corrupt or unreadable"):
        fit(config, data, device=CPU, checkpoints=CheckpointStore(tmp_path), progress=False)


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


def checkpointed(data, config, capturable=False, fp16=False):
    """What fit checkpoints, built as a run with these settings would build it."""
    model = build_model(config.model, data.n_users, data.n_items, 8, (16, 8))
    optimizer = torch.optim.Adam(model.parameters(), fused=True, capturable=capturable)
    return _Checkpointed(model, optimizer, None, torch.amp.GradScaler("cpu", enabled=fp16))


@pytest.mark.parametrize("capturable", [True, False])
def test_a_resumed_optimiser_keeps_this_runs_capturable_flag(data, tmp_path, capturable):
    """A CUDA graph needs a capturable Adam, whatever device or setting wrote the checkpoint."""
    config = TrainConfig(model="gmf", **(FAST | {"epochs": 1}))
    store = CheckpointStore(tmp_path)
    fit(config, data, device=CPU, checkpoints=store, progress=False)
    saved = store.load()
    for group in saved["optimizer"]["param_groups"]:
        group["capturable"] = not capturable
    parts = checkpointed(data, config, capturable=capturable)
    _TrainState.restore(saved, config, parts, store)
    assert [group["capturable"] for group in parts.optimizer.param_groups] == [capturable]


def test_the_fp16_loss_scale_is_checkpointed(data, tmp_path):
    config = TrainConfig(model="gmf", **FAST)
    store = CheckpointStore(tmp_path)
    running = checkpointed(data, config, fp16=True)
    running.scaler.load_state_dict(running.scaler.state_dict() | {"scale": 512.0})
    saved = _TrainState().snapshot(running, config)
    resumed = checkpointed(data, config, fp16=True)
    _TrainState.restore(saved, config, resumed, store)
    assert resumed.scaler.get_scale() == 512.0
    # a checkpoint of an older version (no scaler), or of a run without loss scaling: a fresh scale
    for older in ({k: v for k, v in saved.items() if k != "scaler"}, saved | {"scaler": {}}):
        fresh = checkpointed(data, config, fp16=True)
        _TrainState.restore(older, config, fresh, store)
        assert fresh.scaler.get_scale() == torch.amp.GradScaler("cpu").get_scale()


@pytest.mark.filterwarnings("ignore:torch.cuda.amp.GradScaler is enabled, but CUDA is not")
def test_fp16_where_bf16_is_only_emulated(monkeypatch):
    """T4 and V100 emulate bf16 (is_bf16_supported's default says yes); they get fp16."""
    monkeypatch.setattr(
        torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation
    )
    model = build_model("gmf", 4, 4, 2, (4, 2))
    assert _Precision(torch.device("cuda"), enabled=True, model=model).dtype == torch.float16


def _cpu_flags() -> set[str]:
    text = Path("/proc/cpuinfo").read_text()
    return set(re.search(r"^flags\s*:(.*)$", text, re.MULTILINE).group(1).split())


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="reads Linux's CPU flags")
def test_cpu_bf16_is_native_where_the_cpu_has_bf16_units():
    flags = _cpu_flags()
    assert cpu_computes_bf16() == bool({"avx512_bf16", "amx_bf16"} & flags)


@pytest.mark.parametrize(
    ("model", "layers", "native", "enabled", "expected"),
    [
        ("mlp", (16, 8), True, True, torch.bfloat16),
        ("neumf", (16, 8), True, True, torch.bfloat16),
        ("gmf", (16, 8), True, True, None),  # no matrix products worth the casts
        ("mlp", (16,), True, True, None),  # a one-entry --layers has no tower
        ("mlp", (16, 8), False, True, None),  # emulated bf16
        ("mlp", (16, 8), True, False, None),  # --amp false
    ],
)
def test_cpu_mixed_precision_only_where_it_pays(
    monkeypatch, model, layers, native, enabled, expected
):
    monkeypatch.setattr(train_module, "cpu_computes_bf16", lambda: native)
    built = build_model(model, 4, 4, 2, layers)
    precision = _Precision(CPU, enabled=enabled, model=built)
    assert precision.dtype == expected
    assert not precision.scaler.is_enabled()


def test_cpu_bf16_training_runs_under_autocast(data, monkeypatch):
    """Weights and evaluation stay fp32; the steps round differently and learn as well."""
    monkeypatch.setattr(train_module, "cpu_computes_bf16", lambda: True)
    config = TrainConfig(model="neumf", learning_rate=0.01, **(FAST | {"epochs": 2}))
    mixed = fit(config, data, device=CPU, progress=False)
    full = fit(dataclasses.replace(config, amp=False), data, device=CPU, progress=False)
    assert {p.dtype for p in mixed.model.parameters()} == {torch.float32}
    assert not torch.allclose(mixed.model.predict.weight, full.model.predict.weight)
    assert mixed.history[-1]["train_loss"] == pytest.approx(
        full.history[-1]["train_loss"], rel=0.02
    )
    assert mixed.metrics["test_hr@10"] == pytest.approx(full.metrics["test_hr@10"], abs=0.05)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"dropout": 0.1}, "hyperparameters dropout are unknown"),
        ({"seed": -1}, r"refuses \(seed must be >= 0, got -1\)"),
        ({"layers": 7}, "refuses"),
    ],
)
def test_a_checkpoint_of_another_code_version_is_named(data, tmp_path, change, message):
    config = TrainConfig(model="gmf", **(FAST | {"epochs": 1}))
    store = CheckpointStore(tmp_path)
    fit(config, data, device=CPU, checkpoints=store, progress=False)
    saved = store.load()
    saved["config"] |= change
    store.save(saved)
    with pytest.raises(CheckpointError, match=f"{re.escape(str(store.path))}.*{message}"):
        fit(config, data, device=CPU, checkpoints=store, progress=False)


def test_checkpoint_of_another_configuration_is_refused(data, tmp_path):
    store = CheckpointStore(tmp_path)
    fit(TrainConfig(model="gmf", **FAST), data, device=CPU, checkpoints=store, progress=False)
    other = TrainConfig(model="gmf", **(FAST | {"num_factors": 4}))
    with pytest.raises(CheckpointError, match="other hyperparameters"):
        fit(other, data, device=CPU, checkpoints=store, progress=False)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("learning_rate", -0.1, "learning_rate must be a positive number"),
        ("learning_rate", math.nan, "learning_rate must be a positive number"),
        ("layers", (), "layers must name at least one"),
        ("layers", (63, 16), "must be even"),
        ("num_factors", 0, "num_factors must be >= 1"),
        ("loss", "mse", "loss must be one of"),
        ("epochs", 0, "epochs must be >= 1"),
        ("alpha", 1.5, "alpha must lie in"),
        ("ema_decay", 1.0, "ema_decay must lie in"),
        ("ema_decay", -0.5, "ema_decay must lie in"),
        ("l2", -1e-6, "l2 must be a finite number >= 0"),
        ("l2", math.inf, "l2 must be a finite number >= 0"),
        ("recency_weight", math.inf, "recency_weight must be a finite number >= 0"),
        ("recency_weight", math.nan, "recency_weight must be a finite number >= 0"),
        ("latest_weight", -1.0, "latest_weight must be a finite number >= 0"),
        ("latest_weight", math.inf, "latest_weight must be a finite number >= 0"),
        ("latest_span", 0.0, "latest_span must be a finite number > 0"),
        ("latest_span", math.nan, "latest_span must be a finite number > 0"),
        ("seed", 2**32, r"seed must be < 2\*\*32 = 4294967296, got 4294967296"),
    ],
)
def test_out_of_range_hyperparameters(field, value, message):
    with pytest.raises(ConfigError, match=message):
        dataclasses.replace(TrainConfig(), **{field: value})


@pytest.mark.parametrize(
    ("rows", "accumulation"),
    [
        (2048, 2),  # every batch of 256 splits into two equal micro-batches of 128
        (1950, 2),  # the last step: a full micro-batch and one of 30 rows
        (1880, 2),  # the last step: a single micro-batch of 88 rows
        (1950, 3),  # micro-batches of 85: the last step has two, of 85 and 80 rows
    ],
)
def test_gradient_accumulation_matches_the_full_batch(data, rows, accumulation):
    trimmed = dataclasses.replace(data, users=data.users[:rows], items=data.items[:rows])
    # fp32: bf16's rounding (autocast on CPUs with bf16 units) would swamp what this compares
    whole = TrainConfig(model="neumf", learning_rate=0.01, amp=False, **(FAST | {"epochs": 1}))
    micro = dataclasses.replace(
        whole, batch_size=whole.batch_size // accumulation, grad_accumulation=accumulation
    )
    if accumulation == 3:
        whole = dataclasses.replace(whole, batch_size=micro.batch_size * accumulation)
    a = fit(whole, trimmed, device=CPU, progress=False)
    b = fit(micro, trimmed, device=CPU, progress=False)
    for name, value in a.model.state_dict().items():
        torch.testing.assert_close(b.model.state_dict()[name], value, rtol=1e-4, atol=1e-5)
    assert b.history[1]["train_loss"] == pytest.approx(a.history[1]["train_loss"], rel=1e-5)
    no_accumulation = dataclasses.replace(micro, grad_accumulation=1)
    c = fit(no_accumulation, trimmed, device=CPU, progress=False)
    assert not torch.allclose(c.model.predict.weight, a.model.predict.weight)


def _history(users: list[int], items: list[int], timestamps: list[int]) -> TrainingData:
    return TrainingData(
        n_users=max(users) + 1,
        n_items=max(items) + 1,
        users=torch.tensor(users),
        items=torch.tensor(items),
        timestamps=torch.tensor(timestamps),
        validation=None,
        test=None,
    )


def test_timeline_rank_orders_each_users_history():
    data = _history([1, 0, 0, 1, 0], [0, 4, 1, 2, 3], [50, 30, 10, 40, 30])
    rank, count = data.timeline_rank()
    # user 0: item 1 (t=10), then items 3 and 4 tie at t=30 -> larger item last
    assert rank.tolist() == [1, 2, 0, 0, 1]
    assert count.tolist() == [2, 3, 3, 2, 3]


def test_positive_weights_favour_the_recent_and_the_last_few():
    # user 0 has four positives (rows out of time order), user 1 one
    data = _history([0, 0, 1, 0, 0], [3, 1, 2, 0, 2], [40, 20, 5, 10, 30])
    assert _positive_weights(data, TrainConfig()) is None
    recent = _positive_weights(data, TrainConfig(recency_weight=9.0))
    # positions 1, 1/3, 0 (a lone positive), 0, 2/3 -> 1 + 9 * position**2
    expected = torch.tensor([10.0, 2.0, 1.0, 1.0, 5.0])
    torch.testing.assert_close(recent, expected / expected.mean())
    latest = _positive_weights(data, TrainConfig(latest_weight=4.0, latest_span=2.0))
    back = torch.tensor([0.0, 2.0, 0.0, 3.0, 1.0])  # positives after it in its user's history
    expected = 1 + 4.0 * torch.exp(-back / 2.0)
    torch.testing.assert_close(latest, expected / expected.mean())
    both = _positive_weights(data, TrainConfig(recency_weight=9.0, latest_weight=4.0))
    assert both.argmax() == 0 and both.mean().item() == pytest.approx(1.0)


@pytest.mark.parametrize("weighting", [{"recency_weight": 10.0}, {"latest_weight": 10.0}])
def test_positive_weighting_changes_training(data, weighting):
    plain = TrainConfig(model="gmf", learning_rate=0.01, **(FAST | {"epochs": 1}))
    weighted = dataclasses.replace(plain, **weighting)
    a = fit(plain, data, device=CPU, progress=False)
    b = fit(weighted, data, device=CPU, progress=False)
    assert not torch.allclose(a.model.item_embedding.weight, b.model.item_embedding.weight)


def test_a_starting_point_that_wins_is_kept(data):
    """A trained model fine-tuned with a harmful learning rate: epoch 0 is what comes back."""
    good = fit(
        TrainConfig(model="gmf", learning_rate=0.01, **FAST), data, device=CPU, progress=False
    )
    start = {k: v.clone() for k, v in good.model.state_dict().items()}
    harmful = TrainConfig(model="gmf", learning_rate=100.0, **(FAST | {"patience": 2}))
    again = fit(harmful, data, device=CPU, model=good.model, progress=False)
    assert again.best_epoch == 0
    assert len(again.history) == 3  # epoch 0, then two worse epochs exhaust the patience
    for name, value in again.model.state_dict().items():
        torch.testing.assert_close(value, start[name])


@pytest.mark.parametrize(
    ("device", "config_changes", "world_size", "fp16", "expected"),
    [
        ("cuda", {}, 1, False, True),
        ("cpu", {}, 1, False, False),
        ("cuda", {"cuda_graphs": False}, 1, False, False),
        ("cuda", {"grad_accumulation": 2}, 1, False, False),
        ("cuda", {}, 2, False, False),
        ("cuda", {}, 1, True, False),
    ],
)
def test_cuda_graphs_only_for_a_plain_single_gpu_step(
    device, config_changes, world_size, fp16, expected
):
    from training.distributed import ProcessGroup
    from training.train import _graphs_apply

    precision = _Precision(CPU, enabled=False, model=build_model("gmf", 4, 4, 2, (4, 2)))
    if fp16:
        precision.scaler = torch.amp.GradScaler("cpu", enabled=True)  # fp16 needs loss scaling
    group = ProcessGroup(world_size=world_size)
    config = TrainConfig(**config_changes)
    assert _graphs_apply(config, torch.device(device), precision, group) is expected
