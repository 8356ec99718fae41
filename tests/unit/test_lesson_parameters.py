"""Each lesson's parameter cell on a learner's machine: no NCF_DATA_DIR and no ../shared beside
the repository, so MovieLens comes from the official download into the main job's cache folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from preprocessing import datasets
from preprocessing.job import resolve_source
from tests.helpers import REPO

LESSONS = sorted((REPO / "notebooks").glob("0*.ipynb"))
READS_MOVIELENS = [lesson for lesson in LESSONS if "DATA_DIR" in lesson.read_text()]


def parameters(lesson: Path, repo: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Run the lesson's first code cell as JupyterLab would: from ``repo``/notebooks."""
    cells = json.loads(lesson.read_text())["cells"]
    first = next(cell for cell in cells if cell["cell_type"] == "code")
    (repo / "notebooks").mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(repo / "notebooks")
    namespace: dict = {}
    exec("".join(first["source"]), namespace)
    return namespace


def test_every_lesson_that_reads_movielens_is_checked():
    assert [lesson.name[:2] for lesson in READS_MOVIELENS] == ["02", "03", "04", "05", "06"]


@pytest.mark.parametrize("lesson", READS_MOVIELENS, ids=lambda path: path.name[:2])
def test_without_the_variable_a_lesson_downloads_into_data_cache(lesson, tmp_path, monkeypatch):
    monkeypatch.delenv("NCF_DATA_DIR", raising=False)
    repo = tmp_path / "clone"  # nothing beside it: no ../shared
    params = parameters(lesson, repo, monkeypatch)
    assert params["DATA_DIR"] is None
    assert Path(params["DATA_CACHE"]).resolve() == (repo / "data-cache").resolve()
    asked = []

    def fetch(name, cache_dir, *, progress=True, session=None):
        asked.append((name, Path(cache_dir)))
        return Path(cache_dir) / name / "u.data"

    monkeypatch.setattr(datasets, "fetch", fetch)  # no network: the path it would download to
    monkeypatch.setattr(datasets, "known_checksum_matches", lambda name, path: None)
    source = resolve_source("ml-100k", data_dir=params["DATA_DIR"], cache_dir=params["DATA_CACHE"])
    assert asked == [("ml-100k", params["DATA_CACHE"])]
    assert source.path.parent.parent.resolve() == (repo / "data-cache").resolve()


@pytest.mark.parametrize("lesson", READS_MOVIELENS, ids=lambda path: path.name[:2])
def test_the_variable_points_a_lesson_at_local_files(lesson, tmp_path, monkeypatch):
    local = tmp_path / "ml-100k"
    monkeypatch.setenv("NCF_DATA_DIR", str(local))
    params = parameters(lesson, tmp_path / "clone", monkeypatch)
    assert params["DATA_DIR"] == local  # a Path, as the loaders expect


def test_every_lesson_uses_the_one_store_and_mlflow_server_that_up_starts(tmp_path):
    """One MLflow store for the whole course: no lesson makes services of its own."""
    from orchestration.infra.services import COURSE_SERVICES, LocalServices
    from orchestration.lessons.services import course_services
    from orchestration.names import MLFLOW_PORT, S3_PORT

    for lesson in LESSONS:
        assert "LocalServices(" not in lesson.read_text(), lesson.name
    services = course_services(tmp_path)
    default = LocalServices(tmp_path / COURSE_SERVICES)
    assert (services.s3.port, services.mlflow.port) == (S3_PORT, MLFLOW_PORT)
    assert services.s3.folder == default.s3.folder == tmp_path / "runs" / "services" / "s3"
    assert services.mlflow.folder == default.mlflow.folder
