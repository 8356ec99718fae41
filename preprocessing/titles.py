"""Movie titles for the items table: for people reading recommendations, never a model input.

Each MovieLens release ships a movies file beside its ratings (layouts in
``preprocessing.formats.TITLES_FORMATS``); He et al.'s benchmark files and synthetic data have
none, so their titles are null. Titles never stop a processing job: a missing or unreadable
movies file leaves them null, with a warning that names the file.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import replace
from pathlib import Path

import pandas as pd

from preprocessing.formats import TITLES_FORMATS
from preprocessing.split import Split

log = logging.getLogger(__name__)


def titles_file(ratings: Path, raw_format: str) -> Path | None:
    """The release's movies file, beside its ratings file; None for a layout that has none."""
    layout = TITLES_FORMATS.get(raw_format)
    return None if layout is None else ratings.with_name(layout.file_name)


def read_titles(path: Path, raw_format: str) -> pd.Series:
    """Titles indexed by MovieLens item id; OSError or ValueError when the file cannot be read.

    A file with a header is read by column name, so a reordered file cannot swap ids and titles.
    pandas reads a separator longer than one character as a regular expression, which only its
    python engine supports.
    """
    layout = TITLES_FORMATS[raw_format]
    columns = list(layout.columns) if layout.has_header else [0, 1]
    frame = pd.read_csv(
        path,
        sep=layout.separator,
        engine="c" if len(layout.separator) == 1 else "python",
        header=0 if layout.has_header else None,
        usecols=columns,
        dtype={columns[0]: "int64", columns[1]: str},
        encoding=layout.encoding,
        quoting=csv.QUOTE_MINIMAL if layout.has_header else csv.QUOTE_NONE,
        keep_default_na=False,  # a title such as "NA" or "None" is a title
    )
    titles = pd.Series(frame[columns[1]].to_numpy(), index=frame[columns[0]], name="title")
    return titles[~titles.index.duplicated()]


def load_titles(path: Path | None, raw_format: str) -> pd.Series | None:
    """:func:`read_titles`, or None (with a warning naming the file) when it cannot be read."""
    if path is None:
        return None
    try:
        return read_titles(path, raw_format)
    except (OSError, ValueError) as exc:  # missing, unreadable, undecodable, malformed
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        log.warning("no movie titles: cannot read %s (%s); the titles stay null", path, reason)
        return None


def with_titles(split: Split, titles: pd.Series | None) -> Split:
    """The split with each item's title where ``titles`` has one (null elsewhere)."""
    if titles is None:
        return split
    return replace(split, items=split.items.assign(title=split.items["item_id"].map(titles)))
