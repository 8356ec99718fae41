"""Fast, strict readers for raw MovieLens rating files and He et al.'s NCF benchmark files.

Every reader returns clean interactions (``schema.RAW_COLUMNS``) together with a
:class:`~preprocessing.validation.ValidationReport` that names each rule a line broke, with line
numbers. A clean file takes the fast path: the bytes are read once and parsed by one multithreaded
``pyarrow.csv.read_csv`` with explicit column types, and every rule after that is a vectorised
numpy check. Only a file the strict parse refuses is parsed a second time, as text, to find the
exact offending lines.

A line breaks at most one rule: the first in the catalogue (:func:`rating_rules`) that it fails,
with one exception: a last line without a final newline always counts as ``truncated_last_line``,
whatever else it broke, because every official file ends with one and a cut can leave values that
look valid (a timestamp short of its last digits). The pair rules (``duplicate_pair``, then
``too_few_interactions``) only look at the lines that survived every other rule.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property, reduce
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from preprocessing import schema
from preprocessing.validation import (
    MAX_EXAMPLES,
    DataValidationError,
    Rule,
    RuleResult,
    ValidationReport,
    truncate,
)

POLICIES = ("fail", "drop")
NCF_NUM_NEGATIVES = 99

_PARSE_DELIMITER = b"\t"  # what a multi-byte separator becomes; it cannot occur in valid data
_OTHER_SEPARATORS = ("::", ",", ";", "|", "\t", ":")
_SNIFF_BYTES = 1 << 16
_SNIFF_LINES = 1000
_BLOCK_SIZE = 1 << 24
_ONE_DAY = 86_400
_BARE_CR = re.compile(rb"\r(?!\n)")
_NON_SPACE = re.compile(rb"\S")
# What the lenient parse accepts; a subset of what pyarrow's typed parse accepts.
_NUMBER_PATTERNS = {
    pa.int64(): r"^[ \t]*-?[0-9]{1,18}[ \t]*$",
    pa.float64(): r"^[ \t]*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?[ \t]*$",
}
_PAIR_PATTERN = r"^\((?P<user>[0-9]{1,18}),(?P<item>[0-9]{1,18})\)$"
_RAW_TYPES = (pa.int64(), pa.int64(), pa.float64(), pa.int64())


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
        return f"{_separator_name(self.separator)}-separated {' '.join(shown)}"


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

_NEGATIVE_FORMAT = RawFormat(
    "ncf-negative",
    "<name>.test.negative",
    "\t",
    False,
    ("(user,item)", *(f"negative_{k}" for k in range(1, NCF_NUM_NEGATIVES + 1))),
)


@dataclass(frozen=True)
class LoadResult:
    """The clean rows, and the evidence of what was removed from the raw file to get them."""

    interactions: pd.DataFrame  # schema.RAW_COLUMNS, in file order
    report: ValidationReport
    rejects: pd.DataFrame  # line, rule, text: every raw line that was dropped


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


def file_rules(raw_format: RawFormat) -> tuple[Rule, ...]:
    """The rules every line-oriented file shares, whatever its values mean."""
    return (
        Rule("undecodable_bytes", "line is not valid UTF-8"),
        Rule(
            "wrong_column_count",
            f"line is not {len(raw_format.columns)} {_separator_name(raw_format.separator)}-"
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


def negative_rules() -> tuple[Rule, ...]:
    return (
        *file_rules(_NEGATIVE_FORMAT),
        Rule("malformed_pair", "first field is not (user,item) with non-negative integer ids"),
        Rule("pair_mismatch", "(user,item) differs from the same line of .test.rating"),
        Rule("non_integer_negative", "a negative item id is empty or not an integer"),
        Rule("negative_out_of_range", "a negative item id is below 0"),
        Rule("negative_already_seen", "a negative item the user has in train or test"),
    )


def load_ratings(
    path: Path,
    fmt: str,
    policy: str = "fail",
    min_interactions: int = 2,
    now: int | None = None,
) -> LoadResult:
    """Read one raw ratings file; ``policy="drop"`` keeps going and lists what it dropped.

    ``now`` (Unix seconds, default: one day from now) is the latest believable timestamp.
    """
    raw_format = _raw_format(fmt)
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, not {policy!r}")
    source = _Source.open(Path(path), raw_format)
    parsed = _read_fields(source, list(schema.RAW_COLUMNS), _RAW_TYPES)
    verdicts = _Verdicts(rating_rules(raw_format, min_interactions), parsed)
    columns = verdicts.claim_ratings(parsed.table, raw_format, _latest(now))
    verdicts.claim_truncated(source)
    verdicts.claim_pairs(columns["user_id"], columns["item_id"], min_interactions)
    report = verdicts.report(source)
    if policy == "fail" and not report.ok:
        raise DataValidationError(
            f"{report.format()}\n{_cut_short(report)}{source.path.name} breaks the rules marked "
            "FAIL above. Fix the file, or load it with policy='drop' to drop those lines "
            "(LoadResult.rejects lists them).",
            report,
        )
    kept = verdicts.alive_rows()
    # Writable ("W"): a zero-copy view of pyarrow's memory would make the frame read-only.
    interactions = pd.DataFrame(
        {
            name: np.require(_take(columns[name], kept), dtype, ["W"])
            for name, dtype in schema.RAW_COLUMNS.items()
        },
        copy=False,
    )
    return LoadResult(interactions, report, verdicts.rejects(source))


def ncf_benchmark_files(name: str) -> tuple[str, str, str]:
    """He et al.'s published files of one dataset: train, test and test negatives."""
    return f"{name}.train.rating", f"{name}.test.rating", f"{name}.test.negative"


def load_ncf_benchmark(directory: Path, name: str) -> NcfBenchmark:
    """Load ``<name>.train.rating``, ``.test.rating`` and ``.test.negative``; check they agree."""
    train_path, test_path, negative_path = (Path(directory) / f for f in ncf_benchmark_files(name))
    train = load_ratings(train_path, "ncf-rating", min_interactions=1)
    test = load_ratings(test_path, "ncf-rating", min_interactions=1)
    source = _Source.open(negative_path, _NEGATIVE_FORMAT)
    pair_and_negatives = [pa.binary()] + [pa.int64()] * NCF_NUM_NEGATIVES
    parsed = _read_fields(source, list(_NEGATIVE_FORMAT.columns), pair_and_negatives)
    if parsed.n_lines != len(test.interactions):
        raise DataValidationError(
            f"{source.path} has {parsed.n_lines:,} lines but {name}.test.rating has "
            f"{len(test.interactions):,}: the two must match line by line. Download both files "
            "again from the same release."
        )
    verdicts = _Verdicts(negative_rules(), parsed)
    negatives = verdicts.claim_negatives(parsed.table, train.interactions, test.interactions)
    verdicts.claim_truncated(source)
    report = verdicts.report(source)
    if not report.ok:
        raise DataValidationError(
            f"{report.format()}\n{_cut_short(report)}{source.path.name} does not fit "
            f"{name}.train.rating and {name}.test.rating. Download the three {name} files again "
            "from the same release.",
            report,
        )
    return NcfBenchmark(train.interactions, test.interactions, negatives, report)


def _cut_short(report: ValidationReport) -> str:
    """A cut file needs a fresh copy, which dropping its last line would not give: say so first."""
    truncated = report.result("truncated_last_line")
    if truncated.ok:
        return ""
    return (
        f"{report.source} line {truncated.lines[0]} ends without a newline, so the file looks cut "
        "short (an interrupted download or copy): download it again, or add the final newline if "
        "the file is whole.\n"
    )


def _raw_format(fmt: str) -> RawFormat:
    if fmt not in RAW_FORMATS:
        raise ValueError(f"unknown format {fmt!r}: choose one of {', '.join(RAW_FORMATS)}")
    return RAW_FORMATS[fmt]


def _latest(now: int | None) -> int:
    """A day of slack, so clock skew between the rater's server and this machine is no error."""
    return int(time.time()) + _ONE_DAY if now is None else now


def _separator_name(separator: str) -> str:
    return "TAB" if separator == "\t" else f"{separator!r}"


class _Source:
    """One file's raw bytes, read once, and its line structure when a line must be shown."""

    def __init__(self, path: Path, raw: bytes, raw_format: RawFormat) -> None:
        self.path = path
        self.raw = raw
        self.raw_format = raw_format
        self.header_lines = int(raw_format.has_header)

    @classmethod
    def open(cls, path: Path, raw_format: RawFormat) -> _Source:
        """Refuse files that are wrong as a whole, before any line is judged on its own."""
        expected = f"expected {raw_format.file_name}: {raw_format.describe()}"
        if path.is_dir():
            raise DataValidationError(
                f"{path} is a folder; {expected}. Pass the path of the file inside it."
            )
        if not path.is_file():
            raise DataValidationError(
                f"{path} does not exist; {expected}. Download and unzip the dataset, then pass "
                "the path of that file."
            )
        source = cls(path, path.read_bytes(), raw_format)
        source.check_not_empty()
        source.check_line_endings()
        source.check_separator()
        if raw_format.has_header:
            source.check_header()
        return source

    @property
    def data_start(self) -> int:
        """Byte offset of the first data line."""
        if not self.header_lines:
            return 0
        end = self.raw.find(b"\n")
        return len(self.raw) if end < 0 else end + 1

    @property
    def parse_buffer(self) -> bytes:
        """pyarrow takes one-byte delimiters only, so a longer separator becomes one byte."""
        separator = self.raw_format.separator.encode()
        return self.raw if len(separator) == 1 else self.raw.replace(separator, _PARSE_DELIMITER)

    @property
    def parse_delimiter(self) -> str:
        separator = self.raw_format.separator
        return separator if len(separator) == 1 else _PARSE_DELIMITER.decode()

    def check_not_empty(self) -> None:
        if _NON_SPACE.search(self.raw, self.data_start) is None:
            raise DataValidationError(
                f"{self.path} has no data lines; expected {self.raw_format.file_name}: "
                f"{self.raw_format.describe()}. The download or unzip probably failed: fetch the "
                "file again."
            )

    def check_line_endings(self) -> None:
        """pyarrow ends a line at a lone CR too, which would shift every line number after it."""
        bare = _BARE_CR.search(self.raw)
        if bare is not None:
            line = self.raw.count(b"\n", 0, bare.start()) + 1
            raise DataValidationError(
                f"{self.path} line {line} holds a carriage return that is not followed by a "
                "newline. Convert the file to plain '\\n' line endings (e.g. with dos2unix)."
            )

    def check_separator(self) -> None:
        """A file in another dialect would otherwise be rejected line by line, burying the cause."""
        sample = self._sample_lines()
        separator = self.raw_format.separator
        if not sample or 2 * sum(separator in line for line in sample) > len(sample):
            return
        n_columns = len(self.raw_format.columns)
        guess = next(
            (
                other
                for other in _OTHER_SEPARATORS
                if other != separator
                and 2 * sum(len(line.split(other)) == n_columns for line in sample) > len(sample)
            ),
            None,
        )
        found = (
            "most lines have a single field"
            if guess is None
            else f"the file looks {_separator_name(guess)}-separated"
        )
        users = [fmt.name for fmt in RAW_FORMATS.values() if fmt.separator == guess]
        hint = f" (like {', '.join(users)})" if users else ""
        raise DataValidationError(
            f"{self.path}: expected {self.raw_format.describe()} ({self.raw_format.name}), but "
            f"{found}{hint}. Check that the file and the format you asked for belong together."
        )

    def check_header(self) -> None:
        """By name: a renamed or reordered column would otherwise load into the wrong field."""
        first = self.raw[: self.data_start].decode("utf-8-sig", "replace").rstrip("\r\n")
        found = first.split(self.raw_format.separator)
        expected = list(self.raw_format.columns)
        if found == expected:
            return
        wanted = self.raw_format.separator.join(expected)
        if found[0].strip().isdigit():
            raise DataValidationError(
                f"{self.path} has no header line: line 1 is data ({truncate(first)!r}). Expected "
                f"the header {wanted!r} first; add it back or use the file as downloaded."
            )
        problems = [f"column {name!r} is missing" for name in expected if name not in found]
        problems += [f"column {name!r} is unexpected" for name in found if name not in expected]
        raise DataValidationError(
            f"{self.path} header: {'; '.join(problems or ['columns are in another order'])}. "
            f"Found {truncate(first)!r}, expected {wanted!r}. Restore the header as downloaded."
        )

    def _sample_lines(self) -> list[str]:
        head = self.raw[:_SNIFF_BYTES].decode("utf-8", "replace").split("\n")
        if len(self.raw) > _SNIFF_BYTES:
            head = head[:-1]  # cut mid-line
        return [line for line in head[:_SNIFF_LINES] if line.strip()]

    @cached_property
    def _line_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Start and end offset of every physical line; costs a pass over the bytes, so lazy."""
        newlines = np.flatnonzero(np.frombuffer(self.raw, np.uint8) == ord("\n"))
        return np.concatenate(([0], newlines + 1)), np.concatenate((newlines, [len(self.raw)]))

    def line_numbers(self, data_lines: np.ndarray) -> np.ndarray:
        """1-based physical line numbers of 0-based data lines (a header is line 1)."""
        return data_lines + 1 + self.header_lines

    def texts(self, data_lines: np.ndarray) -> list[str]:
        if not len(data_lines):
            return []
        starts, ends = self._line_bounds
        physical = data_lines + self.header_lines
        return [
            truncate(self.raw[start:end].rstrip(b"\r").decode("utf-8", "backslashreplace"))
            for start, end in zip(starts[physical], ends[physical], strict=True)
        ]

    def blank(self, data_lines: np.ndarray) -> np.ndarray:
        """Tells a blank line (wrong width) from a line of empty fields (wrong values)."""
        if not len(data_lines):
            return np.zeros(0, bool)
        starts, ends = self._line_bounds
        starts = starts[data_lines + self.header_lines]
        length = ends[data_lines + self.header_lines] - starts
        blank = length == 0
        one = np.flatnonzero(length == 1)
        blank[one] = np.frombuffer(self.raw, np.uint8)[starts[one]] == ord("\r")
        return blank

    def undecodable_lines(self) -> np.ndarray:
        """Data lines that are not UTF-8; only lines with non-ASCII bytes are decoded."""
        if self.raw.isascii():
            return np.empty(0, np.int64)
        starts, ends = self._line_bounds
        high = np.flatnonzero(np.frombuffer(self.raw, np.uint8) >= 0x80)
        physical = np.unique(np.searchsorted(ends, high))
        bad = [line for line in physical if not _decodes(self.raw[starts[line] : ends[line]])]
        data_lines = np.asarray(bad, np.int64) - self.header_lines
        return data_lines[data_lines >= 0]

    @property
    def unterminated(self) -> bool:
        return not self.raw.endswith(b"\n")


def _decodes(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@dataclass(frozen=True)
class _Parsed:
    """Typed columns (null where a field is empty or does not parse) and lines that gave no row."""

    table: pa.Table
    rows: np.ndarray | None  # 0-based data line of each table row; None: row i is data line i
    n_lines: int
    line_hits: dict[str, np.ndarray]  # rule name -> data lines caught while parsing

    def lines(self, row_index: np.ndarray) -> np.ndarray:
        return row_index if self.rows is None else self.rows[row_index]


def _read_fields(source: _Source, names: list[str], types: Sequence[pa.DataType]) -> _Parsed:
    """Strict typed parse first; only a file it refuses is parsed again as text, line by line."""
    buffer = source.parse_buffer
    try:
        table = _read_csv(buffer, source, names, types, threads=True)
        rows, wrong_count = None, np.empty(0, np.int64)
    except pa.ArrowInvalid:
        table, rows, wrong_count = _read_leniently(buffer, source, names, types)
    empty_rows = _all_null_rows(table)
    empty_lines = empty_rows if rows is None else rows[empty_rows]
    hits = {
        "undecodable_bytes": source.undecodable_lines(),
        "wrong_column_count": np.concatenate((wrong_count, empty_lines[source.blank(empty_lines)])),
    }
    return _Parsed(table, rows, table.num_rows + len(wrong_count), hits)


def _read_csv(
    buffer: bytes,
    source: _Source,
    names: list[str],
    types: Sequence[pa.DataType],
    *,
    threads: bool,
    on_invalid_row: Callable[[pacsv.InvalidRow], str] | None = None,
) -> pa.Table:
    """Blank lines stay rows (``ignore_empty_lines=False``) so a row number is a line number."""
    return pacsv.read_csv(
        pa.BufferReader(buffer),
        read_options=pacsv.ReadOptions(
            column_names=names,
            skip_rows=source.header_lines,
            use_threads=threads,
            block_size=_BLOCK_SIZE,
        ),
        parse_options=pacsv.ParseOptions(
            delimiter=source.parse_delimiter,
            quote_char=False,
            ignore_empty_lines=False,
            invalid_row_handler=on_invalid_row,
        ),
        convert_options=pacsv.ConvertOptions(
            column_types=dict(zip(names, types, strict=True)),
            null_values=[""],
            strings_can_be_null=True,
        ),
    )


def _read_leniently(
    buffer: bytes, source: _Source, names: list[str], types: Sequence[pa.DataType]
) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """Every field as bytes, lines of the wrong width set aside with their numbers.

    Single-threaded, because only then does pyarrow report the line number of an invalid row.
    """
    invalid: list[int] = []

    def set_aside(row: pacsv.InvalidRow) -> str:
        invalid.append(row.number)
        return "skip"

    text = _read_csv(
        buffer, source, names, [pa.binary()] * len(names), threads=False, on_invalid_row=set_aside
    )
    wrong_count = np.asarray(invalid, np.int64) - 1 - source.header_lines
    rows = np.delete(np.arange(text.num_rows + len(wrong_count)), wrong_count)
    columns = [_parse_numbers(text[name], dtype) for name, dtype in zip(names, types, strict=True)]
    return pa.table(columns, names=names), rows, wrong_count


def _parse_numbers(column: pa.ChunkedArray, dtype: pa.DataType) -> pa.ChunkedArray:
    """What the typed parse would give, with null where it would have stopped the whole file."""
    if dtype == pa.binary():
        return column
    parses = pc.match_substring_regex(column, _NUMBER_PATTERNS[dtype])
    valid = pc.cast(pc.if_else(parses, column, pa.scalar(None, pa.binary())), pa.string())
    return pc.cast(pc.utf8_trim(valid, " \t"), dtype)


def _all_null_rows(table: pa.Table) -> np.ndarray:
    """Row indices that hold no value at all: blank lines, or lines of empty fields."""
    if any(column.null_count == 0 for column in table.columns):
        return np.empty(0, np.int64)
    nulls = reduce(pc.and_, (column.is_null() for column in table.columns))
    return np.flatnonzero(_numpy(nulls))


def _numpy(column: pa.ChunkedArray) -> np.ndarray:
    return column.to_numpy(zero_copy_only=False)


def _values(column: pa.ChunkedArray, fill: float) -> tuple[np.ndarray, np.ndarray]:
    """Values with nulls filled in, and where the nulls were."""
    if column.null_count == 0:
        return _numpy(column), np.zeros(len(column), bool)
    return _numpy(pc.fill_null(column, fill)), _numpy(column.is_null())


class _Verdicts:
    """One rule per data line: the first rule that claims a line keeps it.

    Rules claim lines in catalogue order, so "first claim" is "first rule in the catalogue". The
    exception is :meth:`claim_truncated`, which takes an unterminated last line from any rule.
    """

    def __init__(self, rules: tuple[Rule, ...], parsed: _Parsed) -> None:
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

    def claim_truncated(self, source: _Source) -> None:
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
        user, user_missing = _values(table["user_id"], raw_format.min_id)
        item, item_missing = _values(table["item_id"], raw_format.min_id)
        low, high = raw_format.rating_range
        rating, rating_missing = _values(table["rating"], low)
        rating_missing |= np.isnan(rating)
        rating = np.where(rating_missing, low, rating)
        timestamp, timestamp_missing = _values(table["timestamp"], 0)
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
        repeated = _later_duplicates(_pair_keys(_take(user, alive), _take(item, alive)))
        self.claim("duplicate_pair", self.parsed.lines(alive[repeated]))
        if min_interactions > 1:
            alive = alive[~repeated]
            few = _group_sizes(_take(user, alive)) < min_interactions
            self.claim("too_few_interactions", self.parsed.lines(alive[few]))

    def claim_negatives(
        self, table: pa.Table, train: pd.DataFrame, test: pd.DataFrame
    ) -> np.ndarray:
        """The per-line rules of a .test.negative file; returns the negatives, shape (lines, 99)."""
        pair = pc.extract_regex(table.column(0), _PAIR_PATTERN)
        user, user_missing = _values(pc.cast(pc.struct_field(pair, "user"), pa.int64()), 0)
        item, item_missing = _values(pc.cast(pc.struct_field(pair, "item"), pa.int64()), 0)
        lines = self.parsed.lines(np.arange(table.num_rows))
        test_user = test["user_id"].to_numpy()[lines]
        test_item = test["item_id"].to_numpy()[lines]
        negative_columns = [_values(column, 0) for column in table.columns[1:]]
        negatives = np.column_stack([values for values, _ in negative_columns])
        negative_missing = np.column_stack([missing for _, missing in negative_columns])
        self.claim_rows("malformed_pair", user_missing | item_missing)
        self.claim_rows("pair_mismatch", (user != test_user) | (item != test_item))
        self.claim_rows("non_integer_negative", negative_missing.any(axis=1))
        self.claim_rows("negative_out_of_range", (negatives < 0).any(axis=1))
        self.claim_rows("negative_already_seen", _seen(negatives, test_user, train, test))
        return negatives

    def report(self, source: _Source) -> ValidationReport:
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

    def _examples(self, source: _Source, code: int) -> tuple[tuple[int, str], ...]:
        first = np.flatnonzero(self.codes == code)[:MAX_EXAMPLES]
        numbers = source.line_numbers(first).tolist()
        return tuple(zip(numbers, source.texts(first), strict=True))

    def rejects(self, source: _Source) -> pd.DataFrame:
        dropped = np.flatnonzero(self.codes)
        names = np.array([rule.name for rule in self.rules], dtype=object)
        return pd.DataFrame(
            {
                "line": source.line_numbers(dropped).astype(np.int64),
                "rule": pd.Series(names[self.codes[dropped] - 1], dtype=str),
                "text": pd.Series(source.texts(dropped), dtype=str),
            }
        )


def _take(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Skips the copy when every row is kept (``rows`` is sorted and unique), as in a clean file."""
    return values if len(rows) == len(values) else values[rows]


def _pair_keys(user: np.ndarray, item: np.ndarray) -> np.ndarray:
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


def _seen(
    negatives: np.ndarray, user: np.ndarray, train: pd.DataFrame, test: pd.DataFrame
) -> np.ndarray:
    """Lines with a negative that the user has interacted with, which would inflate hit rates."""
    seen_users = np.concatenate((train["user_id"].to_numpy(), test["user_id"].to_numpy()))
    seen_items = np.concatenate((train["item_id"].to_numpy(), test["item_id"].to_numpy()))
    users = np.concatenate((seen_users, np.repeat(user, negatives.shape[1])))
    items = np.concatenate((seen_items, negatives.reshape(-1)))
    keys = _pair_keys(users, np.maximum(items, 0))  # ids below 0 have a rule of their own
    candidates = keys[len(seen_users) :].reshape(negatives.shape)
    return np.isin(candidates, keys[: len(seen_users)]).any(axis=1)
