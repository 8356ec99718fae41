"""Raw MovieLens and NCF benchmark readers: exact values, every rule, every file-level refusal."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from preprocessing import schema
from preprocessing.formats import RAW_FORMATS
from preprocessing.job import resolve_source, run_preprocessing
from preprocessing.manifest import read_split
from preprocessing.ncf_benchmark import NCF_NUM_NEGATIVES, load_ncf_benchmark
from preprocessing.ratings import load_ratings
from preprocessing.reports import DataValidationError
from preprocessing.rules import rating_rules

NOW = 2_000_000_000
ML100K = Path(__file__).resolve().parents[3] / "shared" / "data" / "ml-100k" / "u.data"

# Two users with two ratings each: every rule case below adds lines to this.
GOOD = [
    b"1\t10\t3\t881250949",
    b"1\t20\t4\t881250950",
    b"2\t10\t5\t881250951",
    b"2\t30\t1\t881250952",
]
GOOD_ROWS = [
    (1, 10, 3.0, 881250949),
    (1, 20, 4.0, 881250950),
    (2, 10, 5.0, 881250951),
    (2, 30, 1.0, 881250952),
]
# A line only the lenient parse can read, so each rule case also runs through the diagnostic path;
# it breaks some rule other than the case's own.
LENIENT_TRIGGER = b"lenient\tparse"
LENIENT_TRIGGER_FOR = {"wrong_column_count": b"1\t50\t3\t1.5"}


def write(tmp_path: Path, lines: list[bytes], name: str = "u.data", *, end: bytes = b"\n") -> Path:
    path = tmp_path / name
    path.write_bytes(b"\n".join(lines) + end)
    return path


def frame(rows: list[tuple[int, int, float, int]]) -> pd.DataFrame:
    columns = list(schema.RAW_COLUMNS)
    data = {name: [row[k] for row in rows] for k, name in enumerate(columns)}
    return pd.DataFrame(data).astype(schema.RAW_COLUMNS)


def assert_frame(actual: pd.DataFrame, rows: list[tuple[int, int, float, int]]) -> None:
    assert dict(actual.dtypes.astype(str)) == schema.RAW_COLUMNS
    pd.testing.assert_frame_equal(actual.reset_index(drop=True), frame(rows))


# --- formats -----------------------------------------------------------------------------------


def test_ml100k_parses_exact_values_and_dtypes(tmp_path: Path) -> None:
    result = load_ratings(write(tmp_path, GOOD), "ml-100k", now=NOW)

    assert_frame(result.interactions, GOOD_ROWS)
    assert result.report.ok
    assert (result.report.lines_read, result.report.rows_kept) == (4, 4)
    assert result.rejects.empty
    assert list(result.rejects.columns) == ["line", "rule", "text"]


def test_interactions_can_be_edited_in_place(tmp_path: Path) -> None:
    interactions = load_ratings(write(tmp_path, GOOD), "ml-100k", now=NOW).interactions

    interactions.loc[0, "user_id"] = 7
    interactions["timestamp"] += 1

    assert interactions.loc[0, "user_id"] == 7
    assert interactions.loc[0, "timestamp"] == 881250950


def test_ml1m_double_colon_separator(tmp_path: Path) -> None:
    lines = [line.replace(b"\t", b"::") for line in GOOD]
    result = load_ratings(write(tmp_path, lines, "ratings.dat"), "ml-1m", now=NOW)

    assert_frame(result.interactions, GOOD_ROWS)


def test_ml10m_accepts_half_stars_that_ml1m_rejects(tmp_path: Path) -> None:
    path = write(tmp_path, [b"1::10::3.5::881250949", b"1::20::0.5::881250950"], "ratings.dat")

    result = load_ratings(path, "ml-10m", now=NOW)

    assert_frame(result.interactions, [(1, 10, 3.5, 881250949), (1, 20, 0.5, 881250950)])
    with pytest.raises(DataValidationError, match="rating_out_of_range"):
        load_ratings(path, "ml-1m", now=NOW)


def test_ml_csv_header_and_half_stars(tmp_path: Path) -> None:
    lines = [b"userId,movieId,rating,timestamp", b"1,296,5.0,1147880044", b"1,306,3.5,1147868817"]
    result = load_ratings(write(tmp_path, lines, "ratings.csv"), "ml-csv", now=NOW)

    assert_frame(result.interactions, [(1, 296, 5.0, 1147880044), (1, 306, 3.5, 1147868817)])
    assert result.report.lines_read == 2


def test_crlf_line_endings_parse_and_a_blank_crlf_line_is_counted(tmp_path: Path) -> None:
    path = write(tmp_path, [*GOOD[:2], b"", *GOOD[2:]])
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))

    result = load_ratings(path, "ml-100k", policy="drop", now=NOW)

    assert_frame(result.interactions, GOOD_ROWS)
    assert result.rejects.to_dict("list") == {
        "line": [3],
        "rule": ["wrong_column_count"],
        "text": [""],
    }


def test_a_last_line_without_newline_is_truncated_even_when_its_values_look_valid(
    tmp_path: Path,
) -> None:
    cut = GOOD[3][:-2]  # the timestamp lost its last two digits, and still parses
    path = write(tmp_path, [*GOOD[:3], cut], end=b"")

    with pytest.raises(DataValidationError) as caught:
        load_ratings(path, "ml-100k", now=NOW)
    dropped = load_ratings(path, "ml-100k", policy="drop", min_interactions=1, now=NOW)

    message = str(caught.value)
    assert f"{path} line 4 ends without a newline, so the file looks cut short" in message
    assert "download it again, or add the final newline if the file is whole" in message
    assert dropped.rejects.to_dict("list") == {
        "line": [4],
        "rule": ["truncated_last_line"],
        "text": [cut.decode()],
    }
    assert_frame(dropped.interactions, GOOD_ROWS[:3])


@pytest.mark.needs_ml100k
def test_real_movielens_100k() -> None:
    if not ML100K.is_file():
        pytest.skip(f"{ML100K} is absent")

    result = load_ratings(ML100K, "ml-100k")

    interactions = result.interactions
    assert len(interactions) == 100_000
    assert interactions["user_id"].nunique() == 943
    assert interactions["item_id"].nunique() == 1682
    assert dict(interactions.dtypes.astype(str)) == schema.RAW_COLUMNS
    assert interactions.iloc[0].tolist() == [196, 242, 3.0, 881250949]
    assert result.report.ok


# --- row-level rules ---------------------------------------------------------------------------

# (rule, lines added after GOOD, line numbers the rule reports). GOOD is lines 1-4. Empty fields,
# "nan" and out-of-range values parse strictly; text that is no number needs the lenient parse.
RULE_CASES = [
    ("undecodable_bytes", [b"\xff\xfe\t10\t3\t881250949", b"3\t1\xff\t3\t881250949"], [5, 6]),
    ("wrong_column_count", [b"3\t10\t3", b"", b"3\t10\t3\t881250949\t7"], [5, 6, 7]),
    ("wrong_column_count", [b""], [5]),
    ("non_integer_user_id", [b"u3\t10\t3\t881250949", b"1.5\t10\t3\t1"], [5, 6]),
    ("non_integer_user_id", [b"\t10\t3\t881250949", b"\t\t\t"], [5, 6]),
    ("non_integer_item_id", [b"1\tabc\t3\t881250949", b"1\t\t3\t881250949"], [5, 6]),
    ("user_id_out_of_range", [b"0\t10\t3\t881250949", b"-4\t11\t3\t881250949"], [5, 6]),
    ("item_id_out_of_range", [b"1\t0\t3\t881250949"], [5]),
    ("missing_rating", [b"1\t40\t\t881250949", b"1\t41\tnan\t881250949"], [5, 6]),
    ("missing_rating", [b"1\t41\tNA\t881250949"], [5]),
    ("rating_out_of_range", [b"1\t40\t6\t1", b"1\t41\t0\t1", b"1\t42\t3.5\t1"], [5, 6, 7]),
    ("bad_timestamp", [b"1\t40\t3\t-5", b"1\t42\t3\t2000000001", b"1\t43\t3\t"], [5, 6, 7]),
    ("bad_timestamp", [b"1\t41\t3\t12.5"], [5]),
    ("duplicate_pair", [b"1\t10\t5\t881250999", b"2\t30\t2\t881250999"], [5, 6]),
    ("too_few_interactions", [b"3\t10\t3\t881250949"], [5]),
]
RULE_CASE_IDS = [f"{rule}-{k}" for k, (rule, _, _) in enumerate(RULE_CASES)]


def rule_case_file(tmp_path: Path, rule: str, added: list[bytes], lenient: bool) -> Path:
    """The case's lines, plus (if lenient) one line that breaks some other rule."""
    trigger = LENIENT_TRIGGER_FOR.get(rule, LENIENT_TRIGGER)
    return write(tmp_path, GOOD + added + ([trigger] if lenient else []))


@pytest.mark.parametrize("lenient", [False, True], ids=["strict-parse", "lenient-parse"])
@pytest.mark.parametrize(("rule", "added", "lines"), RULE_CASES, ids=RULE_CASE_IDS)
def test_rule_fails_with_count_and_line_numbers(
    tmp_path: Path, rule: str, added: list[bytes], lines: list[int], lenient: bool
) -> None:
    path = rule_case_file(tmp_path, rule, added, lenient)

    with pytest.raises(DataValidationError) as caught:
        load_ratings(path, "ml-100k", now=NOW)

    result = caught.value.report.result(rule)
    assert (result.count, result.lines) == (len(lines), lines)
    message = str(caught.value)
    assert f"FAIL {rule}" in message
    assert f"line {lines[0]}: " in message
    assert "policy='drop'" in message


@pytest.mark.parametrize("lenient", [False, True], ids=["strict-parse", "lenient-parse"])
@pytest.mark.parametrize(("rule", "added", "lines"), RULE_CASES, ids=RULE_CASE_IDS)
def test_rule_drops_the_lines_and_keeps_the_rest(
    tmp_path: Path, rule: str, added: list[bytes], lines: list[int], lenient: bool
) -> None:
    path = rule_case_file(tmp_path, rule, added, lenient)

    result = load_ratings(path, "ml-100k", policy="drop", now=NOW)

    assert_frame(result.interactions, GOOD_ROWS)
    rejects = result.rejects[result.rejects["rule"] == rule]
    assert rejects["line"].tolist() == lines
    raw_lines = path.read_bytes().split(b"\n")
    expected_text = [raw_lines[n - 1].decode("utf-8", "backslashreplace") for n in lines]
    assert rejects["text"].tolist() == expected_text
    assert result.report.result(rule).count == len(lines)
    assert result.report.rows_kept == len(GOOD_ROWS)
    assert result.report.lines_read == len(GOOD) + len(added) + lenient
    assert result.rejects["line"].dtype == np.int64


def test_truncated_last_line_replaces_the_rule_it_broke(tmp_path: Path) -> None:
    path = write(tmp_path, [*GOOD, b"2\t4"], end=b"")

    result = load_ratings(path, "ml-100k", policy="drop", now=NOW)

    assert result.rejects.to_dict("list") == {
        "line": [5],
        "rule": ["truncated_last_line"],
        "text": ["2\t4"],
    }
    assert result.report.result("wrong_column_count").count == 0
    with pytest.raises(DataValidationError, match=r"FAIL truncated_last_line .*\n.*line 5: 2\\t4"):
        load_ratings(path, "ml-100k", now=NOW)


def test_a_line_counts_under_its_first_rule_only(tmp_path: Path) -> None:
    path = write(tmp_path, [*GOOD, b"0\t0\t9\t-1"])

    result = load_ratings(path, "ml-100k", policy="drop", now=NOW)

    assert result.rejects["rule"].tolist() == ["user_id_out_of_range"]
    assert result.report.rows_rejected == 1


def test_pair_rules_only_see_lines_that_passed_the_others(tmp_path: Path) -> None:
    # Line 5 breaks a value rule, so line 6 is the first valid (3, 10) and stays; user 3 then has
    # one valid rating left after line 7 is dropped as a duplicate of line 6.
    added = [b"3\t10\t9\t881250949", b"3\t10\t3\t881250950", b"3\t10\t4\t881250951"]

    result = load_ratings(write(tmp_path, GOOD + added), "ml-100k", policy="drop", now=NOW)

    assert result.rejects[["line", "rule"]].values.tolist() == [
        [5, "rating_out_of_range"],
        [6, "too_few_interactions"],
        [7, "duplicate_pair"],
    ]
    with_one = load_ratings(tmp_path / "u.data", "ml-100k", policy="drop", min_interactions=1)
    assert with_one.interactions.iloc[-1].tolist() == [3, 10, 3.0, 881250950]


def test_min_interactions_rejects_every_row_of_small_users(tmp_path: Path) -> None:
    path = write(tmp_path, [*GOOD, b"1\t30\t2\t881250953"])

    result = load_ratings(path, "ml-100k", policy="drop", min_interactions=3, now=NOW)

    assert_frame(result.interactions, [*GOOD_ROWS[:2], (1, 30, 2.0, 881250953)])
    assert result.rejects["line"].tolist() == [3, 4]
    assert "fewer than 3" in result.report.result("too_few_interactions").rule.description


def test_default_now_accepts_today_and_rejects_far_future(tmp_path: Path) -> None:
    path = write(tmp_path, [*GOOD, b"1\t40\t3\t1700000000", b"1\t41\t3\t99999999999"])

    result = load_ratings(path, "ml-100k", policy="drop")

    assert result.rejects[["line", "rule"]].values.tolist() == [[6, "bad_timestamp"]]


def test_csv_line_numbers_count_the_header(tmp_path: Path) -> None:
    lines = [b"userId,movieId,rating,timestamp", b"1,1,4.0,1", b"1,2,5.5,1", b"1,3,0.25,1"]
    lines.append(b"1,4,4.5,1")

    result = load_ratings(write(tmp_path, lines, "ratings.csv"), "ml-csv", policy="drop", now=NOW)

    assert result.rejects.to_dict("list") == {
        "line": [3, 4],
        "rule": ["rating_out_of_range"] * 2,
        "text": ["1,2,5.5,1", "1,3,0.25,1"],
    }
    assert_frame(result.interactions, [(1, 1, 4.0, 1), (1, 4, 4.5, 1)])


def test_ml1m_rejects_show_the_raw_line(tmp_path: Path) -> None:
    lines = [line.replace(b"\t", b"::") for line in [*GOOD, b"1\t40\t9\t881250949"]]

    result = load_ratings(write(tmp_path, lines, "ratings.dat"), "ml-1m", policy="drop", now=NOW)

    assert result.rejects["text"].tolist() == ["1::40::9::881250949"]
    assert result.rejects["line"].tolist() == [5]


def test_rule_descriptions_follow_the_format() -> None:
    csv_rules = {rule.name: rule.description for rule in rating_rules(RAW_FORMATS["ml-csv"], 2)}
    benchmark_rules = rating_rules(RAW_FORMATS["ncf-rating"], 2)

    assert "0.5..5" in csv_rules["rating_out_of_range"]
    assert (
        "below 0"
        in {rule.name: rule.description for rule in benchmark_rules}["user_id_out_of_range"]
    )
    assert "below 1" in csv_rules["user_id_out_of_range"]


# --- file-level problems -----------------------------------------------------------------------


def test_missing_file_names_path_and_expected_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "u.data"

    with pytest.raises(DataValidationError, match="does not exist") as caught:
        load_ratings(path, "ml-100k", policy="drop")

    assert str(path) in str(caught.value)
    assert "expected u.data" in str(caught.value)


def test_folder_instead_of_file_points_at_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match=r"is a folder.*ratings\.csv"):
        load_ratings(tmp_path, "ml-csv")


@pytest.mark.parametrize(
    ("content", "fmt"),
    [(b"", "ml-100k"), (b"\n \n\n", "ml-1m"), (b"userId,movieId,rating,timestamp\n", "ml-csv")],
    ids=["zero-bytes", "only-blank-lines", "header-only"],
)
def test_empty_file_is_refused_whatever_the_policy(
    tmp_path: Path, content: bytes, fmt: str
) -> None:
    path = tmp_path / RAW_FORMATS[fmt].file_name
    path.write_bytes(content)

    with pytest.raises(DataValidationError, match="has no data lines"):
        load_ratings(path, fmt, policy="drop")


@pytest.mark.parametrize(
    ("lines", "fmt", "found"),
    [
        (
            [line.replace(b"\t", b",") for line in GOOD],
            "ml-100k",
            "looks ','-separated (like ml-csv)",
        ),
        (
            [line.replace(b"\t", b"::") for line in GOOD],
            "ml-100k",
            "looks '::'-separated (like ml-1m",
        ),
        (GOOD, "ml-1m", "looks TAB-separated (like ml-100k"),
        ([line.replace(b"\t", b":") for line in GOOD], "ml-1m", "looks ':'-separated"),
        ([b"userId;movieId;rating;timestamp", b"1;2;3.0;4"], "ml-csv", "looks ';'-separated"),
        ([line.replace(b"\t", b" ") for line in GOOD], "ml-100k", "most lines have a single field"),
    ],
    ids=["comma-for-tab", "ml1m-as-ml100k", "tab-for-double-colon", "colon", "semicolon", "spaces"],
)
def test_wrong_separator_is_refused_with_a_guess(
    tmp_path: Path, lines: list[bytes], fmt: str, found: str
) -> None:
    path = write(tmp_path, lines, RAW_FORMATS[fmt].file_name)

    with pytest.raises(DataValidationError) as caught:
        load_ratings(path, fmt, policy="drop")

    message = str(caught.value)
    assert f"expected {RAW_FORMATS[fmt].describe()}" in message
    assert found in message


def test_renamed_header_column_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, [b"userId,itemId,rating,timestamp", b"1,2,3.0,4"], "ratings.csv")

    with pytest.raises(DataValidationError) as caught:
        load_ratings(path, "ml-csv", policy="drop")

    message = str(caught.value)
    assert "column 'movieId' is missing" in message
    assert "column 'itemId' is unexpected" in message
    assert "'userId,itemId,rating,timestamp'" in message


def test_reordered_header_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, [b"movieId,userId,rating,timestamp", b"1,2,3.0,4"], "ratings.csv")

    with pytest.raises(DataValidationError, match="columns are in another order"):
        load_ratings(path, "ml-csv")


def test_missing_header_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, [b"1,2,3.0,4", b"1,3,3.0,4"], "ratings.csv")

    with pytest.raises(
        DataValidationError, match=r"no header line: line 1 is data \('1,2,3.0,4'\)"
    ):
        load_ratings(path, "ml-csv", policy="drop")


def test_bare_carriage_return_is_refused_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, [GOOD[0], GOOD[1] + b"\r" + GOOD[2], GOOD[3]])

    with pytest.raises(DataValidationError, match="line 2 holds a carriage return"):
        load_ratings(path, "ml-100k", policy="drop")


def test_unknown_format_and_policy_list_the_choices(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)

    with pytest.raises(ValueError, match="choose one of ml-100k, ml-1m"):
        load_ratings(path, "ml-100m")
    with pytest.raises(ValueError, match=r"policy must be one of \('fail', 'drop'\)"):
        load_ratings(path, "ml-100k", policy="skip")


# --- NCF benchmark files -----------------------------------------------------------------------

TRAIN = [(0, 0, 5, 978300760), (0, 1, 3, 978302109), (1, 2, 4, 978301968)]
TEST = [(0, 3, 4, 978824291), (1, 4, 2, 978300275)]


def negatives_for(user: int) -> list[int]:
    return [10 + user + k for k in range(NCF_NUM_NEGATIVES)]


def negative_line(user: int, item: int, negatives: list[int]) -> bytes:
    return "\t".join([f"({user},{item})", *map(str, negatives)]).encode()


def write_benchmark(tmp_path: Path, negative_lines: list[bytes] | None = None) -> Path:
    def rating_lines(rows: list[tuple[int, int, int, int]]) -> list[bytes]:
        return ["\t".join(map(str, row)).encode() for row in rows]

    if negative_lines is None:
        negative_lines = [negative_line(u, i, negatives_for(u)) for u, i, _, _ in TEST]
    write(tmp_path, rating_lines(TRAIN), "ml-1m.train.rating")
    write(tmp_path, rating_lines(TEST), "ml-1m.test.rating")
    write(tmp_path, negative_lines, "ml-1m.test.negative")
    return tmp_path


def test_benchmark_loads_train_test_and_negatives(tmp_path: Path) -> None:
    benchmark = load_ncf_benchmark(write_benchmark(tmp_path), "ml-1m")

    assert_frame(benchmark.train, TRAIN)
    assert_frame(benchmark.test, TEST)
    assert benchmark.negatives.dtype == np.int64
    assert benchmark.negatives.shape == (2, NCF_NUM_NEGATIVES)
    np.testing.assert_array_equal(benchmark.negatives, [negatives_for(0), negatives_for(1)])
    assert benchmark.report.ok
    assert benchmark.report.lines_read == 2


@pytest.mark.parametrize(
    ("second_line", "rule"),
    [
        (negative_line(1, 7, negatives_for(1)), "pair_mismatch"),
        (negative_line(0, 4, negatives_for(1)), "pair_mismatch"),
        (negative_line(1, 4, [2, *negatives_for(1)[1:]]), "negative_already_seen"),
        (negative_line(1, 4, [*negatives_for(1)[:-1], 4]), "negative_already_seen"),
        (negative_line(1, 4, [-3, *negatives_for(1)[1:]]), "negative_out_of_range"),
        (
            negative_line(1, 4, negatives_for(1)).replace(b"\t11\t", b"\tx\t"),
            "non_integer_negative",
        ),
        (negative_line(1, 4, negatives_for(1)).replace(b"(1,4)", b"(1;4)"), "malformed_pair"),
        (negative_line(1, 4, negatives_for(1)[:-1]), "wrong_column_count"),
    ],
    ids=["item", "user", "train-item", "test-item", "negative-id", "text", "pair", "98-negatives"],
)
def test_benchmark_negative_file_must_fit_the_rating_files(
    tmp_path: Path, second_line: bytes, rule: str
) -> None:
    first_line = negative_line(0, 3, negatives_for(0))
    directory = write_benchmark(tmp_path, [first_line, second_line])

    with pytest.raises(DataValidationError) as caught:
        load_ncf_benchmark(directory, "ml-1m")

    result = caught.value.report.result(rule)
    assert (result.count, result.lines) == (1, [2])
    assert caught.value.report.rows_rejected == 1
    assert f"FAIL {rule}" in str(caught.value)
    assert "line 2: (" in str(caught.value)


def test_benchmark_negative_file_with_too_few_lines(tmp_path: Path) -> None:
    directory = write_benchmark(tmp_path, [negative_line(0, 3, negatives_for(0))])

    with pytest.raises(DataValidationError, match=r"has 1 lines but ml-1m.test.rating has 2"):
        load_ncf_benchmark(directory, "ml-1m")


def test_benchmark_rating_files_use_zero_based_ids_strictly(tmp_path: Path) -> None:
    directory = write_benchmark(tmp_path)
    train = directory / "ml-1m.train.rating"
    train.write_bytes(train.read_bytes() + b"-1\t0\t5\t978300760\n")

    with pytest.raises(DataValidationError, match=r"(?s)FAIL user_id_out_of_range.*line 4: -1"):
        load_ncf_benchmark(directory, "ml-1m")


def test_benchmark_missing_negative_file_is_named(tmp_path: Path) -> None:
    directory = write_benchmark(tmp_path)
    (directory / "ml-1m.test.negative").unlink()

    with pytest.raises(DataValidationError, match=r"ml-1m.test.negative does not exist"):
        load_ncf_benchmark(directory, "ml-1m")


def test_benchmark_negative_file_without_final_newline_looks_cut_short(tmp_path: Path) -> None:
    directory = write_benchmark(tmp_path)
    negatives = directory / "ml-1m.test.negative"
    negatives.write_bytes(negatives.read_bytes().rstrip(b"\n"))

    with pytest.raises(DataValidationError, match=r"(?s)FAIL truncated_last_line.*line 2 ends"):
        load_ncf_benchmark(directory, "ml-1m")


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"num_negatives": 50}, "--num-negatives 50: He et al.'s benchmark files fix 99"),
        ({"policy": "drop"}, "--policy drop: He et al.'s benchmark files are read strictly"),
    ],
    ids=["num-negatives", "policy"],
)
def test_benchmark_refuses_options_its_files_fix(
    tmp_path: Path, option: dict[str, object], message: str
) -> None:
    source = resolve_source("ncf-ml-1m", data_dir=write_benchmark(tmp_path), cache_dir=tmp_path)

    with pytest.raises(ValueError, match=re.escape(message)):
        run_preprocessing(source, tmp_path / "processed", validation=False, **option)

    assert not (tmp_path / "processed").exists()


def test_benchmark_files_go_through_the_processing_job(tmp_path: Path) -> None:
    source = resolve_source("ncf-ml-1m", data_dir=write_benchmark(tmp_path), cache_dir=tmp_path)
    manifest = run_preprocessing(source, tmp_path / "processed", validation=False).manifest
    assert (manifest["counts"]["train"], manifest["counts"]["test"]) == (len(TRAIN), len(TEST))
    assert read_split(tmp_path / "processed").items["title"].isna().all()  # the files have none
    (tmp_path / "ml-1m.test.negative").unlink()
    with pytest.raises(FileNotFoundError, match=r"has no ml-1m\.test\.negative for ncf-ml-1m"):
        resolve_source("ncf-ml-1m", data_dir=tmp_path, cache_dir=tmp_path)
