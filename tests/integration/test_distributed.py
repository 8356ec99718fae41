"""Data-parallel training: two CPU ranks over gloo take the same steps as one process.

Each rank is a real ``python -m training`` subprocess with the contract the sagemaker-training
toolkit would set (SM_HOSTS, SM_CURRENT_HOST); MASTER_ADDR points the rendezvous at 127.0.0.1
because the SageMaker host names only resolve on docker's network.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

# 19 400 training positives: batches of 1021 leave a last batch of one row, so rank 1 gets an
# empty shard, and every full batch splits unevenly (511 + 510).
HYPERPARAMETERS = ["--model", "neumf", "--num-factors", "8", "--layers", "16", "8"]
HYPERPARAMETERS += ["--epochs", "6", "--patience", "6", "--batch-size", "1021"]
HYPERPARAMETERS += ["--learning-rate", "0.01", "--l2", "0.0001"]
# fp32: ranks and one process must agree to float rounding, which bf16 (autocast on CPUs with
# bf16 units) would swamp
HYPERPARAMETERS += ["--amp", "false"]
HOSTS = ["algo-2", "algo-1"]  # unsorted, as nothing promises otherwise; algo-1 is rank 0


def train_process(data, model_dir, env=(), checkpoints=None):
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "MASTER_"))}
    inherited |= {
        "SM_CHANNEL_TRAIN": str(data),
        "SM_MODEL_DIR": str(model_dir),
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",  # nothing listens: tracking turns off
        "TQDM_DISABLE": "1",
        "OMP_NUM_THREADS": "1",
    }
    args = ["--checkpoint-dir", str(checkpoints)] if checkpoints else []
    return subprocess.Popen(
        [sys.executable, "-m", "training", *HYPERPARAMETERS, *args],
        env=inherited | dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process, timeout=120):
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("a rank hung: the ranks left lockstep")
    return process.returncode, out, err


@pytest.fixture(scope="module")
def single(processed_dir, tmp_path_factory):
    """The one-process run every two-rank run must reproduce."""
    model_dir = tmp_path_factory.mktemp("single")
    code, _, err = finish(train_process(processed_dir, model_dir))
    assert code == 0, err
    return model_dir


@pytest.fixture
def two_ranks(processed_dir, tmp_path, free_port):
    """Starts both ranks of a job (model folders ``algo-1`` and ``algo-2``); kills leftovers."""
    started = []

    def launch(checkpoints=None):
        port = free_port()
        for host in sorted(HOSTS):
            env = {"SM_HOSTS": json.dumps(HOSTS), "SM_CURRENT_HOST": host}
            env |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
            started.append(train_process(processed_dir, tmp_path / host, env, checkpoints))
        return started[-2:]

    yield launch
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def assert_same_training(got, expected):
    a = json.loads((got / "metrics.json").read_text())
    b = json.loads((expected / "metrics.json").read_text())
    assert a["best_epoch"] == b["best_epoch"] and a["refit"] and b["refit"]
    for history in ("history", "refit_history"):
        losses = [[r["train_loss"] for r in m[history] if r["epoch"] > 0] for m in (a, b)]
        assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    for metric in ("test_hr@10", "test_ndcg@10", "val_ndcg@10", "selection_test_hr@10"):
        assert a[metric] == pytest.approx(b[metric], abs=0.02)
    for weights in ("model.pt", "selection.pt"):
        mine = torch.load(got / weights, weights_only=True)
        for name, value in torch.load(expected / weights, weights_only=True).items():
            torch.testing.assert_close(mine[name], value, rtol=0, atol=1e-4)


def test_two_ranks_match_one_process(two_ranks, single, tmp_path):
    results = [finish(rank) for rank in two_ranks()]
    for rank, (code, _, err) in enumerate(results):
        assert code == 0, err
        assert f"as rank {rank} of 2" in err
    assert_same_training(tmp_path / "algo-1", single)
    assert not (tmp_path / "algo-2").exists()  # only rank 0 writes the model folder
    # every rank returns the job's metrics
    assert json.loads(results[1][1])["best_epoch"] == json.loads(results[0][1])["best_epoch"]


def test_sigterm_to_one_rank_stops_both_and_both_resume(two_ranks, single, tmp_path):
    checkpoints = tmp_path / "checkpoints"
    primary, secondary = two_ranks(checkpoints)
    deadline = time.monotonic() + 300
    while not (checkpoints / "selection" / "checkpoint.pt").exists():
        assert time.monotonic() < deadline and primary.poll() is None, primary.stderr.read()
        time.sleep(0.05)
    secondary.send_signal(signal.SIGTERM)  # rank 0 hears of it only through the all_reduce
    for process in (primary, secondary):
        code, _, err = finish(process)
        assert code == 143, err
        assert "Start the job again with the same checkpoint dir" in err
    assert not (tmp_path / "algo-1").exists()

    for code, _, err in [finish(rank) for rank in two_ranks(checkpoints)]:
        assert code == 0, err
        assert "resuming from" in err
    assert_same_training(tmp_path / "algo-1", single)
