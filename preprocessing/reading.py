"""Reading a raw ratings file: the whole file refused or accepted, then its fields typed.

A file that is wrong as a whole (missing, empty, lone carriage returns, another separator, a
wrong header) is refused with one message before any line is judged (``RawFile.open``). Then
the fast path: the bytes are read once and parsed by one multithreaded ``pyarrow.csv.read_csv``
with explicit column types. Only a file the strict parse refuses is parsed a second time, as
text, to find the exact offending lines (``read_fields``). What the fields' values must be is
``preprocessing.rules``' job.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property, reduce
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from preprocessing.formats import RAW_FORMATS, RawFormat, separator_name
from preprocessing.reports import DataValidationError, truncate

_PARSE_DELIMITER = b"\t"  # what a multi-byte separator becomes; it cannot occur in valid data
_OTHER_SEPARATORS = ("::", ",", ";", "|", "\t", ":")
_SNIFF_BYTES = 1 << 16
_SNIFF_LINES = 1000
_BLOCK_SIZE = 1 << 24
_BARE_CR = re.compile(rb"\r(?!\n)")
_NON_SPACE = re.compile(rb"\S")
# What the lenient parse accepts; a subset of what pyarrow's typed parse accepts.
_NUMBER_PATTERNS = {
    pa.int64(): r"^[ \t]*-?[0-9]{1,18}[ \t]*$",
    pa.float64(): r"^[ \t]*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?[ \t]*$",
}


class RawFile:
    """One file's raw bytes, read once, and its line structure when a line must be shown."""

    def __init__(self, path: Path, raw: bytes, raw_format: RawFormat) -> None:
        self.path = path
        self.raw = raw
        self.raw_format = raw_format
        self.header_lines = int(raw_format.has_header)

    @classmethod
    def open(cls, path: Path, raw_format: RawFormat) -> RawFile:
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
            else f"the file looks {separator_name(guess)}-separated"
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
class Parsed:
    """Typed columns (null where a field is empty or does not parse) and lines that gave no row."""

    table: pa.Table
    rows: np.ndarray | None  # 0-based data line of each table row; None: row i is data line i
    n_lines: int
    line_hits: dict[str, np.ndarray]  # rule name -> data lines caught while parsing

    def lines(self, row_index: np.ndarray) -> np.ndarray:
        return row_index if self.rows is None else self.rows[row_index]


def read_fields(source: RawFile, names: list[str], types: Sequence[pa.DataType]) -> Parsed:
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
    return Parsed(table, rows, table.num_rows + len(wrong_count), hits)


def _read_csv(
    buffer: bytes,
    source: RawFile,
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
    buffer: bytes, source: RawFile, names: list[str], types: Sequence[pa.DataType]
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


def column_values(column: pa.ChunkedArray, fill: float) -> tuple[np.ndarray, np.ndarray]:
    """Values with nulls filled in, and where the nulls were."""
    if column.null_count == 0:
        return _numpy(column), np.zeros(len(column), bool)
    return _numpy(pc.fill_null(column, fill)), _numpy(column.is_null())
