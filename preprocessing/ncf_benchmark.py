"""He et al.'s NCF benchmark files, read as published so results compare with the paper's.

Each dataset is three files: ``<name>.train.rating`` and ``<name>.test.rating`` (read like any
ratings file, in the ``ncf-rating`` layout, with 0-based ids) and ``<name>.test.negative``: for
each test line, its (user,item) pair and the 99 items it is ranked against. The negatives file is
checked line by line against both rating files: a negative the user has seen would inflate hit
rates.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from preprocessing.formats import RawFormat
from preprocessing.ratings import load_ratings
from preprocessing.reading import RawFile, column_values, read_fields
from preprocessing.reports import DataValidationError, Rule, ValidationReport
from preprocessing.rules import Verdicts, cut_short_advice, file_rules, pair_keys

NCF_NUM_NEGATIVES = 99

_PAIR_PATTERN = r"^\((?P<user>[0-9]{1,18}),(?P<item>[0-9]{1,18})\)$"
_NEGATIVE_FORMAT = RawFormat(
    "ncf-negative",
    "<name>.test.negative",
    "\t",
    False,
    ("(user,item)", *(f"negative_{k}" for k in range(1, NCF_NUM_NEGATIVES + 1))),
)


@dataclass(frozen=True)
class NcfBenchmark:
    """He et al.'s split as published, so results compare with the paper's numbers.

    ``report`` covers the ``.test.negative`` file and its checks against both ``.rating`` files,
    which :func:`load_ratings` has already validated strictly.
    """

    train: pd.DataFrame  # schema.RAW_COLUMNS, 0-based ids
    test: pd.DataFrame  # one held-out rating per user, row i matches negatives[i]
    negatives: np.ndarray  # int64, shape (len(test), 99)
    report: ValidationReport


def ncf_benchmark_files(name: str) -> tuple[str, str, str]:
    """He et al.'s published files of one dataset: train, test and test negatives."""
    return f"{name}.train.rating", f"{name}.test.rating", f"{name}.test.negative"


def load_ncf_benchmark(directory: Path, name: str) -> NcfBenchmark:
    """Load ``<name>.train.rating``, ``.test.rating`` and ``.test.negative``; check they agree."""
    train_path, test_path, negative_path = (Path(directory) / f for f in ncf_benchmark_files(name))
    train = load_ratings(train_path, "ncf-rating", min_interactions=1)
    test = load_ratings(test_path, "ncf-rating", min_interactions=1)
    source = RawFile.open(negative_path, _NEGATIVE_FORMAT)
    pair_and_negatives = [pa.binary()] + [pa.int64()] * NCF_NUM_NEGATIVES
    parsed = read_fields(source, list(_NEGATIVE_FORMAT.columns), pair_and_negatives)
    if parsed.n_lines != len(test.interactions):
        raise DataValidationError(
            f"{source.path} has {parsed.n_lines:,} lines but {name}.test.rating has "
            f"{len(test.interactions):,}: the two must match line by line. Download both files "
            "again from the same release."
        )
    verdicts = Verdicts(negative_rules(), parsed)
    negatives = _claim_negatives(verdicts, parsed.table, train.interactions, test.interactions)
    verdicts.claim_truncated(source)
    report = verdicts.report(source)
    if not report.ok:
        raise DataValidationError(
            f"{report.format()}\n{cut_short_advice(report)}{source.path.name} does not fit "
            f"{name}.train.rating and {name}.test.rating. Download the three {name} files again "
            "from the same release.",
            report,
        )
    return NcfBenchmark(train.interactions, test.interactions, negatives, report)


def negative_rules() -> tuple[Rule, ...]:
    """The catalogue of a .test.negative file, in checking order."""
    return (
        *file_rules(_NEGATIVE_FORMAT),
        Rule("malformed_pair", "first field is not (user,item) with non-negative integer ids"),
        Rule("pair_mismatch", "(user,item) differs from the same line of .test.rating"),
        Rule("non_integer_negative", "a negative item id is empty or not an integer"),
        Rule("negative_out_of_range", "a negative item id is below 0"),
        Rule("negative_already_seen", "a negative item the user has in train or test"),
    )


def _claim_negatives(
    verdicts: Verdicts, table: pa.Table, train: pd.DataFrame, test: pd.DataFrame
) -> np.ndarray:
    """The per-line rules of a .test.negative file; returns the negatives, shape (lines, 99)."""
    pair = pc.extract_regex(table.column(0), _PAIR_PATTERN)
    user, user_missing = column_values(pc.cast(pc.struct_field(pair, "user"), pa.int64()), 0)
    item, item_missing = column_values(pc.cast(pc.struct_field(pair, "item"), pa.int64()), 0)
    lines = verdicts.parsed.lines(np.arange(table.num_rows))
    test_user = test["user_id"].to_numpy()[lines]
    test_item = test["item_id"].to_numpy()[lines]
    negative_columns = [column_values(column, 0) for column in table.columns[1:]]
    negatives = np.column_stack([values for values, _ in negative_columns])
    negative_missing = np.column_stack([missing for _, missing in negative_columns])
    verdicts.claim_rows("malformed_pair", user_missing | item_missing)
    verdicts.claim_rows("pair_mismatch", (user != test_user) | (item != test_item))
    verdicts.claim_rows("non_integer_negative", negative_missing.any(axis=1))
    verdicts.claim_rows("negative_out_of_range", (negatives < 0).any(axis=1))
    verdicts.claim_rows("negative_already_seen", _seen(negatives, test_user, train, test))
    return negatives


def _seen(
    negatives: np.ndarray, user: np.ndarray, train: pd.DataFrame, test: pd.DataFrame
) -> np.ndarray:
    """Lines with a negative that the user has interacted with, which would inflate hit rates."""
    seen_users = np.concatenate((train["user_id"].to_numpy(), test["user_id"].to_numpy()))
    seen_items = np.concatenate((train["item_id"].to_numpy(), test["item_id"].to_numpy()))
    users = np.concatenate((seen_users, np.repeat(user, negatives.shape[1])))
    items = np.concatenate((seen_items, negatives.reshape(-1)))
    keys = pair_keys(users, np.maximum(items, 0))  # ids below 0 have a rule of their own
    candidates = keys[len(seen_users) :].reshape(negatives.shape)
    return np.isin(candidates, keys[: len(seen_users)]).any(axis=1)
