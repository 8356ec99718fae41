"""The raw rating file layouts this course reads: the MovieLens releases and He et al.'s files.

A ``RawFormat`` says how a family of files is laid out (file name, separator, header, columns)
and which values are legal in it (the lowest id, the rating range and step). The reader, the
rules, the dataset catalogue and the synthetic generator all take the layout from here, so what
the generator writes is what the reader expects.
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


def find_format(name: str) -> RawFormat:
    """The layout called ``name``; an unknown name lists the known ones."""
    if name not in RAW_FORMATS:
        raise ValueError(f"unknown format {name!r}: choose one of {', '.join(RAW_FORMATS)}")
    return RAW_FORMATS[name]


def separator_name(separator: str) -> str:
    return "TAB" if separator == "\t" else f"{separator!r}"
