"""Captured job output stays on disk, also when the job fails."""

from __future__ import annotations

import logging
import sys

import pytest

from orchestration.lessons.joblog import captured, matching_lines


def test_output_and_log_records_go_to_the_file_even_on_failure(tmp_path, capsys):
    logfile = tmp_path / "logs" / "job.log"
    root = logging.getLogger()
    screen = logging.StreamHandler(sys.stderr)  # made before, as the SDK's import does
    root.addHandler(screen)
    try:
        with pytest.raises(RuntimeError), captured(logfile):
            print("epoch 1")
            sys.stderr.write("warning\n")
            logging.getLogger("sagemaker").error("Creating training-job")
            raise RuntimeError("job failed")
        assert screen in root.handlers  # put back afterwards
    finally:
        root.removeHandler(screen)
    assert logfile.read_text() == "epoch 1\nwarning\nERROR:sagemaker:Creating training-job\n"
    assert capsys.readouterr() == ("", "")


def test_matching_lines_pick_what_a_lesson_points_at(tmp_path):
    logfile = tmp_path / "job.log"
    logfile.write_text("algo-1 | training gmf as rank 0 of 2\nepoch 1\nalgo-2 | rank 1 of 2\n")
    assert matching_lines(logfile, "rank") == [
        "algo-1 | training gmf as rank 0 of 2",
        "algo-2 | rank 1 of 2",
    ]
