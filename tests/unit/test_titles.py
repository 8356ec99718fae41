"""Movie titles: each release's movies file, the items table's title column, and no failure
when the file is missing or unreadable."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from preprocessing.job import resolve_source, run_preprocessing
from preprocessing.manifest import read_split
from preprocessing.synthetic import write_raw
from preprocessing.titles import load_titles, read_titles

ACCENTED = "Misérables, Les (1995)"


def u_item_line(item_id: int, title: str) -> str:
    """One line of ML-100K's u.item: 24 pipe-separated fields, 19 of them genre flags."""
    return "|".join([str(item_id), title, "01-Jan-1995", "", "http://us.imdb.com/M", *"0" * 19])


@pytest.mark.parametrize(
    ("raw_format", "name", "text", "encoding"),
    [
        (
            "ml-100k",
            "u.item",
            f"{u_item_line(1, 'Toy Story (1995)')}\n{u_item_line(543, ACCENTED)}\n",
            "latin-1",
        ),
        (
            "ml-1m",
            "movies.dat",
            f"1::Toy Story (1995)::Animation|Children's|Comedy\n543::{ACCENTED}::Drama\n",
            "latin-1",
        ),
        (
            "ml-10m",
            "movies.dat",
            f"1::Toy Story (1995)::Animation|Children's|Comedy\n543::{ACCENTED}::Drama\n",
            "latin-1",
        ),
        (
            "ml-csv",
            "movies.csv",
            f'movieId,title,genres\n1,Toy Story (1995),Animation\n543,"{ACCENTED}",Drama\n',
            "utf-8",
        ),
    ],
)
def test_each_release_layout_gives_titles_by_item_id(tmp_path, raw_format, name, text, encoding):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    titles = read_titles(path, raw_format)
    assert titles.to_dict() == {1: "Toy Story (1995)", 543: ACCENTED}


def test_movies_dat_titles_keep_single_colons(tmp_path):
    path = tmp_path / "movies.dat"
    path.write_bytes(b"260::Star Wars: Episode IV - A New Hope (1977)::Action|Sci-Fi\n")
    assert read_titles(path, "ml-1m")[260] == "Star Wars: Episode IV - A New Hope (1977)"


def test_csv_titles_are_read_by_column_name_and_kept_verbatim(tmp_path):
    path = tmp_path / "movies.csv"
    path.write_text(
        'genres,title,movieId\nComedy,"American President, The (1995)",11\nDrama,NA,2\n'
    )
    assert read_titles(path, "ml-csv").to_dict() == {11: "American President, The (1995)", 2: "NA"}


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "No such file or directory"),
        (b"id,name\n1,Toy Story (1995)\n", "Usecols do not match columns"),
        (b"movieId,title\none,Toy Story (1995)\n", "'one'"),
        ("movieId,title\n1,Misérables\n".encode("latin-1"), "utf-8"),
    ],
)
def test_a_missing_or_unreadable_file_gives_no_titles_and_a_warning(
    tmp_path, caplog, content, reason
):
    path = tmp_path / "movies.csv"
    if content is not None:
        path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="preprocessing.titles"):
        assert load_titles(path, "ml-csv") is None
    assert str(path) in caplog.text
    assert reason in caplog.text


def _processed(tmp_path: Path, interactions, titles: str | None) -> tuple[dict, Path]:
    """A ML-100K-shaped raw folder (``u.item`` only when ``titles`` is given), processed."""
    raw = tmp_path / "raw"
    write_raw(interactions, raw, "ml-100k")
    if titles is not None:
        (raw / "u.item").write_bytes(titles.encode("latin-1"))
    source = resolve_source("ml-100k", data_dir=raw, cache_dir=tmp_path / "cache")
    manifest = run_preprocessing(source, tmp_path / "processed", num_negatives=5).manifest
    return manifest, tmp_path / "processed"


def test_the_items_table_carries_the_titles_the_file_has(tmp_path, small_interactions):
    titles = f"{u_item_line(1, 'Toy Story (1995)')}\n{u_item_line(2, ACCENTED)}\n"
    manifest, processed = _processed(tmp_path, small_interactions, titles)
    items = read_split(processed).items.set_index("item_id")["title"]
    assert items[1] == "Toy Story (1995)" and items[2] == ACCENTED
    assert items.drop([1, 2]).isna().all()  # items the file does not list stay null
    assert manifest["source"]["titles"] == str(tmp_path / "raw" / "u.item")


def test_preprocessing_without_a_titles_file_warns_and_goes_on(
    tmp_path, small_interactions, caplog
):
    with caplog.at_level(logging.WARNING, logger="preprocessing.titles"):
        manifest, processed = _processed(tmp_path, small_interactions, None)
    assert str(tmp_path / "raw" / "u.item") in caplog.text
    assert read_split(processed).items["title"].isna().all()
    assert manifest["source"]["titles"] is None


def test_synthetic_data_has_no_titles_and_no_warning(tmp_path, caplog):
    source = resolve_source("synthetic", data_dir=None, cache_dir=tmp_path)
    assert source.titles is None
    with caplog.at_level(logging.WARNING, logger="preprocessing.titles"):
        run_preprocessing(source, tmp_path / "processed", num_negatives=5)
    assert read_split(tmp_path / "processed").items["title"].isna().all()
    assert "titles" not in caplog.text


def test_real_movielens_100k_titles(ml100k_dir, tmp_path):
    source = resolve_source("ml-100k", data_dir=ml100k_dir, cache_dir=tmp_path)
    run_preprocessing(source, tmp_path / "processed")
    items = read_split(tmp_path / "processed").items.set_index("item_id")["title"]
    assert len(items) == 1682 and items.notna().all()
    assert items[1] == "Toy Story (1995)"
    assert items[543] == ACCENTED  # a latin-1 byte in u.item
