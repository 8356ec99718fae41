"""Reading one raw MovieLens ratings file into clean interactions, with the evidence.

:func:`load_ratings` returns the clean rows (``schema.RAW_COLUMNS``) together with a
:class:`~preprocessing.reports.ValidationReport` that names each rule a line broke, with line
numbers, and the rejected lines themselves. The file is read by ``preprocessing.reading`` and
judged by ``preprocessing.rules``; the layouts are in ``preprocessing.formats``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from preprocessing import schema
from preprocessing.formats import find_format
from preprocessing.reading import RawFile, read_fields
from preprocessing.reports import DataValidationError, ValidationReport
from preprocessing.rules import Verdicts, cut_short_advice, rating_rules, take

POLICIES = ("fail", "drop")

_ONE_DAY = 86_400
_RAW_TYPES = (pa.int64(), pa.int64(), pa.float64(), pa.int64())


@dataclass(frozen=True)
class LoadResult:
    """The clean rows, and the evidence of what was removed from the raw file to get them."""

    interactions: pd.DataFrame  # schema.RAW_COLUMNS, in file order
    report: ValidationReport
    rejects: pd.DataFrame  # line, rule, text: every raw line that was dropped


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
    raw_format = find_format(fmt)
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, not {policy!r}")
    source = RawFile.open(Path(path), raw_format)
    parsed = read_fields(source, list(schema.RAW_COLUMNS), _RAW_TYPES)
    verdicts = Verdicts(rating_rules(raw_format, min_interactions), parsed)
    columns = verdicts.claim_ratings(parsed.table, raw_format, _latest(now))
    verdicts.claim_truncated(source)
    verdicts.claim_pairs(columns["user_id"], columns["item_id"], min_interactions)
    report = verdicts.report(source)
    if policy == "fail" and not report.ok:
        raise DataValidationError(
            f"{report.format()}\n{cut_short_advice(report)}{source.path.name} breaks the rules "
            "marked FAIL above. Fix the file, or load it with policy='drop' to drop those lines "
            "(LoadResult.rejects lists them).",
            report,
        )
    kept = verdicts.alive_rows()
    # Writable ("W"): a zero-copy view of pyarrow's memory would make the frame read-only.
    interactions = pd.DataFrame(
        {
            name: np.require(take(columns[name], kept), dtype, ["W"])
            for name, dtype in schema.RAW_COLUMNS.items()
        },
        copy=False,
    )
    return LoadResult(interactions, report, verdicts.rejects(source))


def _latest(now: int | None) -> int:
    """A day of slack, so clock skew between the rater's server and this machine is no error."""
    return int(time.time()) + _ONE_DAY if now is None else now
