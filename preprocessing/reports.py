"""What went wrong in a raw ratings file, line by line, in a form both people and the manifest read.

A loader checks every line against a list of named :class:`Rule` s (the catalogues are in
``preprocessing.rules``) and summarises the outcome in a :class:`ValidationReport`: how many lines
each rule rejected and the first few of them with their line numbers, so a learner can open the
file at the right place. The same report goes into ``manifest.json`` (via
:meth:`ValidationReport.to_dict`), so a processed folder remembers what was dropped from the raw
data to make it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

MAX_EXAMPLES = 5
MAX_TEXT = 200

# Control characters would break the one-line-per-example layout; show them escaped instead.
_VISIBLE = {code: f"\\x{code:02x}" for code in range(32)} | {ord("\t"): "\\t"}


@dataclass(frozen=True)
class Rule:
    """A named check a line can fail; the name is what tests, rejects and the manifest refer to."""

    name: str
    description: str


@dataclass(frozen=True)
class RuleResult:
    """How often one rule fired, with the first offending lines as (line number, text)."""

    rule: Rule
    count: int
    examples: tuple[tuple[int, str], ...] = ()

    @property
    def ok(self) -> bool:
        return self.count == 0

    @property
    def lines(self) -> list[int]:
        """Line numbers of the examples, so a caller can point at them without parsing text."""
        return [line for line, _ in self.examples]


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of every rule on one file; rules that found nothing are listed too, as proof."""

    source: str
    fmt: str
    lines_read: int
    rows_kept: int
    results: tuple[RuleResult, ...]

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.results)

    @property
    def rows_rejected(self) -> int:
        return sum(result.count for result in self.results)

    def result(self, name: str) -> RuleResult:
        for result in self.results:
            if result.rule.name == name:
                return result
        known = ", ".join(result.rule.name for result in self.results)
        raise KeyError(f"no rule named {name!r} in this report; known rules: {known}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only, so the manifest writer needs no custom encoder for it."""
        return {
            "source": self.source,
            "format": self.fmt,
            "lines_read": self.lines_read,
            "rows_kept": self.rows_kept,
            "rows_rejected": self.rows_rejected,
            "ok": self.ok,
            "rules": [
                {
                    "name": result.rule.name,
                    "description": result.rule.description,
                    "count": result.count,
                    "examples": [{"line": line, "text": text} for line, text in result.examples],
                }
                for result in self.results
            ],
        }

    def format(self) -> str:
        """Failures first, so the rule to fix is at the top of a long error message."""
        lines = [
            f"Validation of {PurePath(self.source).name} ({self.fmt}): {self.lines_read:,} data "
            f"lines, {self.rows_kept:,} kept, {self.rows_rejected:,} rejected"
        ]
        name_width = max((len(result.rule.name) for result in self.results), default=0)
        count_width = max((len(f"{result.count:,}") for result in self.results), default=1)
        for result in sorted(self.results, key=lambda result: result.ok):
            status = "ok  " if result.ok else "FAIL"
            lines.append(
                f"  {status} {result.rule.name:<{name_width}}  {result.count:>{count_width},}  "
                f"{result.rule.description}"
            )
            lines.extend(
                f"       line {line}: {text.translate(_VISIBLE)}" for line, text in result.examples
            )
        return "\n".join(lines)


class DataValidationError(ValueError):
    """A raw file the loader refuses; ``report`` names the lines when lines are the problem."""

    def __init__(self, message: str, report: ValidationReport | None = None) -> None:
        super().__init__(message)
        self.report = report


def truncate(text: str) -> str:
    """Keep one pathological line (a binary blob has no newlines) from flooding a report."""
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 3] + "..."
