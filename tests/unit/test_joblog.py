"""Captured job output stays on disk, also when the job fails."""

from __future__ import annotations

import logging
import os
import sys

import pytest

from orchestration.lessons.joblog import captured, capturing_log, matching_lines


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


def test_a_child_process_is_handed_the_open_log_and_nothing_outside(tmp_path, capsys):
    logfile = tmp_path / "job.log"
    assert capturing_log() is None
    with captured(logfile):
        log = capturing_log()
        print("before the child")
        log.flush()
        os.write(log.fileno(), b"the child's line\n")  # what a subprocess given it writes
    assert capturing_log() is None
    assert logfile.read_text() == "before the child\nthe child's line\n"
    with captured(None):
        print("on the screen")
        assert capturing_log() is None
    assert capsys.readouterr().out == "on the screen\n"


def test_matching_lines_pick_what_a_lesson_points_at(tmp_path):
    logfile = tmp_path / "job.log"
    logfile.write_text("algo-1 | training gmf as rank 0 of 2\nepoch 1\nalgo-2 | rank 1 of 2\n")
    assert matching_lines(logfile, "rank") == [
        "algo-1 | training gmf as rank 0 of 2",
        "algo-2 | rank 1 of 2",
    ]


def test_matching_lines_take_several_texts_and_drop_compose_colours(tmp_path):
    logfile = tmp_path / "job.log"
    logfile.write_text(
        "\x1b[36malgo-1 |\x1b[0m epoch 1\nnoise\n\x1b[33malgo-2 |\x1b[0m View run x\n"
    )
    assert matching_lines(logfile, "epoch", "View run") == [
        "algo-1 | epoch 1",
        "algo-2 | View run x",
    ]
