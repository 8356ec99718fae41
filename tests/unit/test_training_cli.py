"""``python -m training`` under SageMaker's contract, in process: the hyperparameters it would
train with, what it refuses before training, and unsafe model archives (the runs that train are
in integration/)."""

import json
import logging
import os
import re

import pytest
import torch

import training.__main__ as cli
import training.job
from tests.helpers import FAST_FLAGS as FAST
from training.config import MODELS, TrainConfig
from training.hyperparameters import hyperparameter_flags
from training.recipes import RECIPES
from training.sagemaker_contract import TrainingContract


@pytest.fixture
def trained_with(sm_env, monkeypatch):
    """Runs ``main`` and gives back the TrainConfig it would have trained with, instead of
    training."""
    configs = []

    def run_training(config, *args, **kwargs):
        configs.append(config)
        return {}  # no metrics

    monkeypatch.setattr(training.job, "run_training", run_training)

    def run(argv):
        assert cli.main(argv) == 0
        return configs.pop()

    return run


@pytest.mark.parametrize(
    ("argv", "recipe"), [([], TrainConfig.model)] + [(["--model", m], m) for m in MODELS]
)
def test_flags_left_out_take_the_models_recipe(trained_with, caplog, argv, recipe):
    with caplog.at_level(logging.INFO):
        assert trained_with(argv) == TrainConfig(**RECIPES[recipe])
    assert f"the {recipe} recipe" in caplog.text


def test_flags_given_win_over_the_recipe(trained_with):
    given = {
        "num_factors": 16,
        "layers": (32, 16, 8),
        "learning_rate": 0.01,
        "gpu": "false",
        "batch_size": 128,
    }
    config = trained_with(["--model", "gmf", *hyperparameter_flags(given)])
    assert config == TrainConfig(**RECIPES["gmf"] | given)


def test_script_mode_flags_with_underscores_are_read(trained_with):
    """SageMaker's training toolkit passes hyperparameters as ``--<key> <value>``, keys as given."""
    given = {"num_factors": 16, "learning_rate": 0.01, "batch_size": 128, "layers": (32, 16, 8)}
    argv = ["--model", "mlp"]
    for key, value in given.items():
        argv += [f"--{key}", " ".join(map(str, value)) if isinstance(value, tuple) else str(value)]
    assert trained_with(argv) == TrainConfig(**RECIPES["mlp"] | given)


@pytest.mark.parametrize(
    ("halves", "recipe"),
    [(("gmf", "mlp"), "neumf-pretrained"), (("gmf",), "neumf"), (("mlp",), "neumf")],
)
@pytest.mark.parametrize("passed_as", ["flags", "channels"])
def test_neumf_from_both_pretrained_halves_takes_the_fine_tuning_recipe(
    trained_with, monkeypatch, tmp_path, halves, recipe, passed_as
):
    argv = ["--model", "neumf"]
    for half in halves:
        if passed_as == "flags":
            argv += [f"--pretrained-{half}", str(tmp_path / half)]
        else:
            monkeypatch.setenv(f"SM_CHANNEL_{half.upper()}", str(tmp_path / half))
    assert trained_with(argv) == TrainConfig(**RECIPES[recipe])  # its learning rate and alpha


@pytest.mark.parametrize("model", MODELS)
def test_a_job_given_only_the_model_trains_its_recipe(trained_with, sm_env, model):
    (sm_env / "config").mkdir()
    # the SageMaker SDK writes every value JSON-encoded, so a string arrives quoted
    hyperparameters = {"model": json.dumps(model), "sagemaker_job_name": '"ncf"'}
    (sm_env / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    assert trained_with([]) == TrainConfig(**RECIPES[model])


def test_help_says_where_each_default_comes_from(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # no line breaks inside a flag's help
    shown = cli.build_parser(TrainingContract(tmp_path)).format_help()

    def default_of(flag):
        # the help follows the flag on its line, or on the next when the flag is long
        found = re.search(rf"^  {flag} .*?\s+.*\(default: (.*)\)$", shown, re.MULTILINE)
        return found.group(1)

    assert default_of("--alpha") == (
        f"the model's recipe: {RECIPES['neumf-pretrained']['alpha']} for neumf-pretrained; "
        f"else {TrainConfig.alpha}"
    )
    shown_rates = {}  # "the model's recipe: 0.002 for gmf; 0.003 for mlp, neumf; ..."
    for part in default_of("--learning-rate").removeprefix("the model's recipe: ").split("; "):
        value, recipes = part.split(" for ")  # no "else": every recipe sets it
        shown_rates |= dict.fromkeys(recipes.split(", "), float(value))
    assert shown_rates == {name: values["learning_rate"] for name, values in RECIPES.items()}
    assert default_of("--epochs") == str(TrainConfig.epochs)  # no recipe sets it
    assert default_of("--amp") == str(TrainConfig.amp).lower()


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
