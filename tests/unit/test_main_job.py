"""The main job's argument checks and its error exit, before or instead of any stage."""

import pytest

from orchestration.main_job.cli import main


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
