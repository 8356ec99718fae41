"""Run lessons top to bottom as a learner would and store their outputs, each code cell stamped
with the hash of the source that produced them (tests/unit/test_lesson_outputs.py checks it).

  NCF_PROFILE=full python scripts/execute_lessons.py notebooks/0*.ipynb     # make lessons

The stored outputs are the full profile's; set NCF_DATA_DIR where MovieLens cannot be downloaded.
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

CELL_TIMEOUT = 1800  # seconds; lesson 05's longest cell takes about a minute on 2 cores


def source_sha256(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()


def stale_cells(lesson: Path) -> list[int]:
    """The code cells whose source differs from the one their stored outputs came from (or that
    never ran through ``execute``)."""
    cells = nbformat.read(lesson, as_version=4).cells
    return [
        number
        for number, cell in enumerate(cells)
        if cell.cell_type == "code"
        and cell.metadata.get("ncf", {}).get("source_sha256") != source_sha256(cell.source)
    ]


def execute(lesson: Path) -> float:
    """Execute ``lesson`` in place from its own folder; returns the seconds it took."""
    notebook = nbformat.read(lesson, as_version=4)
    started = time.perf_counter()
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(lesson.parent)}},
    )
    client.execute()
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.metadata["ncf"] = {"source_sha256": source_sha256(cell.source)}
    nbformat.write(notebook, lesson)
    return time.perf_counter() - started


def main(argv: list[str]) -> int:
    for name in argv:
        print(f"{name}: {execute(Path(name).resolve()):.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
