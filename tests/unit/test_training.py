"""The training loop, quickly: what fit keeps, checkpoints it refuses, precision choices,
config checks and positive weighting (the long fits are in integration/test_training.py)."""

import dataclasses
import math
import re
from pathlib import Path

import pytest
import torch

from tests.helpers import CPU
from tests.helpers import FAST_FIT as FAST
from training import precision as precision_module
from training.checkpoint import CheckpointError, CheckpointStore
from training.config import ConfigError, TrainConfig
from training.data import TrainingData
from training.models import build_model
from training.precision import Precision, cpu_computes_bf16
from training.state import Checkpointed, TrainState
from training.train import NonFiniteLossError, _positive_weights, fit


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


def test_corrupt_checkpoint_is_a_clear_error(data, tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    config = TrainConfig(model="gmf", **FAST)
    with pytest.raises(CheckpointError, match="corrupt or unreadable"):
        fit(config, data, device=CPU, checkpoints=CheckpointStore(tmp_path), progress=False)


def checkpointed(data, config, capturable=False, fp16=False):
    """What fit checkpoints, built as a run with these settings would build it."""
    model = build_model(config.model, data.n_users, data.n_items, 8, (16, 8))
    optimizer = torch.optim.Adam(model.parameters(), fused=True, capturable=capturable)
    return Checkpointed(model, optimizer, None, torch.amp.GradScaler("cpu", enabled=fp16))


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
    TrainState.restore(saved, config, parts, store)
    assert [group["capturable"] for group in parts.optimizer.param_groups] == [capturable]


def test_the_fp16_loss_scale_is_checkpointed(data, tmp_path):
    config = TrainConfig(model="gmf", **FAST)
    store = CheckpointStore(tmp_path)
    running = checkpointed(data, config, fp16=True)
    running.scaler.load_state_dict(running.scaler.state_dict() | {"scale": 512.0})
    saved = TrainState().snapshot(running, config)
    resumed = checkpointed(data, config, fp16=True)
    TrainState.restore(saved, config, resumed, store)
    assert resumed.scaler.get_scale() == 512.0
    # a checkpoint of an older version (no scaler), or of a run without loss scaling: a fresh scale
    for older in ({k: v for k, v in saved.items() if k != "scaler"}, saved | {"scaler": {}}):
        fresh = checkpointed(data, config, fp16=True)
        TrainState.restore(older, config, fresh, store)
        assert fresh.scaler.get_scale() == torch.amp.GradScaler("cpu").get_scale()


@pytest.mark.filterwarnings("ignore:torch.cuda.amp.GradScaler is enabled, but CUDA is not")
def test_fp16_where_bf16_is_only_emulated(monkeypatch):
    """T4 and V100 emulate bf16 (is_bf16_supported's default says yes); they get fp16."""
    monkeypatch.setattr(
        torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation
    )
    model = build_model("gmf", 4, 4, 2, (4, 2))
    assert Precision(torch.device("cuda"), enabled=True, model=model).dtype == torch.float16


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
    monkeypatch.setattr(precision_module, "cpu_computes_bf16", lambda: native)
    built = build_model(model, 4, 4, 2, layers)
    precision = Precision(CPU, enabled=enabled, model=built)
    assert precision.dtype == expected
    assert not precision.scaler.is_enabled()


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
    from training.steps import graphs_apply

    precision = Precision(CPU, enabled=False, model=build_model("gmf", 4, 4, 2, (4, 2)))
    if fp16:
        precision.scaler = torch.amp.GradScaler("cpu", enabled=True)  # fp16 needs loss scaling
    group = ProcessGroup(world_size=world_size)
    config = TrainConfig(**config_changes)
    assert graphs_apply(config, torch.device(device), precision, group) is expected
