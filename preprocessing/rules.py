"""The rules a raw line must pass, in checking order, and the verdict on every line.

A line breaks at most one rule: the first in the catalogue (:func:`rating_rules`) that it fails,
with one exception: a last line without a final newline always counts as ``truncated_last_line``,
whatever else it broke, because every official file ends with one and a cut can leave values that
look valid (a timestamp short of its last digits). The pair rules (``duplicate_pair``, then
``too_few_interactions``) only look at the lines that survived every other rule. Every check is
a vectorised numpy operation over the typed columns ``preprocessing.reading`` parsed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from preprocessing.formats import RawFormat, separator_name
from preprocessing.reading import Parsed, RawFile, column_values
from preprocessing.reports import MAX_EXAMPLES, Rule, RuleResult, ValidationReport


def file_rules(raw_format: RawFormat) -> tuple[Rule, ...]:
    """The rules every line-oriented file shares, whatever its values mean."""
    return (
        Rule("undecodable_bytes", "line is not valid UTF-8"),
        Rule(
            "wrong_column_count",
            f"line is not {len(raw_format.columns)} {separator_name(raw_format.separator)}-"
            "separated fields (blank lines included)",
        ),
        Rule("truncated_last_line", "file ends without a newline in an incomplete last line"),
    )


def rating_rules(raw_format: RawFormat, min_interactions: int) -> tuple[Rule, ...]:
    """The catalogue in checking order: a line counts under the first rule it breaks."""
    low, high = raw_format.rating_range
    step = raw_format.rating_step
    return (
        *file_rules(raw_format),
        Rule("non_integer_user_id", "user id is empty or not an integer"),
        Rule("non_integer_item_id", "item id is empty or not an integer"),
        Rule("user_id_out_of_range", f"user id below {raw_format.min_id}"),
        Rule("item_id_out_of_range", f"item id below {raw_format.min_id}"),
        Rule("missing_rating", "rating is empty or not a number"),
        Rule("rating_out_of_range", f"rating outside {low:g}..{high:g} in steps of {step:g}"),
        Rule("bad_timestamp", "timestamp not an integer, negative, or in the future"),
        Rule("duplicate_pair", "the same (user, item) pair appears again"),
        Rule("too_few_interactions", f"user has fewer than {min_interactions} valid ratings"),
    )


def cut_short_advice(report: ValidationReport) -> str:
    """A cut file needs a fresh copy, which dropping its last line would not give: say so first."""
    truncated = report.result("truncated_last_line")
    if truncated.ok:
        return ""
    return (
        f"{report.source} line {truncated.lines[0]} ends without a newline, so the file looks cut "
        "short (an interrupted download or copy): download it again, or add the final newline if "
        "the file is whole.\n"
    )


class Verdicts:
    """One rule per data line: the first rule that claims a line keeps it.

    Rules claim lines in catalogue order, so "first claim" is "first rule in the catalogue". The
    exception is :meth:`claim_truncated`, which takes an unterminated last line from any rule.
    """

    def __init__(self, rules: tuple[Rule, ...], parsed: Parsed) -> None:
        self.rules = rules
        self.parsed = parsed
        self._code = {rule.name: code for code, rule in enumerate(rules, start=1)}
        self.codes = np.zeros(parsed.n_lines, np.int8)
        for name, data_lines in parsed.line_hits.items():
            self.claim(name, data_lines)

    def claim(self, name: str, data_lines: np.ndarray) -> None:
        free = data_lines[self.codes[data_lines] == 0]
        self.codes[free] = self._code[name]

    def claim_rows(self, name: str, row_mask: np.ndarray) -> None:
        self.claim(name, self.parsed.lines(np.flatnonzero(row_mask)))

    def claim_truncated(self, source: RawFile) -> None:
        """Overrides any earlier claim: a cut-off line's values cannot be trusted, valid or not."""
        if source.unterminated and self.parsed.n_lines:
            self.codes[-1] = self._code["truncated_last_line"]

    def alive_rows(self) -> np.ndarray:
        codes = self.codes if self.parsed.rows is None else self.codes[self.parsed.rows]
        return np.flatnonzero(codes == 0)

    def claim_ratings(
        self, table: pa.Table, raw_format: RawFormat, latest: int
    ) -> dict[str, np.ndarray]:
        """The per-value rules; returns the columns as numpy, nulls filled (their lines are out)."""
        user, user_missing = column_values(table["user_id"], raw_format.min_id)
        item, item_missing = column_values(table["item_id"], raw_format.min_id)
        low, high = raw_format.rating_range
        rating, rating_missing = column_values(table["rating"], low)
        rating_missing |= np.isnan(rating)
        rating = np.where(rating_missing, low, rating)
        timestamp, timestamp_missing = column_values(table["timestamp"], 0)
        self.claim_rows("non_integer_user_id", user_missing)
        self.claim_rows("non_integer_item_id", item_missing)
        self.claim_rows("user_id_out_of_range", user < raw_format.min_id)
        self.claim_rows("item_id_out_of_range", item < raw_format.min_id)
        self.claim_rows("missing_rating", rating_missing)
        step = raw_format.rating_step
        off_step = np.rint(rating / step) * step != rating
        self.claim_rows("rating_out_of_range", (rating < low) | (rating > high) | off_step)
        self.claim_rows("bad_timestamp", timestamp_missing | (timestamp < 0) | (timestamp > latest))
        return {"user_id": user, "item_id": item, "rating": rating, "timestamp": timestamp}

    def claim_pairs(self, user: np.ndarray, item: np.ndarray, min_interactions: int) -> None:
        """Judged on surviving lines only, so a broken line cannot shadow a good one."""
        alive = self.alive_rows()
        repeated = _later_duplicates(pair_keys(take(user, alive), take(item, alive)))
        self.claim("duplicate_pair", self.parsed.lines(alive[repeated]))
        if min_interactions > 1:
            alive = alive[~repeated]
            few = _group_sizes(take(user, alive)) < min_interactions
            self.claim("too_few_interactions", self.parsed.lines(alive[few]))

    def report(self, source: RawFile) -> ValidationReport:
        counts = np.bincount(self.codes, minlength=len(self.rules) + 1)
        results = tuple(
            RuleResult(
                rule, int(counts[code]), self._examples(source, code) if counts[code] else ()
            )
            for code, rule in enumerate(self.rules, start=1)
        )
        return ValidationReport(
            source=str(source.path),
            fmt=source.raw_format.name,
            lines_read=self.parsed.n_lines,
            rows_kept=int(counts[0]),
            results=results,
        )

    def _examples(self, source: RawFile, code: int) -> tuple[tuple[int, str], ...]:
        first = np.flatnonzero(self.codes == code)[:MAX_EXAMPLES]
        numbers = source.line_numbers(first).tolist()
        return tuple(zip(numbers, source.texts(first), strict=True))

    def rejects(self, source: RawFile) -> pd.DataFrame:
        dropped = np.flatnonzero(self.codes)
        names = np.array([rule.name for rule in self.rules], dtype=object)
        return pd.DataFrame(
            {
                "line": source.line_numbers(dropped).astype(np.int64),
                "rule": pd.Series(names[self.codes[dropped] - 1], dtype=str),
                "text": pd.Series(source.texts(dropped), dtype=str),
            }
        )


def take(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Skips the copy when every row is kept (``rows`` is sorted and unique), as in a clean file."""
    return values if len(rows) == len(values) else values[rows]


def pair_keys(user: np.ndarray, item: np.ndarray) -> np.ndarray:
    """One int64 per (user, item) pair, so finding repeats is a single 1-D operation."""
    if not len(user):
        return user
    span = int(item.max()) + 1
    if int(user.max()) * span + span > np.iinfo(np.int64).max:
        user, item = pd.factorize(user)[0], pd.factorize(item)[0]
        span = int(item.max()) + 1
    return user.astype(np.int64) * span + item


def _later_duplicates(keys: np.ndarray) -> np.ndarray:
    """True for every repeat after the first, in file order."""
    if np.all(keys[1:] > keys[:-1]):
        return np.zeros(len(keys), bool)  # sorted by (user, item), as ML-20M and later are
    return pd.Series(keys).duplicated(keep="first").to_numpy()


def _group_sizes(user: np.ndarray) -> np.ndarray:
    """How many rows each row's user has."""
    codes, _ = pd.factorize(user)
    return np.bincount(codes)[codes]
