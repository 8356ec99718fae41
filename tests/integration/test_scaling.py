"""Lesson 02's preprocessing timings: every generated rating is counted, each stage timed."""

from __future__ import annotations

import pytest

from orchestration.lessons.scaling import preprocessing_scaling
from preprocessing.manifest import read_split

SIZES = [2_000, 5_000]


@pytest.fixture(scope="module")
def scaling(tmp_path_factory):
    work = tmp_path_factory.mktemp("scaling")
    return work, preprocessing_scaling(SIZES, work, seed=3)


def test_every_generated_rating_is_loaded_and_written(scaling):
    work, table = scaling
    # Synthetic users have at least 20 ratings and no bad lines: the loader keeps every one.
    assert table["ratings"].tolist() == SIZES
    assert table["rows"].tolist() == SIZES
    for size in SIZES:
        split = read_split(work / f"ratings-{size}" / "processed")
        held_out = len(split.test.frame) + len(split.validation.frame)
        assert len(split.train) + held_out == size


def test_stages_are_timed_and_the_peak_measured(scaling):
    _, table = scaling
    stages = table[["load_validate_s", "split_s", "write_s"]]
    assert (stages > 0).all().all()
    assert table["total_s"].tolist() == pytest.approx(stages.sum(axis=1).tolist())
    # The child's own peak: the interpreter with pandas and pyarrow is tens of MB at least.
    assert (table["peak_rss_mb"] > 50).all()


def test_the_peak_is_the_childs_own_not_its_parents(tmp_path):
    # Linux's ru_maxrss would hand a child its parent's peak: 400 MB of ballast would show.
    ballast = b"x" * (400 * 2**20)
    table = preprocessing_scaling([2_000], tmp_path)
    assert len(ballast) and table["peak_rss_mb"].item() < 300


def test_no_sizes_is_refused(tmp_path):
    with pytest.raises(ValueError, match="sizes is empty"):
        preprocessing_scaling([], tmp_path)
