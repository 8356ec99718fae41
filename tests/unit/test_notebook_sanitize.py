"""The nbval sanitize rules: what changes from run to run is masked, what a lesson shows is not."""

import re
from pathlib import Path

import pytest
from nbval.plugin import get_sanitize_patterns

from orchestration.sagemaker_local.pipeline import StepStatus, format_steps

RULES = get_sanitize_patterns((Path(__file__).parents[2] / "notebooks/sanitize.cfg").read_text())


def sanitized(text: str) -> str:
    for regex, replacement in RULES:  # in file order, as nbval applies them
        text = re.sub(regex, replacement, text)
    return text


def steps(train_seconds: float, status: str = "Succeeded") -> str:
    return format_steps(
        [
            StepStatus("Preprocess", "Succeeded", 8.4, "Preprocess-1764730000-0a1b"),
            StepStatus("Train", status, train_seconds, "Train-1764730123-9f8e"),
        ]
    )


@pytest.mark.parametrize("seconds", [0.4, 10.1, 125.0])
def test_a_step_tables_durations_and_their_padding_are_masked(seconds):
    assert sanitized(steps(seconds)) == sanitized(steps(9.6))


def test_a_step_tables_statuses_still_count():
    assert sanitized(steps(9.6, "Failed")) != sanitized(steps(9.6))


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("stage took 0.3 s", "stage took 12 s"),
        ('"mean_epoch_seconds": 0.24', '"mean_epoch_seconds": 1.5'),
    ],
)
def test_durations_in_text_are_masked(first, second):
    assert sanitized(first) == sanitized(second)
