"""The validation report: what learners read in an error and what the manifest stores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from preprocessing.formats import RAW_FORMATS
from preprocessing.ratings import load_ratings
from preprocessing.reports import (
    MAX_TEXT,
    DataValidationError,
    Rule,
    RuleResult,
    ValidationReport,
    truncate,
)
from preprocessing.rules import rating_rules

DUPLICATE = Rule("duplicate_pair", "the same (user, item) pair appears again")
RATING = Rule("rating_out_of_range", "rating outside 1..5")


def report(duplicates: int = 2, ratings: int = 0) -> ValidationReport:
    examples = ((17, "196\t242\t3\t881250949"), (18, "196\t242\t4\t881250950"))[:duplicates]
    return ValidationReport(
        source="/data/ml-100k/u.data",
        fmt="ml-100k",
        lines_read=100_003,
        rows_kept=100_003 - duplicates - ratings,
        results=(
            RuleResult(RATING, ratings, ((3, "1\t2\t9\t4"),) if ratings else ()),
            RuleResult(DUPLICATE, duplicates, examples),
        ),
    )


def test_format_lists_failures_first_with_their_lines() -> None:
    assert report().format() == (
        "Validation of u.data (ml-100k): 100,003 data lines, 100,001 kept, 2 rejected\n"
        "  FAIL duplicate_pair       2  the same (user, item) pair appears again\n"
        "       line 17: 196\\t242\\t3\\t881250949\n"
        "       line 18: 196\\t242\\t4\\t881250950\n"
        "  ok   rating_out_of_range  0  rating outside 1..5"
    )


def test_format_aligns_large_counts_and_keeps_catalogue_order_among_failures() -> None:
    text = report(duplicates=2, ratings=12_345).format()

    lines = text.splitlines()
    assert lines[0].endswith("87,656 kept, 12,347 rejected")
    assert lines[1] == "  FAIL rating_out_of_range  12,345  rating outside 1..5"
    assert (
        lines[3] == "  FAIL duplicate_pair            2  the same (user, item) pair appears again"
    )


def test_format_escapes_control_characters_so_each_example_stays_one_line() -> None:
    result = RuleResult(DUPLICATE, 1, ((2, "1\r\x002"),))
    text = ValidationReport("u.data", "ml-100k", 2, 1, (result,)).format()

    assert text.splitlines()[-1] == "       line 2: 1\\x0d\\x002"


def test_ok_and_counts() -> None:
    assert not report().ok
    assert report().rows_rejected == 2
    assert report(duplicates=0).ok
    assert report(duplicates=0).result("duplicate_pair").ok


def test_result_of_an_unknown_rule_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="known rules: rating_out_of_range, duplicate_pair"):
        report().result("duplicate_row")


def test_to_dict_is_json_and_keeps_rules_that_found_nothing() -> None:
    data = json.loads(json.dumps(report().to_dict()))

    assert data["source"] == "/data/ml-100k/u.data"
    assert (data["format"], data["lines_read"], data["rows_kept"]) == ("ml-100k", 100_003, 100_001)
    assert (data["rows_rejected"], data["ok"]) == (2, False)
    assert [rule["name"] for rule in data["rules"]] == ["rating_out_of_range", "duplicate_pair"]
    assert data["rules"][0]["count"] == 0
    assert data["rules"][1]["examples"][0] == {"line": 17, "text": "196\t242\t3\t881250949"}


def test_loader_report_is_json_serialisable_and_lists_every_rule(tmp_path: Path) -> None:
    path = tmp_path / "u.data"
    path.write_bytes(b"1\t1\t3\t1\n1\t2\t3\t1\n1\t2\t3\t1\n")

    loaded = load_ratings(path, "ml-100k", policy="drop")

    data = json.loads(json.dumps(loaded.report.to_dict()))
    expected = [rule.name for rule in rating_rules(RAW_FORMATS["ml-100k"], 2)]
    assert [rule["name"] for rule in data["rules"]] == expected
    duplicate = data["rules"][expected.index("duplicate_pair")]
    assert duplicate["count"] == 1
    assert duplicate["examples"] == [{"line": 3, "text": "1\t2\t3\t1"}]


def test_truncate_long_lines_only() -> None:
    long = "9" * 1000

    assert len(truncate(long)) == MAX_TEXT
    assert truncate(long).endswith("...")
    assert truncate("1\t2\t3\t4") == "1\t2\t3\t4"


def test_long_line_is_truncated_in_report_and_rejects(tmp_path: Path) -> None:
    path = tmp_path / "u.data"
    path.write_bytes(b"1\t1\t3\t1\n1\t2\t3\t1\n1\t2\t" + b"7" * 1000 + b"\t1\n")

    loaded = load_ratings(path, "ml-100k", policy="drop")

    ((_, text),) = loaded.report.result("rating_out_of_range").examples
    assert len(text) == MAX_TEXT
    assert loaded.rejects["text"].str.len().tolist() == [MAX_TEXT]


def test_data_validation_error_is_a_value_error_that_carries_the_report() -> None:
    error = DataValidationError(report().format(), report())

    assert isinstance(error, ValueError)
    assert error.report == report()
    assert "FAIL duplicate_pair" in str(error)
    assert DataValidationError("u.data is empty").report is None
