"""A lesson's processed split: a subprocess, its report in a log, one summary line shown."""

from __future__ import annotations

from orchestration.lessons.data import preprocess


def test_the_report_goes_to_the_log_and_its_summary_is_printed(tmp_path, capsys):
    log = tmp_path / "logs" / "preprocess.log"
    seconds = preprocess(
        tmp_path / "processed", "synthetic", data_dir=None, cache_dir=tmp_path / "cache", log=log
    )
    shown = capsys.readouterr().out.splitlines()
    assert len(shown) == 1 and shown[0].startswith("Validation of ratings.csv")
    assert "too_few_interactions" in log.read_text()  # the full report, rule by rule
    assert (tmp_path / "processed" / "manifest.json").is_file() and seconds > 0
