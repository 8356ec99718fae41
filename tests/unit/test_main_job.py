"""The main job's argument checks, its error exit, and what it shows while its stages run."""

import io
import json
import logging
import re
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pytest

from orchestration.main_job.cli import main
from orchestration.main_job.stages import TrainedModel
from preprocessing.schema import ITEMS, TABLE_FILES, USERS, write_table


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--dataset", "ml-2m"], "unknown dataset 'ml-2m'"),
        (["--dataset", "ncf-ml-1m"], "pass --data-dir"),
        (["--dataset", "ncf-ml-1m", "--data-dir", "."], "no ml-1m.train.rating, ml-1m.test"),
        (["--dataset", "ml-100k", "--data-dir", "no-such-folder"], "No u.data for ml-100k"),
        (["--epochs", "0"], "epochs must be >= 1, got 0"),
        (["--seed", "-3"], "seed must be >= 0, got -3"),
        (["--synthetic-shape", "ml-2m"], "invalid choice: 'ml-2m'"),
        (["--gpu", "maybe"], "invalid choice: 'maybe'"),
    ],
)
def test_bad_arguments_stop_before_any_stage(flags, message, tmp_path, capsys):
    work = tmp_path / "work"
    with pytest.raises(SystemExit) as stopped:
        main([*flags, "--work-dir", str(work), "--results-dir", str(tmp_path / "results")])
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err
    assert not work.exists()


def test_a_stage_that_fails_ends_the_job_with_its_message(tmp_path, capsys, monkeypatch):
    """A model whose scores overflow fails in the endpoint stage with an ArithmeticError."""
    from inference.recommender import NonFiniteScoresError
    from orchestration.main_job import cli

    def overflowing(args, backend):
        raise NonFiniteScoresError("scores of user 3 are not finite")

    monkeypatch.setattr(cli, "run_course", overflowing)
    work, results = tmp_path / "work", tmp_path / "results"
    argv = ["--mode", "processes", "--work-dir", str(work), "--results-dir", str(results)]
    assert main(argv) == 1
    assert "error: scores of user 3 are not finite" in capsys.readouterr().err


# --- the console: one line a stage, each stage's output in its log ------------------------------

LOGS = ("prepare-data", "train-gmf", "train-mlp", "train-neumf-pretrained", "evaluate", "recommend")


class FakeBackend:
    """Writes to stdout and stderr and logs, as the entry points, the SDK and containers do."""

    description = "a fake backend"

    def __init__(self, work_dir: Path, fail_on: str | None = None) -> None:
        self.work_dir = work_dir
        self.fail_on = fail_on

    def prepare(self, args):
        print("validation report: no line rejected")
        logging.getLogger("sagemaker.local.image").warning("docker compose file: services")
        processed = self.work_dir / "processed"
        processed.mkdir(parents=True)
        users = {"user": [0, 1], "user_id": [1, 2], "n_train": [3, 3]}
        users |= {"first_timestamp": [0, 0], "last_timestamp": [9, 9]}
        write_table(pa.table(users, schema=USERS), USERS, processed / TABLE_FILES["users"])
        items = {"item": [0, 1], "item_id": [1, 7], "n_train": [4, 2], "mean_rating": [4.0, 3.0]}
        items["title"] = ["Toy Story (1995)", None]
        write_table(pa.table(items, schema=ITEMS), ITEMS, processed / TABLE_FILES["items"])
        return processed

    def train(self, name, hyperparameters, pretrained):
        for epoch in range(1, 31):
            print(f"{name} epoch {epoch}")
        print(f"{name} warns on stderr", file=sys.stderr)
        if name == self.fail_on:
            raise RuntimeError(f"stage training failed for {name}")
        return TrainedModel(self.work_dir / name, str(self.work_dir / name))

    def recommend(self, model, users, k):
        items = [{"item_id": 1, "score": 2.5}, {"item_id": 7, "score": 1.0}]
        return [{"user_id": user, "items": items} for user in users]


def run_fake_course(tmp_path, monkeypatch, *flags, fail_on=None) -> tuple[int, Path]:
    """``ncf-course`` on the fake backend, each model scored HR@10 0.5 without evaluating it."""
    from orchestration.main_job import cli, stages

    work = tmp_path / "work"

    @contextmanager
    def fake_backend(mode, work_dir):
        yield FakeBackend(work_dir, fail_on)

    monkeypatch.setattr(cli, "open_backend", fake_backend)
    monkeypatch.setattr(stages, "evaluate_artifact", lambda folder, processed, k: {"hr@10": 0.5})
    argv = ["--dataset", "synthetic", "--work-dir", str(work)]
    return main([*argv, "--results-dir", str(tmp_path / "results"), *flags]), work


def test_each_stage_is_one_line_and_its_output_goes_to_its_log(tmp_path, monkeypatch, capsys):
    code, work = run_fake_course(tmp_path, monkeypatch)
    assert code == 0
    out, err = capsys.readouterr()
    staged = [line for line in out.splitlines() if line.startswith("[")]
    assert len(staged) == len(LOGS)
    for number, (line, log) in enumerate(zip(staged, LOGS, strict=True), start=1):
        logfile = re.escape(str(work / "logs" / f"{log}.log"))
        assert re.fullmatch(rf"\[{number}/6\] .+ \.\.\. \d+\.\d s, log {logfile}", line), line
    assert "epoch" not in out + err and "validation report" not in out + err
    assert "docker compose" not in out + err
    assert (work / "logs" / "prepare-data.log").read_text().splitlines() == [
        "validation report: no line rejected",
        "WARNING:sagemaker.local.image:docker compose file: services",
    ]
    trained = (work / "logs" / "train-gmf.log").read_text().splitlines()
    assert trained[-2:] == ["gmf epoch 30", "gmf warns on stderr"]
    assert "| 1 | 1 | Toy Story (1995) (1) | 2.50 |" in out  # title (item id), score
    assert "| 1 | 2 | 7 | 1.00 |" in out  # no title in the items table: the bare id
    payload = json.loads((tmp_path / "results" / "results.json").read_text())
    assert payload["recommendations"][0]["items"][0]["title"] == "Toy Story (1995)"


def test_a_failing_stage_shows_the_end_of_its_log(tmp_path, monkeypatch, capsys):
    from orchestration.main_job.console import TAIL_LINES

    code, work = run_fake_course(tmp_path, monkeypatch, fail_on="mlp")
    assert code == 1
    out, err = capsys.readouterr()
    logfile = work / "logs" / "train-mlp.log"
    failed, *tail = out.splitlines()[-TAIL_LINES - 1 :]
    where = re.escape(str(logfile))
    assert re.fullmatch(rf"\[3/6\] train mlp \.\.\. failed after \d+\.\d s, log {where}", failed)
    assert tail == [f"    {line}" for line in logfile.read_text().splitlines()[-TAIL_LINES:]]
    assert tail[-1] == "    mlp warns on stderr"
    assert "error: stage training failed for mlp" in err


def test_verbose_streams_every_stage_and_writes_no_logs(tmp_path, monkeypatch, capsys):
    code, work = run_fake_course(tmp_path, monkeypatch, "--verbose")
    assert code == 0
    out, err = capsys.readouterr()
    assert "validation report: no line rejected" in out and "gmf epoch 30" in out
    assert "mlp warns on stderr" in err
    assert re.search(r"^\[2/6\] train gmf: \d+\.\d s$", out, re.MULTILINE)
    assert not (work / "logs").exists()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_stage_line_counts_seconds_and_epochs_then_ends_as_usual(
    tmp_path, monkeypatch
):
    from orchestration.main_job import console

    monkeypatch.setattr(console, "TICK_SECONDS", 0.01)
    screen = _Terminal()
    shown = console.Console(1, tmp_path, screen)
    with shown.stage("train gmf", "train-gmf"):
        print("INFO epoch 3 train_loss=0.4")
        time.sleep(0.2)
    redraws = screen.getvalue().split("\r\x1b[K")
    assert any(re.fullmatch(r"\[1/1\] train gmf \.\.\. epoch 3, \d+ s", text) for text in redraws)
    log = re.escape(str(tmp_path / "train-gmf.log"))
    assert re.fullmatch(rf"\[1/1\] train gmf \.\.\. \d+\.\d s, log {log}\n", redraws[-1])


def test_off_a_terminal_the_stage_line_is_written_once(tmp_path, monkeypatch):
    from orchestration.main_job import console

    monkeypatch.setattr(console, "TICK_SECONDS", 0.01)
    screen = io.StringIO()
    with console.Console(1, tmp_path, screen).stage("train gmf", "train-gmf"):
        print("INFO epoch 3 train_loss=0.4")
        time.sleep(0.1)
    assert "\r" not in screen.getvalue() and "epoch" not in screen.getvalue()
