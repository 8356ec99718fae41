"""Offline A/B testing: which users see which model, and whether model B really beats model A.

Lesson 06 compares two models on the same hold-out users offline; the online router of lesson 08
sends live traffic with the same :func:`assign_variant`, so a user lands in the same variant
offline and online. Numpy and the standard library only: the evaluation and inference images,
where this runs, have no SciPy.

- :func:`assign_variant` / :func:`assign_variants`: deterministic, stateless bucketing by hash.
- :func:`paired_bootstrap`: a confidence interval for the mean per-user difference (any metric).
- :func:`mcnemar`: the exact test for a difference in hit rate on the same users.
- :func:`minimum_detectable_effect`: how large a difference a test on ``n`` users can see.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

# A bootstrap chunk holds at most this many resampled values (8 MB of int64 indices), so 10,000
# resamples of a million users never build one 80 GB index array.
_CHUNK_VALUES = 1 << 20


def _variant_edges(weights: Mapping[str, float]) -> tuple[list[str], np.ndarray]:
    """The variants that get traffic, in name order, and the inner bucket edges in [0, 1).

    Name order, not the mapping's, so a reordered config (JSON, YAML) moves nobody. Zero-weight
    variants are dropped, so they never get a user even at a rounding edge."""
    if not weights:
        raise ValueError("weights is empty: name at least one variant and its share of traffic")
    for name, weight in weights.items():
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"weight of variant {name!r} is {weight}: need a finite number >= 0")
    names = sorted(name for name, weight in weights.items() if weight > 0)
    if not names:
        raise ValueError(f"every weight is zero ({dict(weights)}): no variant would get traffic")
    shares = np.array([weights[name] for name in names], dtype=np.float64)
    return names, np.cumsum(shares)[:-1] / shares.sum()


def _unit_interval(user_id: int | str, experiment: str) -> float:
    """sha256 of ``experiment:user_id`` as a uniform number in [0, 1): its first 53 bits, which
    a float holds exactly. An int and its decimal string are the same user."""
    digest = hashlib.sha256(f"{experiment}:{user_id}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") >> 11) / (1 << 53)


def assign_variants(
    user_ids: Iterable[int | str], experiment: str, weights: Mapping[str, float]
) -> np.ndarray:
    """Each user's variant (a numpy string array, so ``variants == "B"`` is a mask).

    A user's hash falls in the bucket of the variant whose cumulative share covers it, so a user
    depends on nothing but its id, the experiment name and the weights: no state, no order.
    Buckets are laid out in name order; changing the weights moves only the users whose hash lies
    between an old and a new bucket edge (50/50 -> 60/40 moves 10 % of users, all from the second
    variant to the first). A new experiment name reshuffles everyone, independently of the last."""
    names, edges = _variant_edges(weights)
    units = np.fromiter((_unit_interval(user, experiment) for user in user_ids), dtype=np.float64)
    return np.asarray(names)[np.searchsorted(edges, units, side="right")]


def assign_variant(user_id: int | str, experiment: str, weights: Mapping[str, float]) -> str:
    """One user's variant, as :func:`assign_variants` gives it (the online router's call)."""
    return str(assign_variants([user_id], experiment, weights)[0])


@dataclass(frozen=True)
class Interval:
    """``difference`` = mean(b - a) over users, and its bootstrap confidence interval."""

    difference: float
    low: float
    high: float
    confidence: float


def _paired(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(
            f"a and b must be 1-D with one value per user, in the same user order; got shapes "
            f"{a.shape} and {b.shape}"
        )
    if len(a) == 0:
        raise ValueError("a and b are empty: there are no users to compare")
    return a, b


def paired_bootstrap(
    a: np.ndarray,
    b: np.ndarray,
    *,
    resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap of mean(b - a), resampling users with replacement.

    ``a[i]`` and ``b[i]`` are the same user's metric under models A and B (hit@10, ndcg@10, ...).
    Resampling the pairs, not each model on its own, keeps what the two models share: both find
    the same users easy, which an unpaired interval would count as noise (and so be wider).
    Vectorised in chunks of resamples; seeded, so a report shows the same interval every run."""
    a, b = _paired(a, b)
    if resamples < 1:
        raise ValueError(f"resamples is {resamples}: need at least 1")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence is {confidence}: need a level strictly between 0 and 1")
    differences = b.astype(np.float64) - a.astype(np.float64)
    if not np.isfinite(differences).all():
        raise ValueError("a or b holds NaN or infinite values: a metric per user must be finite")
    rng = np.random.default_rng(seed)
    n = len(differences)
    rows = max(1, _CHUNK_VALUES // n)
    means = np.concatenate(
        [
            differences[rng.integers(0, n, size=(min(rows, resamples - start), n))].mean(axis=1)
            for start in range(0, resamples, rows)
        ]
    )
    low, high = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Interval(float(differences.mean()), float(low), float(high), confidence)


@dataclass(frozen=True)
class McNemar:
    """Discordant pairs: ``b`` users hit by A only, ``c`` users hit by B only, of ``n_users``."""

    b: int
    c: int
    n_users: int
    p_value: float

    @property
    def difference(self) -> float:
        """B's hit rate minus A's: the users both hit or both miss cancel out."""
        return (self.c - self.b) / self.n_users


def _as_hits(name: str, hits: np.ndarray) -> np.ndarray:
    hits = np.asarray(hits)
    if hits.dtype != np.bool_ and not np.isin(hits, (0, 1)).all():
        raise ValueError(f"{name} must be booleans (or 0/1), one hit or miss per user")
    return hits.astype(bool)


def _binomial_tail(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2), summed in log space: C(n, k) / 2^n overflows a float
    long before n = 10,000, its logarithm never does."""
    log_half_n = n * math.log(2)
    log_pmf = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - log_half_n
        for i in range(k + 1)
    ]
    return math.exp(np.logaddexp.reduce(log_pmf))


def mcnemar(hits_a: np.ndarray, hits_b: np.ndarray) -> McNemar:
    """Exact McNemar test: do A and B differ in hit rate on the same users?

    Only the discordant users carry evidence; under "no difference" each of the b + c of them is
    equally likely to side with A or B, so ``b`` is Binomial(b + c, 1/2). Two-sided p-value:
    twice the smaller tail, capped at 1 (1.0 when b == c or there are no discordant pairs)."""
    hits_a, hits_b = _paired(_as_hits("hits_a", hits_a), _as_hits("hits_b", hits_b))
    b = int((hits_a & ~hits_b).sum())
    c = int((~hits_a & hits_b).sum())
    p_value = min(1.0, 2 * _binomial_tail(min(b, c), b + c))
    return McNemar(b, c, len(hits_a), p_value)


def minimum_detectable_effect(
    n_users: int,
    p_a: float,
    discordant: float | None = None,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
) -> float:
    """The smallest difference in hit rate a paired test on ``n_users`` finds with ``power``.

    Per user the paired difference d = hit_B - hit_A is -1, 0 or 1; its variance is the
    discordant rate q = P(A and B disagree) less the squared effect, about q for small effects.
    A two-sided level-``alpha`` test of mean(d) then has the power asked for when

        MDE = (z_{1 - alpha/2} + z_{power}) * sqrt(q / n_users)

    (the normal approximation to McNemar's test). Without a measured ``discordant`` rate, q is
    2 p_a (1 - p_a), the rate if the models erred independently at hit rate ``p_a``: conservative,
    since two models ranking the same users agree more often than that, which shrinks q."""
    if n_users < 1:
        raise ValueError(f"n_users is {n_users}: need at least one user")
    if not 0 < p_a < 1:
        raise ValueError(f"p_a is {p_a}: a hit rate strictly between 0 and 1")
    if discordant is None:
        discordant = 2 * p_a * (1 - p_a)
    elif not 0 < discordant <= 1:
        raise ValueError(f"discordant is {discordant}: a share of users in (0, 1]")
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha ({alpha}) and power ({power}) must lie strictly between 0 and 1")
    normal = NormalDist()
    z = normal.inv_cdf(1 - alpha / 2) + normal.inv_cdf(power)
    return z * math.sqrt(discordant / n_users)
