"""SageMaker's training contract as a bring-your-own container sees it: files under /opt/ml,
SM_* variables winning over them, and the checkpoints channel that local mode mounts."""

import json
from dataclasses import replace

import pytest

import training.__main__ as cli
from training.config import TrainConfig
from training.recipes import RECIPES
from training.sagemaker_contract import SINGLE_HOST, ContractError, TrainingContract


def write_config(root, name, content):
    folder = root / "input" / "config"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(content))


def byoc(root, **env):
    return TrainingContract.from_environment({"OPT_ML_ROOT": str(root), **env})


def test_channels_come_from_inputdataconfig(tmp_path):
    write_config(tmp_path, "inputdataconfig.json", {"train": {"TrainingInputMode": "File"}})
    contract = byoc(tmp_path)
    assert contract.channel("train") == tmp_path / "input" / "data" / "train"
    assert contract.channel("gmf") is None


def test_an_sm_channel_variable_wins(tmp_path):
    write_config(tmp_path, "inputdataconfig.json", {"train": {}})
    contract = byoc(tmp_path, SM_CHANNEL_TRAIN="/elsewhere", SM_CHANNEL_MLP="/mlp")
    assert str(contract.channel("train")) == "/elsewhere"
    assert str(contract.channel("mlp")) == "/mlp"


def test_a_missing_train_channel_names_the_channel(tmp_path):
    write_config(tmp_path, "inputdataconfig.json", {"validation": {}})
    with pytest.raises(ContractError, match=r"no 'train' channel.*SM_CHANNEL_TRAIN"):
        byoc(tmp_path).require_channel("train")


def test_hosts_come_from_resourceconfig(tmp_path):
    hosts = ["algo-2-ab12c", "algo-1-ab12c"]
    write_config(tmp_path, "resourceconfig.json", {"current_host": hosts[0], "hosts": hosts})
    cluster = byoc(tmp_path).cluster()
    assert cluster.hosts == ("algo-1-ab12c", "algo-2-ab12c")
    assert (cluster.rank, cluster.world_size, cluster.master) == (1, 2, "algo-1-ab12c")


@pytest.mark.parametrize("current", ["algo-1", '"algo-1"'])  # the toolkit's plain form, and JSON
def test_sm_hosts_win_over_resourceconfig(tmp_path, current):
    write_config(tmp_path, "resourceconfig.json", {"current_host": "b", "hosts": ["a", "b"]})
    cluster = byoc(
        tmp_path, SM_HOSTS='["algo-1", "algo-2", "algo-3"]', SM_CURRENT_HOST=current
    ).cluster()
    assert (cluster.current_host, cluster.rank, cluster.world_size) == ("algo-1", 0, 3)


def test_no_resourceconfig_is_a_single_host(tmp_path):
    assert byoc(tmp_path).cluster() == SINGLE_HOST
    assert SINGLE_HOST.world_size == 1


@pytest.mark.parametrize(
    ("env", "resources", "message"),
    [
        ({"SM_HOSTS": '["a"]'}, None, "SM_CURRENT_HOST is not"),
        ({"SM_HOSTS": "a,b", "SM_CURRENT_HOST": "a"}, None, "SM_HOSTS is not valid JSON"),
        ({"SM_HOSTS": '["a"]', "SM_CURRENT_HOST": "c"}, None, "'c' is not in"),
        ({}, {"hosts": ["a"]}, "lacks 'hosts' or 'current_host'"),
    ],
)
def test_a_broken_host_list_is_a_clear_error(tmp_path, env, resources, message):
    if resources is not None:
        write_config(tmp_path, "resourceconfig.json", resources)
    with pytest.raises(ContractError, match=message):
        byoc(tmp_path, **env).cluster()


def test_model_and_output_folders_exist_or_are_none(tmp_path):
    assert byoc(tmp_path).model_dir() is None
    assert byoc(tmp_path).output_dir() is None
    (tmp_path / "model").mkdir()
    (tmp_path / "output" / "data").mkdir(parents=True)
    contract = byoc(tmp_path)
    assert contract.model_dir() == tmp_path / "model"
    assert contract.output_dir() == tmp_path / "output"
    assert contract.output_data_dir() == tmp_path / "output" / "data"
    assert str(byoc(tmp_path, SM_MODEL_DIR="/m").model_dir()) == "/m"


def test_checkpoints_channel_then_cloud_folder_then_none(tmp_path):
    assert byoc(tmp_path).checkpoint_dir() is None
    (tmp_path / "checkpoints").mkdir()
    assert byoc(tmp_path).checkpoint_dir() == tmp_path / "checkpoints"
    write_config(tmp_path, "inputdataconfig.json", {"train": {}, "checkpoints": {}})
    assert byoc(tmp_path).checkpoint_dir() == tmp_path / "input" / "data" / "checkpoints"


def test_the_checkpoint_flag_wins_over_the_channel(tmp_path):
    write_config(tmp_path, "inputdataconfig.json", {"checkpoints": {}})
    parser = cli.build_parser(byoc(tmp_path))
    channel = tmp_path / "input" / "data" / "checkpoints"
    assert parser.parse_args([]).checkpoint_dir == channel
    assert str(parser.parse_args(["--checkpoint-dir", "/ck"]).checkpoint_dir) == "/ck"


def test_the_job_name_names_the_mlflow_run(tmp_path):
    parser = cli.build_parser(byoc(tmp_path, TRAINING_JOB_NAME="ncf-2026-11-24"))
    assert parser.parse_args([]).run_name == "ncf-2026-11-24"


def test_flags_left_out_give_the_default_models_recipe(tmp_path):
    parser = cli.build_parser(byoc(tmp_path))
    recipe = TrainConfig(**RECIPES[TrainConfig.model])
    assert cli.config_from_args(parser.parse_args([])) == recipe
    chosen = cli.config_from_args(parser.parse_args(["--layers", "32,16", "8", "--alpha", "0.6"]))
    assert chosen == replace(recipe, layers=(32, 16, 8), alpha=0.6)
    latest = cli.config_from_args(parser.parse_args(["--latest-weight", "7", "--latest-span", "3"]))
    assert latest == replace(recipe, latest_weight=7.0, latest_span=3.0)
