"""The import-cycle check (scripts/import_graph.py): the project has none, and one is found."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import load_script

import_graph = load_script("import_graph")


def _package(root: Path, files: dict[str, str]) -> None:
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)


def test_the_project_packages_import_without_a_cycle(capsys):
    graph = import_graph.import_graph()
    assert "orchestration.main_job.cli" in graph  # every package is read, sub-packages included
    assert "training.recipes" in graph["orchestration.main_job.cli"]
    assert import_graph.find_cycle(graph) is None
    assert import_graph.main() == 0
    assert capsys.readouterr().out.startswith("no import cycle among")


def test_a_cycle_through_a_function_level_import_is_named(tmp_path, capsys):
    """The cycle the old main job had: a top-level import one way, a late import back."""
    _package(
        tmp_path,
        {
            "orchestration/__init__.py": "",
            "orchestration/course.py": "from orchestration.pipeline import run\n",
            "orchestration/pipeline.py": "def main():\n    from orchestration import course\n",
        },
    )
    cycle = import_graph.find_cycle(import_graph.import_graph(tmp_path))
    assert cycle is not None and cycle[0] == cycle[-1]
    assert set(cycle) == {"orchestration.course", "orchestration.pipeline"}
    assert import_graph.main([str(tmp_path)]) == 1
    assert "import cycle: orchestration." in capsys.readouterr().out


def test_relative_and_type_checking_imports(tmp_path):
    _package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/sub/__init__.py": "",
            "pkg/sub/a.py": "from .. import b\nfrom .c import thing\n",
            "pkg/b.py": "import typing\nif typing.TYPE_CHECKING:\n    from pkg.sub import a\n",
            "pkg/sub/c.py": "thing = 1\n",
        },
    )
    graph = import_graph.import_graph(tmp_path, ("pkg",))
    assert graph["pkg.sub.a"] == {"pkg.b", "pkg.sub.c"}
    assert graph["pkg.b"] == set()  # only a type checker follows that import
