"""Offline A/B testing: hash bucketing against its share and stability promises, the paired
bootstrap against known intervals and its coverage, McNemar's exact test against hand-computed
binomial tails, and the minimum detectable effect against its closed form and the test's power."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from evaluation.ab import (
    assign_variant,
    assign_variants,
    mcnemar,
    minimum_detectable_effect,
    paired_bootstrap,
)

USERS = range(100_000)
HALVES = {"A": 1.0, "B": 1.0}


# --- bucketing -----------------------------------------------------------------------------------


def test_a_user_gets_the_same_variant_whatever_else_is_assigned():
    ids = np.random.default_rng(0).permutation(1000)
    together = dict(zip(ids, assign_variants(ids, "exp", HALVES), strict=True))
    alone = {user: assign_variant(int(user), "exp", HALVES) for user in ids[::-1]}
    assert together == alone
    assert assign_variant(42, "exp", HALVES) == assign_variant("42", "exp", HALVES)


def test_the_mapping_order_of_the_weights_moves_nobody():
    forward = assign_variants(range(1000), "exp", {"A": 1, "B": 2, "C": 3})
    backward = assign_variants(range(1000), "exp", {"C": 3, "B": 2, "A": 1})
    np.testing.assert_array_equal(forward, backward)


def test_the_shares_follow_the_normalised_weights():
    variants = assign_variants(USERS, "exp", {"A": 2, "B": 1, "C": 1, "off": 0})
    shares = {name: (variants == name).mean() for name in ("A", "B", "C", "off")}
    # a standard error of 0.16 % per share over 100,000 users
    assert shares == pytest.approx({"A": 0.5, "B": 0.25, "C": 0.25, "off": 0.0}, abs=0.005)


def test_another_experiment_reshuffles_users_independently():
    first = assign_variants(USERS, "exp-1", HALVES) == "A"
    second = assign_variants(USERS, "exp-2", HALVES) == "A"
    # independent halves agree on half of the users, not all (same hash) or none (mirrored)
    assert (first == second).mean() == pytest.approx(0.5, abs=0.01)


def test_new_weights_move_only_the_users_between_the_old_and_new_edge():
    before = assign_variants(USERS, "exp", {"A": 0.5, "B": 0.5})
    after = assign_variants(USERS, "exp", {"A": 0.6, "B": 0.4})
    moved = before != after
    assert moved.mean() == pytest.approx(0.1, abs=0.005)
    assert set(before[moved]) == {"B"} and set(after[moved]) == {"A"}


@pytest.mark.parametrize(
    ("weights", "problem"),
    [
        ({}, "empty"),
        ({"A": 1, "B": -0.5}, "'B' is -0.5"),
        ({"A": 0, "B": 0.0}, "every weight is zero"),
        ({"A": 1, "B": float("nan")}, "'B' is nan"),
    ],
)
def test_bad_weights_are_refused_by_name(weights, problem):
    with pytest.raises(ValueError, match=problem):
        assign_variant(1, "exp", weights)


# --- paired bootstrap ----------------------------------------------------------------------------


def test_identical_models_differ_by_exactly_nothing():
    a = np.random.default_rng(0).random(943)
    interval = paired_bootstrap(a, a.copy())
    assert (interval.difference, interval.low, interval.high) == (0.0, 0.0, 0.0)


def test_a_shift_of_a_tenth_is_found_and_told_apart_from_zero():
    rng = np.random.default_rng(0)
    a = rng.random(943)
    noise = rng.normal(0, 0.3, 943)
    interval = paired_bootstrap(a, a + 0.1 + noise - noise.mean())
    assert interval.difference == pytest.approx(0.1)
    assert 0 < interval.low < 0.1 < interval.high
    # the spread of a mean of 943 values with sd 0.3: 1.96 * 0.3 / sqrt(943) either side
    assert interval.high - interval.low == pytest.approx(2 * 1.96 * 0.3 / math.sqrt(943), rel=0.1)


def test_the_same_seed_gives_the_same_interval_and_another_seed_another():
    rng = np.random.default_rng(1)
    a, b = rng.random(200), rng.random(200)
    assert paired_bootstrap(a, b, seed=3) == paired_bootstrap(a, b, seed=3)
    assert paired_bootstrap(a, b, seed=3) != paired_bootstrap(a, b, seed=4)


def _paired_hits(rng, n, cells):
    """Hits of A and B per user, drawn from the joint probabilities of (A hit, B hit) in the
    order (1, 1), (1, 0), (0, 1), (0, 0)."""
    cell = rng.choice(4, size=n, p=cells)
    return cell < 2, (cell == 0) | (cell == 2)


def test_95_percent_intervals_cover_the_true_difference_about_95_percent_of_the_time():
    """Strongly correlated models, as two recommenders on the same users are: an interval that
    resampled A and B apart would be twice as wide and cover nearly always."""
    rng = np.random.default_rng(0)
    cells = [0.575, 0.025, 0.075, 0.325]  # hit rates 0.60 and 0.65: a true difference of 0.05
    covered = [
        interval.low <= 0.05 <= interval.high
        for interval in (
            paired_bootstrap(*_paired_hits(rng, 200, cells), resamples=2000, seed=trial)
            for trial in range(200)
        )
    ]
    # 200 trials: a standard error of 1.5 % around 95 %
    assert 0.9 <= np.mean(covered) <= 0.99


@pytest.mark.parametrize(
    ("a", "b", "problem"),
    [
        (np.zeros(3), np.zeros(4), "same user order"),
        (np.zeros((2, 2)), np.zeros((2, 2)), "1-D"),
        (np.zeros(0), np.zeros(0), "empty"),
        (np.zeros(3), np.array([0.0, np.nan, 1.0]), "NaN"),
    ],
)
def test_bootstrap_refuses_unpaired_or_empty_values(a, b, problem):
    with pytest.raises(ValueError, match=problem):
        paired_bootstrap(a, b)


# --- McNemar -------------------------------------------------------------------------------------


def _hits(b, c, both=0, neither=0):
    """Users hit by A only (b), by B only (c), by both and by neither."""
    hits_a = np.repeat([True, False, True, False], [b, c, both, neither])
    hits_b = np.repeat([False, True, True, False], [b, c, both, neither])
    return hits_a, hits_b


def exact_p_value(b, c):
    """Twice the smaller Binomial(b + c, 1/2) tail, in exact rationals."""
    n, coefficient, total = b + c, 1, 0
    for i in range(min(b, c) + 1):  # C(n, i + 1) = C(n, i) * (n - i) / (i + 1), exactly
        total += coefficient
        coefficient = coefficient * (n - i) // (i + 1)
    return float(min(Fraction(1), Fraction(2 * total, 2**n)))


def test_ten_discordant_pairs_all_one_way():
    result = mcnemar(*_hits(10, 0, both=30, neither=60))
    assert (result.b, result.c, result.n_users) == (10, 0, 100)
    assert result.p_value == pytest.approx(2 * 0.5**10)  # 0.001953125
    assert result.difference == pytest.approx(-0.1)


def test_equal_discordant_pairs_are_no_evidence():
    assert mcnemar(*_hits(7, 7, both=5)).p_value == 1.0
    assert mcnemar(*_hits(0, 0, both=5, neither=5)).p_value == 1.0


@pytest.mark.parametrize(("b", "c"), [(3, 9), (9, 3), (1, 1), (40, 65), (500, 560)])
def test_p_values_are_the_exact_binomial_tail(b, c):
    # by hand for (3, 9): 2 * (1 + 12 + 66 + 220) / 2^12 = 598 / 4096
    assert mcnemar(*_hits(b, c)).p_value == pytest.approx(exact_p_value(b, c), rel=1e-9)
    assert exact_p_value(3, 9) == 598 / 4096


def test_ten_thousand_discordant_pairs_neither_overflow_nor_underflow():
    result = mcnemar(*_hits(5000, 5200))
    assert result.p_value == pytest.approx(exact_p_value(5000, 5200), rel=1e-9)
    # the normal approximation with continuity correction, (|c - b| - 1) / sqrt(b + c)
    normal = math.erfc(199 / math.sqrt(10_200) / math.sqrt(2))
    assert result.p_value == pytest.approx(normal, abs=0.002)
    assert mcnemar(*_hits(0, 1000)).p_value == pytest.approx(2.0**-999, rel=1e-9)  # 1.9e-301


@pytest.mark.parametrize(
    ("hits_a", "hits_b", "problem"),
    [
        (np.array([True, False]), np.array([True]), "same user order"),
        (np.array([0, 2]), np.array([1, 0]), "booleans"),
        (np.array([], bool), np.array([], bool), "empty"),
    ],
)
def test_mcnemar_refuses_what_are_not_paired_hits(hits_a, hits_b, problem):
    with pytest.raises(ValueError, match=problem):
        mcnemar(hits_a, hits_b)


# --- minimum detectable effect -------------------------------------------------------------------


def test_the_effect_shrinks_as_one_over_the_square_root_of_users():
    for n in (100, 943, 6040):
        assert minimum_detectable_effect(4 * n, 0.4) == pytest.approx(
            minimum_detectable_effect(n, 0.4) / 2
        )
        assert minimum_detectable_effect(100 * n, 0.4) == pytest.approx(
            minimum_detectable_effect(n, 0.4) / 10
        )


def test_the_effect_is_the_closed_form_from_normal_tables():
    # z_0.975 = 1.959964 and z_0.8 = 0.841621; discordance 2 * 0.4 * 0.6 = 0.48 by default
    assert minimum_detectable_effect(943, 0.4) == pytest.approx(
        (1.959964 + 0.841621) * math.sqrt(0.48 / 943), rel=1e-6
    )
    assert minimum_detectable_effect(943, 0.4, 0.2, alpha=0.01, power=0.9) == pytest.approx(
        (2.575829 + 1.281552) * math.sqrt(0.2 / 943), rel=1e-6
    )


def test_mcnemar_detects_the_minimum_detectable_effect_with_the_power_asked_for():
    n, discordant = 943, 0.2
    effect = minimum_detectable_effect(n, 0.4, discordant)
    cells = [0.3, (discordant - effect) / 2, (discordant + effect) / 2]
    cells.append(1 - sum(cells))
    rng = np.random.default_rng(0)
    detected = [mcnemar(*_paired_hits(rng, n, cells)).p_value < 0.05 for _ in range(400)]
    # 400 trials: a standard error of 2 % around 80 %
    assert 0.72 <= np.mean(detected) <= 0.88


@pytest.mark.parametrize(
    ("args", "kwargs", "problem"),
    [
        ((0, 0.4), {}, "n_users"),
        ((100, 1.0), {}, "p_a"),
        ((100, 0.4, 0.0), {}, "discordant"),
        ((100, 0.4), {"power": 1.0}, "power"),
        ((100, 0.4), {"alpha": 0.0}, "alpha"),
    ],
)
def test_impossible_designs_are_refused(args, kwargs, problem):
    with pytest.raises(ValueError, match=problem):
        minimum_detectable_effect(*args, **kwargs)
