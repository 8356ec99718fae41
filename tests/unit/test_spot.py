"""The staged spot interruption against a stand-in Docker engine and job."""

from __future__ import annotations

import threading

import pytest

from orchestration.lessons import spot
from orchestration.names import IMAGES
from orchestration.sagemaker_local.session import LocalModeError


class _Container:
    def __init__(self, job_name, killed):
        self.attrs = {"Config": {"Env": ["OMP_NUM_THREADS=1", f"TRAINING_JOB_NAME={job_name}"]}}
        self.killed = killed
        self.signal = None

    def kill(self, signal):
        self.signal = signal
        self.killed.set()

    def wait(self, timeout):
        return {"StatusCode": 143}


class _Client:
    def __init__(self, running):
        self.running = running
        self.containers = self
        self.filters = None

    def list(self, filters):
        self.filters = filters
        return self.running


def test_job_is_stopped_after_its_first_checkpoint(tmp_path):
    killed = threading.Event()
    ours, other = _Container("ncf-spot", killed), _Container("ncf-other", threading.Event())
    client = _Client([other, ours])
    order = []

    def launch():
        (tmp_path / spot.FIRST_CHECKPOINT).parent.mkdir(parents=True)
        (tmp_path / spot.FIRST_CHECKPOINT).write_bytes(b"epoch 1")
        order.append("checkpointed")
        assert killed.wait(10), "never signalled"
        order.append("signalled")
        raise LocalModeError("exited with code 143")

    result = spot.interrupt(launch, "ncf-spot", tmp_path, client=client)
    assert result.exit_code == 143 and "143" in str(result.error)
    assert ours.signal == "SIGTERM" and other.signal is None  # only the named job
    assert client.filters == {"ancestor": IMAGES["training"]}
    assert order == ["checkpointed", "signalled"]


def test_a_stale_checkpoint_is_refused(tmp_path):
    (tmp_path / spot.FIRST_CHECKPOINT).parent.mkdir(parents=True)
    (tmp_path / spot.FIRST_CHECKPOINT).write_bytes(b"old")
    with pytest.raises(ValueError, match="empty checkpoint folder"):
        spot.interrupt(lambda: None, "ncf-spot", tmp_path, client=_Client([]))


def test_a_job_that_fails_before_its_first_checkpoint_is_reported_with_its_error(tmp_path):
    def launch():
        raise LocalModeError("the local-mode training job failed (exit code 1)")

    with pytest.raises(LocalModeError, match=r"ended before its first checkpoint .*exit code 1"):
        spot.interrupt(launch, "ncf-spot", tmp_path, client=_Client([]))


def test_a_job_that_ended_first_is_reported(tmp_path):
    checkpoint = tmp_path / "checkpoint.pt"
    checkpoint.write_bytes(b"x")
    with pytest.raises(LookupError, match="ended before"):
        spot.sigterm_after_checkpoint(_Client([]), "ncf-spot", checkpoint)


def test_no_checkpoint_times_out(tmp_path):
    with pytest.raises(TimeoutError):
        spot.sigterm_after_checkpoint(_Client([]), "j", tmp_path / "none.pt", timeout=0.1)
