"""The synthetic generator keeps MovieLens' shape, its planted structure and real file layouts."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from preprocessing import synthetic
from preprocessing.ratings import load_ratings
from preprocessing.schema import RAW_COLUMNS
from preprocessing.synthetic import generate, planted_clusters, write_raw

SHAPE = synthetic.SHAPES["ml-100k"]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return generate(*SHAPE, seed=0)


@pytest.fixture(scope="module")
def own_cluster(frame: pd.DataFrame) -> np.ndarray:
    """Whether each interaction's item is in its user's taste cluster."""
    users, items = planted_clusters(*SHAPE[:2], seed=0)
    return items[frame["item_id"] - 1] == users[frame["user_id"] - 1]


def _latest(frame: pd.DataFrame) -> np.ndarray:
    """A mask of each user's latest interaction, as leave-one-out holds it out."""
    return frame.index.isin(frame.groupby("user_id")["timestamp"].idxmax())


def test_columns_dtypes_and_exact_count(frame):
    assert dict(frame.dtypes.astype(str)) == RAW_COLUMNS
    assert list(frame.columns) == list(RAW_COLUMNS)
    assert len(frame) == SHAPE[2]


def test_ids_are_one_based_and_pairs_unique(frame):
    n_users, n_items, _ = SHAPE
    assert frame["user_id"].min() == 1 and frame["user_id"].max() == n_users
    assert frame["user_id"].nunique() == n_users
    assert frame["item_id"].between(1, n_items).all()
    assert not frame.duplicated(["user_id", "item_id"]).any()


def test_every_user_has_twenty_and_lengths_are_heavy_tailed(frame):
    lengths = frame.groupby("user_id").size()
    assert lengths.min() >= synthetic.MIN_HISTORY
    assert lengths.max() > 5 * lengths.median()
    assert lengths.max() <= SHAPE[1] // 2


def test_item_popularity_is_a_power_law(frame):
    counts = frame["item_id"].value_counts().to_numpy()
    top_tenth = counts[: SHAPE[1] // 10].sum() / len(frame)
    assert top_tenth > 0.3  # 10% of items would hold 10% without a popular head
    assert counts[0] > 10 * np.median(counts)


def test_same_seed_same_frame_other_seed_other_frame():
    small = (50, 200, 3000)
    pd.testing.assert_frame_equal(generate(*small, seed=7), generate(*small, seed=7))
    assert not generate(*small, seed=7).equals(generate(*small, seed=8))


def test_users_mostly_stay_in_their_cluster(frame, own_cluster):
    users, items = planted_clusters(*SHAPE[:2], seed=0)
    shuffled = np.random.default_rng(1).permutation(users)
    chance = np.mean(items[frame["item_id"] - 1] == shuffled[frame["user_id"] - 1])
    assert chance < 0.15
    assert own_cluster.mean() > 3 * chance
    assert own_cluster[_latest(frame)].mean() > 3 * chance


def test_ratings_follow_taste(frame, own_cluster):
    assert set(frame["rating"].unique()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    ratings = frame["rating"]
    assert ratings[own_cluster].mean() > ratings[~own_cluster].mean() + 0.3
    assert 3.2 < ratings.mean() < 3.8  # MovieLens averages about 3.5


def test_half_stars_when_asked():
    ratings = generate(100, 300, 5000, half_stars=True)["rating"]
    assert set(ratings.unique()) <= set(np.arange(1, 11) / 2)
    assert (ratings % 1 == 0.5).any()


def test_timestamps_increase_per_user_within_the_window(frame):
    assert (frame.groupby("user_id")["timestamp"].diff().dropna() > 0).all()
    assert frame["timestamp"].min() >= synthetic.TIME_START
    assert frame["timestamp"].max() < synthetic.TIME_END


def test_dense_corner_cases_fill_exactly():
    dense = generate(5, 30, 5 * 29)  # every user sees all items but one
    assert (dense.groupby("user_id").size() == 29).all()
    minimal = generate(3, 21, 60)
    assert (minimal.groupby("user_id").size() == 20).all()


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((0, 100, 100), {}, "n_users must be at least 1"),
        ((10, 20, 200), {}, "n_items must be more than 20"),
        ((10, 100, 199), {}, r"at least 20 \* n_users = 200"),
        ((10, 100, 991), {}, "at most 990"),
        ((10, 100, 500), {"n_clusters": 0}, "n_clusters"),
        ((10, 100, 500), {"n_clusters": 101}, "n_clusters"),
        ((10, 100, 500), {"own_cluster_share": 1.0}, "own_cluster_share"),
    ],
)
def test_impossible_arguments_are_explained(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate(*args, **kwargs)


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    return generate(30, 100, 1000, seed=3, half_stars=True)


def _first_line(path: Path) -> str:
    with path.open("rb") as file:
        return file.readline().decode()


def test_ml100k_layout_is_tab_separated_without_header(tmp_path):
    whole = generate(30, 100, 1000, seed=3)
    path = write_raw(whole, tmp_path, "ml-100k")
    row = next(whole.itertuples(index=False))
    assert path == tmp_path / "u.data"
    assert _first_line(path) == (
        f"{row.user_id}\t{row.item_id}\t{int(row.rating)}\t{row.timestamp}\n"
    )


@pytest.mark.needs_ml100k
def test_ml100k_layout_matches_the_real_file(ml100k_dir, tmp_path):
    line = re.compile(r"\d+\t\d+\t[1-5]\t\d{9}\n")
    assert line.fullmatch(_first_line(ml100k_dir / "u.data"))
    assert line.fullmatch(_first_line(write_raw(generate(30, 100, 1000), tmp_path, "ml-100k")))


def test_ml10m_layout_uses_double_colons(small, tmp_path):
    path = write_raw(small, tmp_path, "ml-10m")
    row = next(small.itertuples(index=False))
    assert path == tmp_path / "ratings.dat"
    assert _first_line(path) == f"{row.user_id}::{row.item_id}::{row.rating:g}::{row.timestamp}\n"
    data = path.read_bytes()
    assert b"\t" not in data
    assert re.search(rb"::[0-4]\.5::", data)  # half stars as in ML-10M
    assert b".0::" not in data  # whole stars as "4", as GroupLens writes them


def test_csv_layout_has_movielens_header_and_one_decimal(small, tmp_path):
    path = write_raw(small, tmp_path, "ml-csv")
    lines = path.read_text().splitlines()
    assert path == tmp_path / "ratings.csv"
    assert lines[0] == "userId,movieId,rating,timestamp"
    assert all(re.fullmatch(r"\d+,\d+,[0-5]\.[05],\d+", line) for line in lines[1:])
    assert not list(tmp_path.glob("*.part"))


def test_writer_refuses_what_movielens_cannot_hold(small, tmp_path):
    with pytest.raises(ValueError, match="raw_format"):
        write_raw(small, tmp_path, "ml-25m")
    off_grid = small.assign(rating=np.float32(3.3))
    with pytest.raises(ValueError, match="half steps"):
        write_raw(off_grid, tmp_path, "ml-csv")


@pytest.mark.parametrize("raw_format", ["ml-100k", "ml-1m"])
def test_whole_star_layouts_refuse_half_stars(small, tmp_path, raw_format):
    with pytest.raises(
        ValueError,
        match=f"The {raw_format} layout holds whole stars only.*"
        "Write them as ml-10m or ml-csv, which hold half stars",
    ):
        write_raw(small, tmp_path, raw_format)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("raw_format", "loader_format", "half_stars"),
    [
        ("ml-100k", "ml-100k", False),
        ("ml-1m", "ml-1m", False),
        ("ml-10m", "ml-10m", True),
        ("ml-csv", "ml-csv", True),
    ],
)
def test_the_project_loader_reads_what_is_written(raw_format, loader_format, half_stars, tmp_path):
    frame = generate(30, 100, 1000, seed=5, half_stars=half_stars)
    loaded = load_ratings(write_raw(frame, tmp_path, raw_format), loader_format)
    pd.testing.assert_frame_equal(loaded.interactions, frame)


def test_scaled_shape_is_a_release_at_its_size_and_between_them_in_between():
    for shape in synthetic.SHAPES.values():
        assert synthetic.scaled_shape(shape[2]) == shape
    users, items, n = synthetic.scaled_shape(300_000)  # between ML-100K and ML-1M
    assert 943 < users < 6040 and 1682 < items < 3706 and n == 300_000


@pytest.mark.parametrize("n", [20, 21, 100, 2_000, 5_000, 10**8])
def test_scaled_shape_is_always_one_generate_accepts(n):
    users, items, total = synthetic.scaled_shape(n)
    assert total == n
    assert synthetic.MIN_HISTORY * users <= n <= users * (items - 1)
    if n <= 5_000:
        assert len(generate(users, items, n)) == n


def test_scaled_shape_needs_one_users_ratings():
    with pytest.raises(ValueError, match="at least MIN_HISTORY = 20"):
        synthetic.scaled_shape(19)
