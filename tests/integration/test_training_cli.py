"""``python -m training`` under SageMaker's contract: SM_* channels, hyperparameters.json,
model artifacts loadable with weights_only, SIGTERM and resume in a real subprocess laid out
as a bring-your-own container (no SM_* variables, only /opt/ml files and a checkpoints channel)."""

import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import tempfile
import time

import pytest
import torch

import training.__main__ as cli
from tests.helpers import FAST_FLAGS as FAST
from training.artifacts import load_model, save_model
from training.evaluate import evaluate_artifact
from training.models import architecture, build_model
from training.recipes import RECIPES


def test_sagemaker_channels_give_a_loadable_artifact(sm_env, processed_dir):
    assert cli.main(["--model", "gmf", *FAST]) == 0
    model_dir = sm_env / "model"
    assert {p.name for p in model_dir.iterdir()} == {
        "model.pt",
        "selection.pt",
        "config.json",
        "metrics.json",
        "users.parquet",
        "items.parquet",
        "seen_items.parquet",
    }
    state = torch.load(model_dir / "model.pt", weights_only=True)
    assert set(state) == {
        "user_embedding.weight",
        "item_embedding.weight",
        "predict.weight",
        "predict.bias",
    }
    _, config = load_model(model_dir)
    assert config["architecture"]["model"] == "gmf"
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert [row["epoch"] for row in metrics["history"]] == [0, 1, 2]
    again = evaluate_artifact(model_dir, processed_dir)
    assert again["hr@10"] == pytest.approx(metrics["test_hr@10"])
    # the local MLflow store got the run
    assert (sm_env / "output-data" / "mlflow.db").is_file()


def test_hyperparameters_json_is_read_and_flags_win(sm_env):
    (sm_env / "config").mkdir()
    hyperparameters = {"model": "mlp", "layers": "[16, 8]", "epochs": "1", "learning-rate": "0.01"}
    (sm_env / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    assert cli.main(["--num-factors", "4", "--batch-size", "512"]) == 0
    config = json.loads((sm_env / "model" / "config.json").read_text())
    assert config["architecture"] == {
        "model": "mlp",
        "n_users": 300,
        "n_items": 400,
        "num_factors": 4,
        "layers": [16, 8],
    }
    assert config["hyperparameters"]["learning_rate"] == 0.01
    assert config["hyperparameters"]["batch_size"] == 512


def test_neumf_from_pretrained_channels_including_model_tar_gz(sm_env, monkeypatch, tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    layers = ["--num-factors", "8", "--layers", "16", "8", "--epochs", "1"]
    for name in ("gmf", "mlp"):
        monkeypatch.setenv("SM_MODEL_DIR", str(sm_env / name))
        assert cli.main(["--model", name, *layers]) == 0
    packed = sm_env / "gmf-channel"
    packed.mkdir()
    with tarfile.open(packed / "model.tar.gz", "w:gz") as archive:
        for path in (sm_env / "gmf").iterdir():
            archive.add(path, arcname=path.name)
    monkeypatch.setenv("SM_CHANNEL_GMF", str(packed))
    monkeypatch.setenv("SM_CHANNEL_MLP", str(sm_env / "mlp"))
    monkeypatch.setenv("SM_MODEL_DIR", str(sm_env / "neumf"))
    assert cli.main(["--model", "neumf", *layers]) == 0
    assert load_model(sm_env / "neumf")[1]["architecture"]["model"] == "neumf"
    assert not list(scratch.glob("pretrained-*")), "the unpacked model.tar.gz outlived the run"


def test_pretrained_with_other_sizes_is_refused(sm_env, monkeypatch, capsys):
    monkeypatch.setenv("SM_MODEL_DIR", str(sm_env / "gmf"))
    assert cli.main(["--model", "gmf", "--num-factors", "4", "--epochs", "1"]) == 0
    monkeypatch.setenv("SM_MODEL_DIR", str(sm_env / "mlp"))
    assert cli.main(["--model", "mlp", "--layers", "16", "8", "--epochs", "1"]) == 0
    monkeypatch.setenv("SM_MODEL_DIR", str(sm_env / "neumf"))
    argv = ["--model", "neumf", "--num-factors", "8", "--layers", "16", "8"]
    argv += ["--pretrained-gmf", str(sm_env / "gmf"), "--pretrained-mlp", str(sm_env / "mlp")]
    assert cli.main(argv) == 1
    assert "pre-trained GMF (gmf channel, " in capsys.readouterr().err


def fresh_half(folder, model, n_items=400, num_factors=8, layers=(16, 8)):
    """A model folder as training writes it, for the synthetic split's 300 users."""
    arch = architecture(model, 300, n_items, num_factors, layers)
    save_model(
        folder, build_model(model, 300, n_items, num_factors, layers), {"architecture": arch}, {}
    )
    return folder


@pytest.mark.parametrize(
    ("gmf", "mlp", "message"),
    [
        (
            {"n_items": 401},
            {},
            r"pre-trained GMF \(gmf channel, \S+\) does not fit: its item_embedding.weight is "
            r"\(401, 8\), this run needs \(400, 8\)",
        ),
        (
            {},
            {"layers": (16, 12, 8)},
            r"pre-trained MLP \(mlp channel, \S+\) does not fit: its tower.0.weight is "
            r"\(12, 16\), this run needs \(10, 16\)",
        ),
        ({}, {"layers": (16, 10)}, r"its tower.1.weight is missing, this run needs \(8, 10\)"),
        ({"model": "mlp"}, {}, r"pre-trained GMF \(gmf channel, \S+\) is a MLP model, not a GMF"),
    ],
)
def test_pretrained_weights_of_other_shapes_are_named(
    sm_env, failure_file, capsys, gmf, mlp, message
):
    gmf_dir = fresh_half(sm_env / "gmf", **({"model": "gmf"} | gmf))
    mlp_dir = fresh_half(sm_env / "mlp", **({"model": "mlp"} | mlp))
    argv = ["--model", "neumf", *FAST[:4], "--layers", "16", "10", "8"]
    argv += ["--pretrained-gmf", str(gmf_dir), "--pretrained-mlp", str(mlp_dir)]
    assert cli.main(argv) == 1
    assert re.search(message, capsys.readouterr().err)
    assert re.search(message, failure_file.read_text())


def run_cli(env, args, **kwargs):
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
    return subprocess.Popen(
        [sys.executable, "-m", "training", *args],
        env=inherited | env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def opt_ml(root, processed_dir, hyperparameters):
    """What local mode mounts for ``Estimator.fit({"train": ..., "checkpoints": "file://..."})``."""
    config = root / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    channels = {
        "train": {"TrainingInputMode": "File"},
        "checkpoints": {"TrainingInputMode": "File"},
    }
    (config / "inputdataconfig.json").write_text(json.dumps(channels))
    (config / "resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-1-x", "hosts": ["algo-1-x"]})
    )
    (root / "input" / "data").mkdir()
    (root / "input" / "data" / "train").symlink_to(processed_dir)
    (root / "input" / "data" / "checkpoints").mkdir()
    (root / "model").mkdir()
    (root / "output" / "data").mkdir(parents=True)
    return {"OPT_ML_ROOT": str(root), "TRAINING_JOB_NAME": "ncf-resume", "TQDM_DISABLE": "1"}


def test_sigterm_saves_and_a_restart_resumes_to_the_same_metrics(processed_dir, tmp_path):
    hyperparameters = {"model": "gmf", "epochs": "12", "num-factors": "8", "batch-size": "64"}
    hyperparameters["patience"] = "12"
    args = [f"--{key}={value}" for key, value in hyperparameters.items()]
    tracking = {"MLFLOW_TRACKING_URI": (tmp_path / "no-server").as_uri()}
    reference_env = {"SM_CHANNEL_TRAIN": str(processed_dir), "TQDM_DISABLE": "1"}
    reference_env["SM_MODEL_DIR"] = str(tmp_path / "reference")
    reference = run_cli(reference_env | tracking, args)
    assert reference.wait(timeout=600) == 0, reference.stderr.read()

    root = tmp_path / "opt-ml"
    byoc = opt_ml(root, processed_dir, hyperparameters) | tracking
    interrupted = run_cli(byoc, [])
    deadline = time.monotonic() + 300
    first_checkpoint = root / "input" / "data" / "checkpoints" / "selection" / "checkpoint.pt"
    while not first_checkpoint.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    interrupted.send_signal(signal.SIGTERM)
    assert interrupted.wait(timeout=120) == cli.EXIT_INTERRUPTED
    assert "Start the job again with the same checkpoint dir" in interrupted.stderr.read()
    assert not (root / "model" / "model.pt").exists()

    resumed = run_cli(byoc, [])
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()
    expected = json.loads((tmp_path / "reference" / "metrics.json").read_text())
    got = json.loads((root / "model" / "metrics.json").read_text())
    assert got["test_hr@10"] == expected["test_hr@10"]
    assert got["test_ndcg@10"] == expected["test_ndcg@10"]
    assert [r["train_loss"] for r in got["history"][1:]] == pytest.approx(
        [r["train_loss"] for r in expected["history"][1:]], rel=1e-6
    )


def test_pretrained_start_that_wins_is_refitted_from_the_refitted_halves(sm_env, monkeypatch):
    from training.models import NeuMF

    sizes = ["--num-factors", "8", "--layers", "16", "8", "--epochs", "2"]
    for name in ("gmf", "mlp"):
        monkeypatch.setenv("SM_MODEL_DIR", str(sm_env / name))
        assert cli.main(["--model", name, "--learning-rate", "0.01", *sizes]) == 0
    monkeypatch.setenv("SM_CHANNEL_GMF", str(sm_env / "gmf"))
    monkeypatch.setenv("SM_CHANNEL_MLP", str(sm_env / "mlp"))
    monkeypatch.setenv("SM_MODEL_DIR", str(sm_env / "neumf"))
    # a learning rate that only does harm: model selection keeps epoch 0, the pre-trained blend
    assert cli.main(["--model", "neumf", "--learning-rate", "100", "--patience", "1", *sizes]) == 0
    metrics = json.loads((sm_env / "neumf" / "metrics.json").read_text())
    assert metrics["best_epoch"] == 0 and metrics["refit"] is True
    for weights, file in (("model.pt", "model.pt"), ("selection.pt", "selection.pt")):
        gmf, _ = load_model(sm_env / "gmf", weights=weights)
        mlp, _ = load_model(sm_env / "mlp", weights=weights)
        blend = NeuMF(
            gmf.user_embedding.num_embeddings, gmf.item_embedding.num_embeddings, 8, (16, 8)
        )
        blend.load_pretrained(gmf, mlp, RECIPES["neumf-pretrained"]["alpha"])
        saved = torch.load(sm_env / "neumf" / file, weights_only=True)
        for name, value in blend.state_dict().items():
            torch.testing.assert_close(saved[name], value)
