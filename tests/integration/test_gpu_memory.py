"""Lesson 04's memory helpers on a small split, on the CPU as CI runs them: what a batch size
costs, accumulation's equal gradients, bf16 against fp32, and arguments refused up front."""

from __future__ import annotations

import math

import pytest
import torch

from orchestration.lessons import gpu_memory
from orchestration.lessons.gpu_memory import (
    accumulation_matches,
    batch_size_sweep,
    precision_comparison,
)
from preprocessing.manifest import read_split
from training.models import build_model
from training.precision import Precision
from training.recipes import RECIPES
from training.train import DeviceError


def _no_process(*args: object) -> None:
    pytest.fail(f"a measuring process was started: {args}")


def test_a_sweep_row_counts_what_an_epoch_of_its_batch_size_does(processed_dir):
    sizes = [64, 4096]
    table = batch_size_sweep(processed_dir, "gmf", sizes, device="cpu")
    positives = len(read_split(processed_dir).train)
    negatives = RECIPES["gmf"]["num_negatives"]
    assert table["batch_size"].tolist() == sizes
    assert table["rows_per_step"].tolist() == [size * (1 + negatives) for size in sizes]
    assert table["steps_per_epoch"].tolist() == [math.ceil(positives / size) for size in sizes]
    assert (table["epoch_seconds"] > 0).all()
    # 4,096 positives with 16 negatives each are 70k scored pairs, each of GMF's 64-wide
    # activations for them 18 MB; 64 positives' fit in what the process already has.
    assert table["peak_mb"].iloc[1] > table["peak_mb"].iloc[0] + 30


def test_accumulated_micro_batches_give_the_whole_batch_its_gradients(processed_dir):
    check = accumulation_matches(processed_dir, "neumf", 4096, 4, device="cpu")
    assert check.max_gradient > 1e-3  # gradients worth comparing
    assert check.max_gradient_difference < 1e-5
    assert check.loss_accumulated == pytest.approx(check.loss_whole, rel=1e-6)
    assert check.peak_mb_accumulated < check.peak_mb_whole / 2


def test_bf16_trains_like_fp32_and_training_uses_its_policys_choice(processed_dir):
    table = precision_comparison(processed_dir, "neumf", steps=5, device="cpu")
    rows = table.set_index("precision")
    assert rows.loc["fp32", "loss_rel_diff"] == 0
    assert 0 < rows.loc["bf16", "loss_rel_diff"] < 0.03  # bf16 ran, and rounds only a little
    assert (rows["step_ms"] > 0).all()
    recipe = RECIPES["neumf"]
    model = build_model("neumf", 4, 4, recipe["num_factors"], recipe["layers"])
    chosen = Precision(torch.device("cpu"), enabled=True, model=model).dtype
    assert rows["training_uses"].to_dict() == {"fp32": chosen is None, "bf16": chosen is not None}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda data: batch_size_sweep(data, "gmf", []), "batch_sizes is empty"),
        (lambda data: batch_size_sweep(data, "ncf", [256]), "model must be one of"),
        (lambda data: batch_size_sweep(data, "gmf", [256, 0]), "batch_size must be >= 1"),
        (lambda data: accumulation_matches(data, "mlp", 1000, 3), "1000 must split into .* 3"),
        (lambda data: accumulation_matches(data, "mlp", 1000, 0), "at least 1 that divides"),
        (lambda data: precision_comparison(data, "gmf", steps=1), "steps must be at least 2"),
        (lambda data: precision_comparison(data, "gmf", device="tpu"), "device must be"),
    ],
)
def test_wrong_arguments_are_refused_before_any_process_starts(
    processed_dir, monkeypatch, call, message
):
    monkeypatch.setattr(gpu_memory, "run_stage", _no_process)
    with pytest.raises(ValueError, match=message):
        call(processed_dir)


@pytest.mark.skipif(torch.cuda.is_available(), reason="asks for the CUDA device this lacks")
def test_cuda_asked_for_where_there_is_none_says_so(processed_dir, monkeypatch):
    monkeypatch.setattr(gpu_memory, "run_stage", _no_process)
    with pytest.raises(DeviceError, match="PyTorch sees no CUDA device"):
        batch_size_sweep(processed_dir, "gmf", [256], device="cuda")
