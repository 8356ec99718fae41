"""``python -m preprocessing`` in process, as a learner and as a SageMaker processing job run it."""

import errno
import json
import logging
from pathlib import Path

import pandas as pd
import pytest

import preprocessing.__main__ as cli
from preprocessing.manifest import read_split
from preprocessing.synthetic import generate, write_raw


def test_real_movielens_100k(ml100k_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert (
        cli.main(["--dataset", "ml-100k", "--data-dir", str(ml100k_dir), "--output-dir", str(out)])
        == 0
    )
    printed = capsys.readouterr().out
    assert "100,000 data lines, 100,000 kept, 0 rejected" in printed
    assert "943 users, 1,682 items, 98,114 train, 943 validation, 943 test" in printed
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"]["official_checksum"] is True
    assert manifest["validation"]["rows_kept"] == 100_000
    assert read_split(out).test.negatives.shape == (943, 99)


def test_synthetic_needs_no_data(tmp_path):
    out = tmp_path / "out"
    argv = [
        "--dataset",
        "synthetic",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--output-dir",
        str(out),
    ]
    assert cli.main(argv) == 0
    assert read_split(out).n_users == 943
    assert (tmp_path / "cache" / "synthetic-ml-100k-seed0" / "ratings.csv").is_file()


@pytest.fixture
def dirty_ml100k(tmp_path):
    path = write_raw(generate(40, 200, 1_000, seed=1), tmp_path / "raw", "ml-100k")
    lines = path.read_text().splitlines()
    lines[4] = lines[4].replace("\t", ",")  # wrong separator on one line
    lines[9] = "7\tabc\t3\t881250949"  # non-integer item id
    path.write_text("\n".join(lines) + "\n")
    return path.parent


def test_bad_rows_fail_by_default_and_name_the_problem(dirty_ml100k, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--dataset", "ml-100k", "--data-dir", str(dirty_ml100k), "--output-dir", str(out)]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "wrong_column_count" in err and "line 5" in err
    assert "non_integer_item_id" in err and "line 10" in err
    assert "--policy drop" in err
    assert not (out / "manifest.json").exists()


def test_a_whole_file_problem_does_not_suggest_dropping_rows(tmp_path, capsys):
    raw = write_raw(generate(40, 200, 1_000, seed=1), tmp_path / "raw", "ml-100k")
    raw.write_text(raw.read_text().replace("\t", ","))  # a CSV where u.data should be
    out = tmp_path / "out"
    argv = ["--dataset", "ml-100k", "--data-dir", str(raw.parent), "--output-dir", str(out)]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "expected TAB-separated" in err and "','-separated" in err
    assert "cannot be read as --dataset ml-100k, so --policy drop would not help" in err
    assert not out.exists()


def test_drop_policy_keeps_every_bad_row_in_rejects(dirty_ml100k, tmp_path):
    out = tmp_path / "out"
    argv = ["--dataset", "ml-100k", "--data-dir", str(dirty_ml100k), "--output-dir", str(out)]
    assert cli.main([*argv, "--policy", "drop"]) == 0
    rejects = pd.read_csv(out / "rejects.csv")
    assert rejects.line.tolist()[:2] == [5, 10]
    assert set(rejects.rule) >= {"wrong_column_count", "non_integer_item_id"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rejects"] == {"path": "rejects.csv", "rows": len(rejects)}
    kept = manifest["validation"]["rows_kept"]
    assert kept + len(rejects) == 1_000


def test_drop_policy_that_rejects_every_line_says_so_and_keeps_the_rejects(tmp_path, capsys):
    raw = tmp_path / "raw" / "u.data"
    raw.parent.mkdir()
    raw.write_text("".join(f"1\t{item}\t9\t881250949\n" for item in range(1, 6)))
    out = tmp_path / "out"
    argv = ["--dataset", "ml-100k", "--data-dir", str(raw.parent), "--output-dir", str(out)]
    assert cli.main([*argv, "--policy", "drop"]) == 1
    err = capsys.readouterr().err
    assert "FAIL rating_out_of_range" in err
    assert (
        f"All 5 lines of {raw} were rejected; see the report above and {out / 'rejects.csv'}" in err
    )
    assert "so --policy drop would not help" in err
    assert pd.read_csv(out / "rejects.csv").rule.tolist() == ["rating_out_of_range"] * 5
    assert not (out / "manifest.json").exists()


def test_a_rerun_removes_the_outputs_of_the_earlier_run_and_nothing_else(dirty_ml100k, tmp_path):
    out = tmp_path / "out"
    argv = ["--dataset", "ml-100k", "--output-dir", str(out)]
    assert cli.main([*argv, "--data-dir", str(dirty_ml100k), "--policy", "drop"]) == 0
    (out / "notes.txt").write_text("mine")
    assert {"rejects.csv", "validation.parquet"} <= {path.name for path in out.iterdir()}
    clean = write_raw(generate(40, 200, 1_000, seed=2), tmp_path / "clean", "ml-100k").parent
    assert cli.main([*argv, "--data-dir", str(clean), "--no-validation"]) == 0
    assert sorted(path.name for path in out.iterdir()) == [
        "items.parquet",
        "manifest.json",
        "notes.txt",
        "test.parquet",
        "train.parquet",
        "users.parquet",
    ]


def test_a_modified_official_file_is_named_in_a_warning(tmp_path, caplog):
    raw = write_raw(generate(40, 200, 1_000, seed=1), tmp_path / "raw", "ml-100k")
    out = tmp_path / "out"
    argv = ["--dataset", "ml-100k", "--data-dir", str(raw.parent), "--output-dir", str(out)]
    with caplog.at_level(logging.WARNING, logger="preprocessing.job"):
        assert cli.main(argv) == 0
    assert f"{raw} differs from the official ml-100k release" in caplog.text
    assert "modified or cut short" in caplog.text
    assert json.loads((out / "manifest.json").read_text())["source"]["official_checksum"] is False


@pytest.mark.parametrize(
    ("flag", "where", "problem"),
    [
        ("--output-dir", "taken", "{taken} is a file, not a folder"),
        ("--output-dir", "taken/out", "{taken}/out cannot be created because {taken} is a file"),
        ("--cache-dir", "taken", "{taken} is a file, not a folder"),
    ],
    ids=["output-is-a-file", "output-under-a-file", "cache-is-a-file"],
)
def test_a_file_where_a_folder_belongs_is_refused_before_any_work(
    flag, where, problem, tmp_path, capsys
):
    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    folders = {"--output-dir": tmp_path / "out", "--cache-dir": tmp_path / "cache"}
    folders[flag] = tmp_path / where
    argv = ["--dataset", "synthetic", *(str(x) for pair in folders.items() for x in pair)]
    with pytest.raises(SystemExit) as stopped:
        cli.main(argv)
    assert stopped.value.code == 2
    assert f"{flag}: {problem.format(taken=taken)}; pass a folder" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()


def test_an_unreadable_ratings_file_is_named(tmp_path, capsys, monkeypatch):
    raw = write_raw(generate(40, 200, 1_000, seed=1), tmp_path / "raw", "ml-100k")
    read_bytes = Path.read_bytes

    def refuse(path: Path) -> bytes:
        if path == raw:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", refuse)
    argv = ["--dataset", "ml-100k", "--data-dir", str(raw.parent), "--output-dir", str(tmp_path)]
    assert cli.main(argv) == 1
    assert f"error: cannot use {raw}: Permission denied. Check" in capsys.readouterr().err


def test_sagemaker_processing_layout(ml100k_dir, tmp_path, monkeypatch):
    root = tmp_path / "opt-ml-processing"
    (root / "input" / "raw").mkdir(parents=True)
    for name in ("u.data",):
        (root / "input" / "raw" / name).symlink_to(ml100k_dir / name)
    monkeypatch.setattr(cli, "PROCESSING_ROOT", root)
    monkeypatch.setattr(cli, "PROCESSING_INPUT", root / "input" / "raw")
    monkeypatch.setattr(cli, "PROCESSING_OUTPUT", root / "output" / "processed")
    assert cli.main(["--dataset", "ml-100k", "--no-progress"]) == 0
    assert (root / "output" / "processed" / "manifest.json").is_file()


def test_unknown_dataset(tmp_path, capsys):
    assert cli.main(["--dataset", "ml-2m", "--output-dir", str(tmp_path)]) == 1
    assert "unknown dataset 'ml-2m'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--num-negatives", "0"], "--num-negatives must be >= 1"),
        (["--seed", "-1"], "--seed must be >= 0"),
    ],
)
def test_out_of_range_numbers_are_refused_by_name(flags, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main(["--dataset", "synthetic", "--output-dir", str(tmp_path / "out"), *flags])
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
