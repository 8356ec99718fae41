"""The releases the downloader knows, and the lookup of unzipped copies (the downloader
against a real HTTP server is in integration/test_datasets.py)."""

from __future__ import annotations

import re

import pytest

from preprocessing import datasets
from preprocessing.datasets import DATASETS, fetch, known_checksum_matches, locate
from tests.helpers import RATINGS


def test_unknown_release_lists_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match="ml-100k, ml-1m"):
        fetch("ml-2m", tmp_path)


def test_every_release_comes_from_grouplens():
    assert datasets.BASE_URL == "https://files.grouplens.org/datasets/movielens"
    for name, spec in DATASETS.items():
        assert spec.name == name
        assert spec.url == f"{datasets.BASE_URL}/{name}.zip"
        assert spec.md5 is None or re.fullmatch(r"[0-9a-f]{32}", spec.md5)
    assert DATASETS["ml-10m"].archive_dir == "ml-10M100K"


@pytest.mark.needs_ml100k
def test_locate_accepts_the_folder_or_its_parent(ml100k_dir):
    for folder in (ml100k_dir, ml100k_dir.parent):
        assert locate("ml-100k", folder) == ml100k_dir / "u.data"
    assert known_checksum_matches("ml-100k", ml100k_dir / "u.data") is True


def test_locate_finds_a_release_whose_folder_is_renamed(tmp_path):
    ratings = tmp_path / "ml-10M100K" / "ratings.dat"
    ratings.parent.mkdir()
    ratings.write_bytes(RATINGS)
    assert locate("ml-10m", tmp_path) == ratings


def test_locate_failure_lists_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        locate("ml-1m", tmp_path)
    message = str(error.value)
    assert str(tmp_path / "ratings.dat") in message
    assert str(tmp_path / "ml-1m" / "ratings.dat") in message
    assert "ml-1m.zip" in message


def test_checksum_of_ratings_file(tmp_path):
    ratings = tmp_path / "u.data"
    ratings.write_bytes(RATINGS)
    assert known_checksum_matches("ml-100k", ratings) is False
    assert known_checksum_matches("ml-1m", ratings) is None
