"""The lessons' stored outputs: made by the code shown, and readable.

scripts/execute_lessons.py (``make lessons``) stamps every code cell with the hash of the source
it ran; a cell edited since then no longer matches, so its outputs are not that code's."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from tests.helpers import REPO, load_script

execute_lessons = load_script("execute_lessons")

LESSONS = sorted((REPO / "notebooks").glob("0*.ipynb"))
MAX_LINES = 40


def code_cells(lesson: Path) -> list[tuple[int, dict]]:
    cells = json.loads(lesson.read_text())["cells"]
    return [(number, cell) for number, cell in enumerate(cells) if cell["cell_type"] == "code"]


def output_text(cell: dict) -> str:
    """What a reader sees of a cell's outputs, text parts only (images are not text)."""
    parts = []
    for output in cell.get("outputs", []):
        text = output.get("text") or output.get("data", {}).get("text/plain", "")
        parts.append("".join(text))
    return "".join(parts)


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda path: path.name[:2])
def test_every_stored_output_comes_from_the_source_shown(lesson):
    stale = execute_lessons.stale_cells(lesson)
    assert stale == [], f"{lesson.name}: cells {stale} changed since they ran: make lessons"


def test_a_cell_edited_after_its_run_or_never_run_is_caught(tmp_path):
    ran, edited = "print('ran')\n", "print('edited')\n"
    stamp = {"ncf": {"source_sha256": execute_lessons.source_sha256(ran)}}
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# a lesson"),
        nbformat.v4.new_code_cell(ran, metadata=stamp),
        nbformat.v4.new_code_cell(edited, metadata=stamp),  # its outputs came from `ran`
        nbformat.v4.new_code_cell("1 + 1"),  # never stamped
    ]
    nbformat.write(notebook, tmp_path / "lesson.ipynb")
    assert execute_lessons.stale_cells(tmp_path / "lesson.ipynb") == [2, 3]


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda path: path.name[:2])
def test_no_output_is_longer_than_a_screen_or_carries_terminal_colours(lesson):
    for number, cell in code_cells(lesson):
        text = output_text(cell)
        assert text.count("\n") <= MAX_LINES, f"{lesson.name} cell {number}: send logs to a file"
        assert "\x1b[" not in text, f"{lesson.name} cell {number}: ANSI escapes in its output"


ADDRESS = re.compile(r"\b(?!127\.0\.0\.1\b)\d{1,3}(?:\.\d{1,3}){3}\b")
# Where a learner's clone lives (not a container's /opt/ml or /tmp, nor an s3:// key).
HOST_PATH = re.compile(r"(?<![\w:/.])/(?:home|root|Users|work|mnt)/")


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda path: path.name[:2])
def test_outputs_name_no_folder_or_address_of_the_machine_they_ran_on(lesson):
    for number, cell in code_cells(lesson):
        text = output_text(cell)
        assert not HOST_PATH.search(text), f"{lesson.name} cell {number}: a path of this machine"
        assert not ADDRESS.search(text), f"{lesson.name} cell {number}: {ADDRESS.search(text)[0]}"
