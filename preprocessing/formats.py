"""The raw file layouts this course reads: the MovieLens releases and He et al.'s files.

A ``RawFormat`` says how a family of ratings files is laid out (file name, separator, header,
columns) and which values are legal in it (the lowest id, the rating range and step). The reader,
the rules, the dataset catalogue and the synthetic generator all take the layout from here, so
what the generator writes is what the reader expects. A ``TitlesFormat`` says the same of the
movies file a release ships beside its ratings (:mod:`preprocessing.titles` reads it).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RawFormat:
    """How one family of raw files is laid out, and which values are legal in it."""

    name: str
    file_name: str
    separator: str
    has_header: bool
    columns: tuple[str, ...]  # as the file (or its README) names them
    min_id: int = 1
    rating_range: tuple[float, float] = (1.0, 5.0)
    rating_step: float = 1.0

    def describe(self) -> str:
        """The layout in words, for messages that tell the learner what the file should be."""
        shown = (
            self.columns if len(self.columns) <= 4 else (*self.columns[:2], "...", self.columns[-1])
        )
        return f"{separator_name(self.separator)}-separated {' '.join(shown)}"


RAW_FORMATS = {
    raw_format.name: raw_format
    for raw_format in (
        RawFormat("ml-100k", "u.data", "\t", False, ("user_id", "item_id", "rating", "timestamp")),
        RawFormat(
            "ml-1m", "ratings.dat", "::", False, ("UserID", "MovieID", "Rating", "Timestamp")
        ),
        # ML-10M has ml-1m's layout but half-star ratings.
        RawFormat(
            "ml-10m",
            "ratings.dat",
            "::",
            False,
            ("UserID", "MovieID", "Rating", "Timestamp"),
            rating_range=(0.5, 5.0),
            rating_step=0.5,
        ),
        RawFormat(
            "ml-csv",
            "ratings.csv",
            ",",
            True,
            ("userId", "movieId", "rating", "timestamp"),
            rating_range=(0.5, 5.0),
            rating_step=0.5,
        ),
        # He et al.'s <name>.train.rating / <name>.test.rating: 0-based ids.
        RawFormat(
            "ncf-rating",
            "<name>.train.rating or <name>.test.rating",
            "\t",
            False,
            ("user", "item", "rating", "timestamp"),
            min_id=0,
        ),
    )
}


@dataclass(frozen=True)
class TitlesFormat:
    """How a release's movies file is laid out: the item id and the title are its first two
    fields. Only files with a header quote their fields (a title with a comma is quoted there)."""

    file_name: str
    separator: str
    encoding: str
    columns: tuple[str, str]  # the id and title columns, as the file (or its README) names them
    has_header: bool


# ML-10M's movies.dat has ML-1M's layout and is read the same way. latin-1 decodes any byte, so a
# wrong guess of the encoding garbles an accent but never fails the job.
_MOVIES_DAT = TitlesFormat("movies.dat", "::", "latin-1", ("MovieID", "Title"), has_header=False)

# Keyed like RAW_FORMATS: a ratings layout's name gives the movies file of the same release.
TITLES_FORMATS = {
    "ml-100k": TitlesFormat(
        "u.item", "|", "latin-1", ("movie id", "movie title"), has_header=False
    ),
    "ml-1m": _MOVIES_DAT,
    "ml-10m": _MOVIES_DAT,
    "ml-csv": TitlesFormat("movies.csv", ",", "utf-8", ("movieId", "title"), has_header=True),
}


def find_format(name: str) -> RawFormat:
    """The layout called ``name``; an unknown name lists the known ones."""
    if name not in RAW_FORMATS:
        raise ValueError(f"unknown format {name!r}: choose one of {', '.join(RAW_FORMATS)}")
    return RAW_FORMATS[name]


def separator_name(separator: str) -> str:
    return "TAB" if separator == "\t" else f"{separator!r}"
