"""``python -m training`` under SageMaker's contract, in process: what it refuses before
training, and unsafe model archives (the runs that train are in integration/)."""

import os

import pytest
import torch

import training.__main__ as cli
from tests.helpers import FAST_FLAGS as FAST


def test_missing_training_channel(sm_env, monkeypatch, capsys):
    monkeypatch.delenv("SM_CHANNEL_TRAIN")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--model", "gmf"])
    assert exit_info.value.code == 2
    assert "SM_CHANNEL_TRAIN" in capsys.readouterr().err


def test_channel_without_a_processed_split(sm_env, monkeypatch, capsys):
    monkeypatch.setenv("SM_CHANNEL_TRAIN", str(sm_env))
    assert cli.main(["--model", "gmf", *FAST]) == 1
    assert "No manifest.json" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--learning-rate", "-0.1"], "learning_rate must be a positive number"),
        (["--layers", "0"], "every layer size must be >= 1"),
        (["--batch-size", "0"], "batch_size must be >= 1"),
        (["--seed", "-1"], "seed must be >= 0, got -1"),
        (["--seed", "20000000000000"], "seed must be < 2**32 = 4294967296, got 20000000000000"),
    ],
)
def test_out_of_range_hyperparameters_fail_before_training(sm_env, capsys, flags, message):
    output = sm_env / "sm-output"
    output.mkdir()
    os.environ["SM_OUTPUT_DIR"] = str(output)
    try:
        assert cli.main(["--model", "gmf", *flags]) == 2
    finally:
        del os.environ["SM_OUTPUT_DIR"]
    assert message in capsys.readouterr().err
    assert message in (output / "failure").read_text()


def test_gpu_true_without_cuda_fails_with_the_reason(sm_env, failure_file, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cli.main(["--model", "gmf", "--gpu", "true", *FAST]) == 1
    assert "--gpu true was asked for but PyTorch sees no CUDA device" in capsys.readouterr().err
    assert "--gpu true was asked for" in failure_file.read_text()


def test_model_archive_with_an_escaping_entry_is_refused(tmp_path):
    import io
    import tarfile

    from training.artifacts import ArtifactError, extract_model_archive

    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        payload = b"x"
        member = tarfile.TarInfo("../outside.txt")
        member.size = len(payload)
        tar.addfile(member, io.BytesIO(payload))
    with pytest.raises(ArtifactError, match=r"unsafe entry '\.\./outside\.txt'"):
        extract_model_archive(archive, tmp_path / "model")
    assert not (tmp_path / "outside.txt").exists()
