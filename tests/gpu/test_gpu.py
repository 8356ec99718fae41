"""The CUDA paths: bf16 training, sampling and evaluation on the device, artifacts that load on CPU.

CI has no GPU, so these skip there; on a GPU machine they run with the rest
(``pytest tests/gpu`` or ``pytest -m gpu`` runs only them). Each compares the GPU result with
the CPU code path, which the other test files pin down.
"""

import dataclasses

import pytest
import torch

from tests.helpers import StopAfter
from training.artifacts import load_model
from training.checkpoint import CheckpointStore
from training.config import TrainConfig
from training.data import TrainingData
from training.evaluate import evaluate_artifact, evaluate_holdout, evaluate_test_catalogue
from training.job import run_training
from training.models import build_model
from training.precision import Precision
from training.sampling import NegativeSampler
from training.train import TrainingInterrupted, fit

pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
]

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
FAST = {"epochs": 4, "batch_size": 256, "num_factors": 8, "layers": (16, 8), "patience": 4}


@pytest.fixture(scope="module")
def data(processed_dir):
    return TrainingData.load(processed_dir, CUDA)


def test_mixed_precision_is_bf16_on_hopper_class_gpus():
    model = build_model("neumf", 4, 4, 2, (4, 2))
    precision = Precision(CUDA, enabled=True, model=model)
    native_bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
    expected = torch.bfloat16 if native_bf16 else torch.float16
    assert precision.dtype == expected
    assert precision.scaler.is_enabled() == (expected == torch.float16)
    assert Precision(CUDA, enabled=False, model=model).dtype is None


@pytest.mark.parametrize("model", ["gmf", "mlp", "neumf"])
def test_learns_on_the_gpu_with_mixed_precision(data, model):
    config = TrainConfig(model=model, learning_rate=0.01, gpu="true", **FAST)
    result = fit(config, data, device=CUDA, progress=False)
    assert next(result.model.parameters()).device.type == "cuda"
    assert result.metrics["test_hr@10"] > 0.2  # random ranking: 0.1
    assert result.history[-1]["train_loss"] < result.history[1]["train_loss"]


def test_gpu_and_cpu_training_reach_the_same_accuracy(data, processed_dir):
    """bf16 and atomics change the rounding, not what the model learns."""
    config = TrainConfig(model="neumf", learning_rate=0.01, **FAST)
    on_gpu = fit(config, data, device=CUDA, progress=False).metrics
    on_cpu = fit(config, TrainingData.load(processed_dir, CPU), device=CPU, progress=False).metrics
    assert on_gpu["test_hr@10"] == pytest.approx(on_cpu["test_hr@10"], abs=0.06)
    assert on_gpu["test_ndcg@10"] == pytest.approx(on_cpu["test_ndcg@10"], abs=0.05)


def test_negatives_drawn_on_the_gpu_exclude_positives(data):
    sampler = NegativeSampler(data.users, data.items, data.n_items)
    generator = torch.Generator(device=CUDA).manual_seed(0)
    draws = sampler.sample(data.users, 8, generator)
    assert draws.device.type == "cuda"
    assert draws.shape == (len(data.users), 8)
    assert not sampler.is_positive(data.users, draws).any()
    again = sampler.sample(data.users, 8, torch.Generator(device=CUDA).manual_seed(0))
    assert torch.equal(draws, again)


def test_gpu_evaluation_equals_cpu_evaluation(data, processed_dir):
    model = build_model("neumf", data.n_users, data.n_items, 8, (16, 8))
    on_cpu_data = TrainingData.load(processed_dir, CPU)
    cpu_view = evaluate_holdout(model, on_cpu_data.test, 10)
    cpu_view |= evaluate_test_catalogue(model, on_cpu_data, 10)
    model.to(CUDA)
    gpu_view = evaluate_holdout(model, data.test, 10) | evaluate_test_catalogue(model, data, 10)
    assert gpu_view == pytest.approx(cpu_view, abs=1e-3)


def test_resume_on_the_gpu_after_sigterm(data, tmp_path):
    config = TrainConfig(model="neumf", learning_rate=0.01, **FAST)
    store = CheckpointStore(tmp_path)
    with pytest.raises(TrainingInterrupted, match="saved"):
        fit(config, data, device=CUDA, checkpoints=store, stop=StopAfter(25), progress=False)
    resumed = fit(config, data, device=CUDA, checkpoints=store, progress=False)
    reference = fit(config, data, device=CUDA, progress=False)
    # Bit-identical on the H100 we measured, but GPU kernels are not guaranteed deterministic.
    assert resumed.metrics["test_hr@10"] == pytest.approx(reference.metrics["test_hr@10"], abs=0.03)
    assert [row["epoch"] for row in resumed.history] == [row["epoch"] for row in reference.history]


@pytest.mark.parametrize("writer", ["cpu", "eager"])
def test_a_graphed_run_resumes_a_checkpoint_written_without_graphs(
    data, processed_dir, tmp_path, writer
):
    """Adam's ``capturable`` comes from the resuming run, not the checkpoint: capture needs it."""
    config = TrainConfig(model="neumf", learning_rate=0.01, **FAST)
    store = CheckpointStore(tmp_path)
    if writer == "cpu":
        first = (config, TrainingData.load(processed_dir, CPU), CPU)
    else:
        first = (dataclasses.replace(config, cuda_graphs=False), data, CUDA)
    first_config, first_data, device = first
    with pytest.raises(TrainingInterrupted, match="saved"):
        fit(
            first_config,
            first_data,
            device=device,
            checkpoints=store,
            stop=StopAfter(25),
            progress=False,
        )
    resumed = fit(config, data, device=CUDA, checkpoints=store, progress=False)
    assert [row["epoch"] for row in resumed.history] == list(range(config.epochs + 1))


def test_a_gpu_trained_artifact_serves_on_cpu(processed_dir, tmp_path):
    config = dataclasses.replace(TrainConfig(model="gmf", learning_rate=0.01, **FAST), gpu="true")
    metrics = run_training(config, processed_dir, tmp_path / "gmf", progress=False)
    model, saved = load_model(tmp_path / "gmf", CPU)
    assert saved["trained_on"]["device"] == "cuda"
    assert next(model.parameters()).device.type == "cpu"
    on_cpu = evaluate_artifact(tmp_path / "gmf", processed_dir)
    assert on_cpu["hr@10"] == pytest.approx(metrics["test_hr@10"], abs=1e-3)


@pytest.mark.parametrize("few_batches", [False, True])
def test_cuda_graph_replays_every_full_batch_after_warm_up(data, monkeypatch, few_batches):
    """With only 3 full batches an epoch, the warm-up ends on a smaller last batch, which must
    not be captured: the first full batch of the next epoch is."""
    from training.cuda_graph import WARMUP_STEPS

    replays = []
    replay = torch.cuda.CUDAGraph.replay
    monkeypatch.setattr(torch.cuda.CUDAGraph, "replay", lambda g: replays.append(replay(g)))
    config = TrainConfig(model="neumf", learning_rate=0.01, **FAST)
    if few_batches:
        config = dataclasses.replace(config, batch_size=len(data.users) // WARMUP_STEPS - 1)
        assert len(data.users) // config.batch_size == WARMUP_STEPS
    graphed = fit(config, data, device=CUDA, progress=False)
    full_batches = len(data.users) // config.batch_size
    assert len(data.users) % config.batch_size  # the last batch of each epoch runs eagerly
    assert len(replays) == config.epochs * full_batches - WARMUP_STEPS

    eager = fit(dataclasses.replace(config, cuda_graphs=False), data, device=CUDA, progress=False)
    assert len(replays) == config.epochs * full_batches - WARMUP_STEPS  # none more
    for with_graph, without in zip(graphed.history[1:], eager.history[1:], strict=True):
        assert with_graph["train_loss"] == pytest.approx(without["train_loss"], rel=0.02)
    assert graphed.metrics["test_hr@10"] == pytest.approx(eager.metrics["test_hr@10"], abs=0.03)


def test_the_moving_average_follows_graphed_steps_without_a_sync(data):
    from training.state import weight_average

    config = TrainConfig(model="neumf", learning_rate=0.01, ema_decay=0.99, **FAST)
    averaged = weight_average(build_model("gmf", 10, 10, 4, (8,)).to(CUDA), config.ema_decay)
    assert averaged.n_averaged.device == CPU  # read every step: on the GPU it would sync
    graphed = fit(config, data, device=CUDA, progress=False)
    eager = fit(dataclasses.replace(config, cuda_graphs=False), data, device=CUDA, progress=False)
    plain = fit(dataclasses.replace(config, ema_decay=0.0), data, device=CUDA, progress=False)
    for with_graph, without in zip(graphed.history[1:], eager.history[1:], strict=True):
        assert with_graph["val_ndcg@10"] == pytest.approx(without["val_ndcg@10"], abs=0.03)
    assert graphed.history[-1]["val_ndcg@10"] != plain.history[-1]["val_ndcg@10"]
