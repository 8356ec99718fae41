"""MovieLens-shaped interactions with a planted taste structure, for CI and scale tests.

Real MovieLens cannot be committed or downloaded on every machine, and it hides what a good
model should find. This generator makes data of any size, deterministic by seed, that looks like
MovieLens where it matters to the course (every user has at least 20 ratings, history lengths
are heavy-tailed, item popularity is Zipf-like, timestamps increase per user) and that holds a
known answer: every user and item belongs to one of ``n_clusters`` taste clusters, and a user
draws most of its items from its own cluster. Each user's history is shuffled before timestamps
are assigned, so the latest (held-out) interaction follows the same structure as the rest and
leave-one-out evaluation rewards a model that learns the clusters.

Everything is vectorised: no Python loop runs per user or per row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from preprocessing.formats import RAW_FORMATS

MIN_HISTORY = 20  # MovieLens keeps only users with at least 20 ratings.

# (n_users, n_items, n_interactions) of the real releases, for data of the same size.
SHAPES: dict[str, tuple[int, int, int]] = {
    "ml-100k": (943, 1682, 100_000),
    "ml-1m": (6040, 3706, 1_000_209),
    "ml-10m": (69878, 10677, 10_000_054),
    "ml-20m": (138493, 26744, 20_000_263),
    "ml-32m": (200948, 87585, 32_000_204),
}

# Extra history beyond MIN_HISTORY is lognormal; sigma 1.35 gives history-length quartiles of
# 46 / 82 / 176 at the ML-1M shape (the real ones: 44 / 96 / 208).
HISTORY_SIGMA = 1.35
# Heaviest users rate about half the catalogue in MovieLens (ML-100K: 737 of 1,682 items).
MAX_CATALOGUE_SHARE = 0.5
# Zipf weight 1/(rank + offset) over the whole catalogue: an offset of 10 lets the top item reach
# about half the users, as in MovieLens (ML-1M: 3,428 of 6,040), without every user seeing it.
POPULARITY_OFFSET = 10.0
INITIAL_OVERSAMPLING = 1.5  # draws per wanted item in the first round; later rounds adapt.
OVERSAMPLING_MARGIN = 1.2

TIME_START = 852_076_800  # 1997-01-01 00:00:00 UTC
TIME_END = 1_546_300_800  # 2019-01-01 00:00:00 UTC (exclusive)
DAY = 86_400
# Days between a user's first and last rating: lognormal, as most MovieLens users rate in a burst
# and a few come back for years.
MEDIAN_ACTIVE_DAYS = 30.0
ACTIVE_DAYS_SIGMA = 2.0

# Ratings: a user and item bias plus a bonus for an item of the user's own taste cluster, rounded.
# Chosen to match ML-1M's mean rating and spread (docs/data.md has the figures).
RATING_BASE = 3.3
OWN_CLUSTER_BONUS = 0.6
USER_BIAS_SD = 0.35
ITEM_BIAS_SD = 0.5
RATING_NOISE_SD = 1.0

# Independent random streams, so changing how one part is drawn leaves the others as they were.
_ITEMS, _USERS, _LENGTHS, _DRAWS, _ORDER, _RATINGS, _TIMES = range(7)


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream,)))


@dataclass(frozen=True)
class _Catalogue:
    """Items laid out by cluster: the item of popularity rank r in cluster c is slots[r * C + c]."""

    slots: np.ndarray  # a permutation of the item indices
    sizes: np.ndarray  # items per cluster

    @property
    def n_clusters(self) -> int:
        return len(self.sizes)

    @property
    def offset(self) -> float:
        """Zipf offset within a cluster, so the catalogue-wide shape does not depend on C."""
        return POPULARITY_OFFSET / self.n_clusters

    def item_clusters(self) -> np.ndarray:
        clusters = np.empty(len(self.slots), dtype=np.int64)
        clusters[self.slots] = np.arange(len(self.slots)) % self.n_clusters
        return clusters

    def draw(self, clusters: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One item per entry of ``clusters``, Zipf-distributed over that cluster's items.

        Inverse CDF of the weight 1/(x + offset) integrated over each rank's unit interval: O(1)
        per draw, where searching cumulative weights (as rng.choice does) costs a search each
        (docs/benchmarks.md has the measurement).
        """
        k = self.offset
        size = self.sizes[clusters]
        rank = np.floor(k * ((size + k) / k) ** rng.random(len(clusters)) - k).astype(np.int64)
        return self.slots[np.minimum(rank, size - 1) * self.n_clusters + clusters]

    def cluster_masses(self) -> np.ndarray:
        return np.log((self.sizes + self.offset) / self.offset)


def _catalogue(n_items: int, n_clusters: int, seed: int) -> _Catalogue:
    """Balanced clusters (sizes differ by at most one) with interleaved popularity ranks."""
    return _Catalogue(
        slots=_rng(seed, _ITEMS).permutation(n_items),
        sizes=np.bincount(np.arange(n_items) % n_clusters),
    )


def _user_clusters(n_users: int, n_clusters: int, seed: int) -> np.ndarray:
    return _rng(seed, _USERS).integers(n_clusters, size=n_users, dtype=np.int64)


def planted_clusters(
    n_users: int, n_items: int, seed: int = 0, n_clusters: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """The answer key: (cluster of each user, cluster of each item), indexed by 0-based id.

    Lets a lesson or test check what a model learned (``user_id - 1`` indexes the first array).
    The same arguments as :func:`generate` give the clusters that generated its data.
    """
    _check_clusters(n_items, n_clusters)
    return (
        _user_clusters(n_users, n_clusters, seed),
        _catalogue(n_items, n_clusters, seed).item_clusters(),
    )


def scaled_shape(n_interactions: int) -> tuple[int, int, int]:
    """(n_users, n_items, n_interactions) of a MovieLens release of any size, for :func:`generate`.

    Users and items follow the real releases (``SHAPES``) on a log-log line through the two
    nearest in size (extended past the smallest and the largest), so data of any size keeps
    MovieLens's proportions; at a release's size it is that release's shape. Users are capped so
    each keeps its ``MIN_HISTORY`` ratings, and items so each history fits the catalogue.
    """
    if n_interactions < MIN_HISTORY:
        raise ValueError(
            f"n_interactions must be at least MIN_HISTORY = {MIN_HISTORY} (one user's "
            f"ratings); got {n_interactions}."
        )
    known = sorted(SHAPES.values(), key=lambda shape: shape[2])
    sizes = np.log([shape[2] for shape in known])
    size = math.log(n_interactions)
    low = int(np.clip(np.searchsorted(sizes, size) - 1, 0, len(known) - 2))
    along = (size - sizes[low]) / (sizes[low + 1] - sizes[low])
    users, items = (
        round(math.exp((1 - along) * math.log(known[low][i]) + along * math.log(known[low + 1][i])))
        for i in (0, 1)
    )
    n_users = max(1, min(users, n_interactions // MIN_HISTORY))
    n_items = max(items, MIN_HISTORY + 1, math.ceil(n_interactions / n_users) + 1)
    return n_users, n_items, n_interactions


def generate(
    n_users: int,
    n_items: int,
    n_interactions: int,
    seed: int = 0,
    *,
    n_clusters: int = 10,
    own_cluster_share: float = 0.7,
    half_stars: bool = False,
) -> pd.DataFrame:
    """Interactions with the columns and dtypes of ``schema.RAW_COLUMNS``, sorted by user and time.

    ``own_cluster_share`` is the chance that a draw comes from the user's own cluster (the rest
    follow global popularity); users with long histories exhaust their cluster and spill over.
    ``half_stars`` gives 0.5..5.0 ratings in half steps (ML-10M and later) instead of 1..5.
    Ids span 1..n_users and 1..n_items; with few interactions a rare item may go unrated.
    """
    _check_arguments(n_users, n_items, n_interactions, n_clusters, own_cluster_share)
    catalogue = _catalogue(n_items, n_clusters, seed)
    user_clusters = _user_clusters(n_users, n_clusters, seed)
    lengths = _history_lengths(n_users, n_items, n_interactions, _rng(seed, _LENGTHS))
    keys = _sample_histories(lengths, user_clusters, catalogue, own_cluster_share, seed)
    users, items = _in_random_order_per_user(keys, n_items, _rng(seed, _ORDER))
    own = catalogue.item_clusters()[items] == user_clusters[users]
    return pd.DataFrame(
        {
            "user_id": users + 1,
            "item_id": items + 1,
            "rating": _ratings(users, items, own, half_stars, _rng(seed, _RATINGS)),
            "timestamp": _timestamps(lengths, _rng(seed, _TIMES)),
        }
    )


def _check_clusters(n_items: int, n_clusters: int) -> None:
    if not 1 <= n_clusters <= n_items:
        raise ValueError(f"n_clusters must be between 1 and n_items ({n_items}); got {n_clusters}.")


def _check_arguments(
    n_users: int, n_items: int, n_interactions: int, n_clusters: int, own_cluster_share: float
) -> None:
    if n_users < 1:
        raise ValueError(f"n_users must be at least 1; got {n_users}.")
    if n_items <= MIN_HISTORY:
        raise ValueError(
            f"Every user needs {MIN_HISTORY} distinct items, so n_items must be more than "
            f"{MIN_HISTORY}; got {n_items}."
        )
    if n_interactions < MIN_HISTORY * n_users:
        raise ValueError(
            f"Every user needs at least {MIN_HISTORY} interactions, as in MovieLens: "
            f"n_interactions must be at least {MIN_HISTORY} * n_users = {MIN_HISTORY * n_users}; "
            f"got {n_interactions}. Lower n_users or raise n_interactions."
        )
    most = n_users * (n_items - 1)
    if n_interactions > most:
        raise ValueError(
            f"A user can have at most n_items - 1 = {n_items - 1} interactions (one item must "
            f"stay unseen), so n_interactions can be at most {most}; got {n_interactions}. "
            "Raise n_items or n_users."
        )
    _check_clusters(n_items, n_clusters)
    if not 0.0 <= own_cluster_share < 1.0:
        raise ValueError(
            "own_cluster_share must be at least 0 and below 1, so that users whose history is "
            f"longer than their cluster can still fill it; got {own_cluster_share}."
        )


def _history_lengths(
    n_users: int, n_items: int, n_interactions: int, rng: np.random.Generator
) -> np.ndarray:
    """MIN_HISTORY plus a lognormal share of the rest, capped, summing exactly to the total."""
    cap = min(
        n_items - 1, max(math.ceil(n_interactions / n_users), int(MAX_CATALOGUE_SHARE * n_items))
    )
    extra = _water_fill(
        rng.lognormal(sigma=HISTORY_SIGMA, size=n_users),
        total=n_interactions - MIN_HISTORY * n_users,
        room=cap - MIN_HISTORY,
    )
    return MIN_HISTORY + extra


def _water_fill(weights: np.ndarray, total: int, room: int) -> np.ndarray:
    """Integers proportional to ``weights``, none above ``room``, summing exactly to ``total``."""
    low, high = 0.0, room / weights.min()
    for _ in range(100):  # bisection on the scale: the capped sum is monotone in it
        scale = (low + high) / 2
        if np.minimum(weights * scale, room).sum() < total:
            low = scale
        else:
            high = scale
    shares = np.minimum(weights * high, room)
    counts = np.floor(shares).astype(np.int64)
    missing = total - counts.sum()
    # Round up the largest remainders; a capped share has none, so no count passes the cap.
    counts[np.argsort(counts - shares)[:missing]] += 1
    return counts


def _sample_histories(
    lengths: np.ndarray,
    user_clusters: np.ndarray,
    catalogue: _Catalogue,
    own_cluster_share: float,
    seed: int,
) -> np.ndarray:
    """Distinct (user * n_items + item) keys, ``lengths[u]`` of them for user u.

    Sequential sampling without replacement, done in bulk: oversample with replacement, keep each
    user's first distinct draws up to what it still needs, and draw again for users still short,
    with more draws per wanted item where the last round hit many duplicates.
    """
    rng = _rng(seed, _DRAWS)
    n_users, n_items = len(lengths), len(catalogue.slots)
    cluster_p = catalogue.cluster_masses() / catalogue.cluster_masses().sum()
    short = lengths.copy()
    oversampling = np.full(n_users, INITIAL_OVERSAMPLING)
    accepted: list[np.ndarray] = []
    while (users := np.flatnonzero(short)).size:
        n_draws = np.ceil(short[users] * oversampling[users]).astype(np.int64) + 1
        draw_users = np.repeat(users, n_draws)
        own = rng.random(len(draw_users)) < own_cluster_share
        clusters = np.where(
            own,
            user_clusters[draw_users],
            rng.choice(catalogue.n_clusters, size=len(draw_users), p=cluster_p),
        )
        keys = draw_users * n_items + catalogue.draw(clusters, rng)
        new = _first_new(_keys_of(accepted, short > 0, n_items), keys)
        new_users = draw_users[new]
        found = np.bincount(new_users, minlength=n_users)
        rank = np.arange(len(new)) - np.repeat(np.cumsum(found) - found, found)
        keep = rank < short[new_users]
        accepted.append(keys[new[keep]])
        short -= np.bincount(new_users[keep], minlength=n_users)
        oversampling[users] = OVERSAMPLING_MARGIN * n_draws / np.maximum(found[users], 1)
    return np.concatenate(accepted)


def _keys_of(accepted: list[np.ndarray], wanted_users: np.ndarray, n_items: int) -> np.ndarray:
    if not accepted:
        return np.empty(0, dtype=np.int64)
    keys = np.concatenate(accepted)
    return keys[wanted_users[keys // n_items]]


def _first_new(existing: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Ascending indices of the draws whose key is neither in ``existing`` nor drawn earlier.

    A stable sort puts equal keys in input order, so the first of each run is the earliest;
    ``existing`` goes first so that its keys win. (np.unique's return_index does the same, slower.)
    """
    keys = np.concatenate([existing, draws])
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    first = np.ones(len(keys), dtype=bool)
    first[1:] = sorted_keys[1:] != sorted_keys[:-1]
    winners = order[first]
    return np.sort(winners[winners >= len(existing)] - len(existing))


def _in_random_order_per_user(
    keys: np.ndarray, n_items: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Group by user and shuffle within each user, so draw order leaves no trace in time order."""
    users, items = np.divmod(keys, n_items)
    order = np.argsort(users << 32 | rng.integers(0, 2**32, size=len(keys), dtype=np.int64))
    return users[order], items[order]


def _ratings(
    users: np.ndarray,
    items: np.ndarray,
    own: np.ndarray,
    half_stars: bool,
    rng: np.random.Generator,
) -> np.ndarray:
    user_bias = rng.normal(0.0, USER_BIAS_SD, size=users.max() + 1)
    item_bias = rng.normal(0.0, ITEM_BIAS_SD, size=items.max() + 1)
    score = (
        RATING_BASE
        + OWN_CLUSTER_BONUS * own
        + user_bias[users]
        + item_bias[items]
        + rng.normal(0.0, RATING_NOISE_SD, size=len(users))
    )
    step = 0.5 if half_stars else 1.0
    return np.clip(np.rint(score / step) * step, step, 5.0).astype(np.float32)


def _timestamps(lengths: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Strictly increasing Unix seconds per user, for rows grouped by user in id order.

    Each user is active for a lognormal number of days from a uniform moment on; its interactions
    are spread over that span by exponential gaps, plus one second per step so none coincide.
    Every timestamp lies in [TIME_START, TIME_END).
    """
    window = TIME_END - TIME_START
    span = rng.lognormal(np.log(MEDIAN_ACTIVE_DAYS * DAY), ACTIVE_DAYS_SIGMA, size=len(lengths))
    span = np.maximum(np.minimum(span, window).astype(np.int64), lengths)
    start = TIME_START + (rng.random(len(lengths)) * (window - span)).astype(np.int64)
    owner = np.repeat(np.arange(len(lengths)), lengths)
    first = np.cumsum(lengths) - lengths
    elapsed = np.cumsum(rng.exponential(size=len(owner)))
    before = np.where(first > 0, elapsed[first - 1], 0.0)
    fraction = (elapsed - before[owner]) / (elapsed[first + lengths - 1] - before)[owner]
    stretch = np.floor(fraction * (span - lengths)[owner]).astype(np.int64)
    return start[owner] + (np.arange(len(owner)) - first[owner]) + stretch


# How one rating prints in each release ("4" and "3.5", or "4.0" and "3.5"); separator, header
# and file name come from preprocessing.formats, so the real loader reads what this writes.
_RATING_FORMATS = {"ml-100k": "{:g}", "ml-1m": "{:g}", "ml-10m": "{:g}", "ml-csv": "{:.1f}"}
_HALF_STARS = np.arange(11) / 2  # every rating MovieLens can hold: 0.5..5 (0 only as a label)
_WRITE_ROWS = 1 << 20


def write_raw(df: pd.DataFrame, out_dir: Path, raw_format: str) -> Path:
    """Write ``df`` (``schema.RAW_COLUMNS``) as the ratings file of a real MovieLens release.

    "ml-100k": ``u.data``, tab-separated, whole stars; "ml-1m": ``ratings.dat``, ``::``-separated,
    whole stars like ``4``; "ml-10m": the same with half stars like ``3.5``; "ml-csv":
    ``ratings.csv`` with a header, ratings like ``4.0`` and ``3.5`` (ML-20M and later). Written
    under a temporary name, then renamed, so no reader sees half a file.
    """
    if raw_format not in _RATING_FORMATS:
        raise ValueError(
            f"Unknown raw_format {raw_format!r}; choose one of {', '.join(_RATING_FORMATS)}."
        )
    layout = RAW_FORMATS[raw_format]
    table = pa.table(
        {
            "user_id": df["user_id"].to_numpy(np.int64),
            "item_id": df["item_id"].to_numpy(np.int64),
            "rating": _rating_labels(df["rating"].to_numpy(np.float64), raw_format),
            "timestamp": df["timestamp"].to_numpy(np.int64),
        }
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / layout.file_name
    partial = path.with_name(path.name + ".part")
    with partial.open("wb") as out:
        if layout.has_header:
            out.write(f"{layout.separator.join(layout.columns)}\n".encode())
        for batch in table.to_batches(max_chunksize=_WRITE_ROWS):
            out.write(_csv_bytes(batch, layout.separator))
    partial.replace(path)
    return path


def _rating_labels(ratings: np.ndarray, raw_format: str) -> pa.Array:
    """Ratings as MovieLens prints them: a lookup of 11 labels, not a format call per row."""
    halves = ratings * 2
    if not (np.array_equal(halves, np.rint(halves)) and halves.min() >= 1 and halves.max() <= 10):
        raise ValueError(
            "MovieLens ratings run from 0.5 to 5 in half steps; these run from "
            f"{ratings.min():g} to {ratings.max():g} and may fall between steps. "
            "Round them (generate() does) before writing."
        )
    if RAW_FORMATS[raw_format].rating_step == 1 and not np.array_equal(ratings, np.rint(ratings)):
        half_star_layouts = [name for name in _RATING_FORMATS if RAW_FORMATS[name].rating_step < 1]
        raise ValueError(
            f"The {raw_format} layout holds whole stars only, and its loader would reject these "
            f"half-star ratings. Write them as {' or '.join(half_star_layouts)}, which hold half "
            "stars, or generate whole stars (generate(..., half_stars=False))."
        )
    labels = pa.array([_RATING_FORMATS[raw_format].format(value) for value in _HALF_STARS])
    return pc.take(labels, pa.array(halves.astype(np.int64)))


def _csv_bytes(batch: pa.RecordBatch, separator: str) -> bytes:
    """pyarrow writes one-character separators; ``::`` is written as tabs, then replaced."""
    sink = pa.BufferOutputStream()
    options = pacsv.WriteOptions(
        include_header=False,
        delimiter=separator if len(separator) == 1 else "\t",
        quoting_style="none",
    )
    pacsv.write_csv(batch, sink, options)
    text = sink.getvalue().to_pybytes()
    return text if len(separator) == 1 else text.replace(b"\t", separator.encode())
