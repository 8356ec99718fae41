"""The NCF paper's leave-one-out protocol (He et al. 2017, section 4.1), vectorised.

Each user's latest interaction is held out for test (timestamp ties go to the larger item id, so
the split is deterministic); optionally the one before it is held out for validation, which is
what early stopping and model selection look at — never the test set. Every held-out positive is
ranked against ``num_negatives`` distinct items the user never interacted with, sampled once here
with a seed so every model in the course is scored on the same candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Holdout:
    """One positive per user (row i belongs to ``user[i]``) and its sampled negatives."""

    frame: pd.DataFrame  # user, item, rating, timestamp
    negatives: np.ndarray  # int32, shape (len(frame), num_negatives)


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame  # user, item, rating, timestamp (dense 0-based ids)
    validation: Holdout | None
    test: Holdout
    users: pd.DataFrame  # user, user_id, n_train, first_timestamp, last_timestamp
    items: pd.DataFrame  # item, item_id, n_train, mean_rating, title (preprocessing.titles)

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)


def leave_one_out(
    interactions: pd.DataFrame,
    *,
    num_negatives: int = 99,
    validation: bool = True,
    seed: int = 0,
) -> Split:
    """Split raw interactions (``schema.RAW_COLUMNS``) into train / validation / test."""
    user_codes, user_ids = pd.factorize(interactions["user_id"], sort=True)
    item_codes, item_ids = pd.factorize(interactions["item_id"], sort=True)
    frame = pd.DataFrame(
        {
            "user": user_codes.astype(np.int32),
            "item": item_codes.astype(np.int32),
            "rating": interactions["rating"].to_numpy(np.float32),
            "timestamp": interactions["timestamp"].to_numpy(np.int64),
        }
    )
    n_items = len(item_ids)
    held_out_per_user = 2 if validation else 1
    _check_history_lengths(frame, user_ids, held_out_per_user)
    _check_room_for_negatives(frame, user_ids, n_items, num_negatives)

    seen_keys = np.sort(frame["user"].to_numpy(np.int64) * n_items + frame["item"].to_numpy())
    rng = np.random.default_rng(seed)
    test_rows = _latest_rows(frame)
    test = _holdout(frame.loc[test_rows], seen_keys, n_items, num_negatives, rng)
    train = frame.drop(index=test_rows)
    validation_holdout = None
    if validation:
        val_rows = _latest_rows(train)
        validation_holdout = _holdout(train.loc[val_rows], seen_keys, n_items, num_negatives, rng)
        train = train.drop(index=val_rows)
    return _finish(train, validation_holdout, test, user_ids, item_ids)


def from_benchmark(
    train: pd.DataFrame,
    test: pd.DataFrame,
    test_negatives: np.ndarray,
    *,
    validation: bool = True,
    seed: int = 0,
) -> Split:
    """He et al.'s published split (0-based ids, fixed test negatives) in this course's shape."""
    frame = _already_indexed(train)
    positives = _already_indexed(test)
    n_users = int(max(frame["user"].max(), positives["user"].max())) + 1
    n_items = int(max(frame["item"].max(), positives["item"].max(), test_negatives.max())) + 1
    user_ids, item_ids = pd.Index(np.arange(n_users)), pd.Index(np.arange(n_items))
    _check_benchmark_train(frame, user_ids, validation)
    order = np.argsort(positives["user"].to_numpy(), kind="stable")
    test_holdout = Holdout(
        frame=positives.iloc[order].reset_index(drop=True),
        negatives=test_negatives[order].astype(np.int32),
    )
    validation_holdout = None
    if validation:
        seen_keys = np.sort(
            np.concatenate(
                [
                    frame["user"].to_numpy(np.int64) * n_items + frame["item"].to_numpy(),
                    positives["user"].to_numpy(np.int64) * n_items + positives["item"].to_numpy(),
                ]
            )
        )
        val_rows = _latest_rows(frame)
        num_negatives = test_negatives.shape[1]
        rng = np.random.default_rng(seed)
        validation_holdout = _holdout(frame.loc[val_rows], seen_keys, n_items, num_negatives, rng)
        frame = frame.drop(index=val_rows)
    return _finish(frame, validation_holdout, test_holdout, user_ids, item_ids)


def _already_indexed(raw: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user": raw["user_id"].to_numpy(np.int32),
            "item": raw["item_id"].to_numpy(np.int32),
            "rating": raw["rating"].to_numpy(np.float32),
            "timestamp": raw["timestamp"].to_numpy(np.int64),
        }
    )


def _finish(
    train: pd.DataFrame,
    validation: Holdout | None,
    test: Holdout,
    user_ids: pd.Index,
    item_ids: pd.Index,
) -> Split:
    train = train.reset_index(drop=True)
    return Split(
        train=train,
        validation=validation,
        test=test,
        users=_user_table(train, user_ids),
        items=_item_table(train, item_ids),
    )


def _check_history_lengths(frame: pd.DataFrame, user_ids: pd.Index, held_out: int) -> None:
    short = _users_short_of(frame, user_ids, held_out + 1)
    if short:
        raise ValueError(
            f"{short} have fewer than {held_out + 1} interactions; leave-one-out needs {held_out} "
            "held out plus at least one to train on. Run the loader with min_interactions set "
            "accordingly (policy 'drop' removes them)."
        )


def _check_benchmark_train(frame: pd.DataFrame, user_ids: pd.Index, validation: bool) -> None:
    """Ids are dense there: a gap in them or a test-only user would get an empty history."""
    missing = _users_short_of(frame, user_ids, 1)
    if missing:
        raise ValueError(
            f"{missing} have no training ratings: a gap in the user ids 0..{len(user_ids) - 1}, "
            "or users only in the test file. He et al.'s files have neither; download the three "
            "benchmark files again from the same release."
        )
    short = _users_short_of(frame, user_ids, 2) if validation else ""
    if short:
        raise ValueError(
            f"{short} have a single training rating; the validation hold-out would take it and "
            "leave nothing to train on. Run without the validation hold-out (--no-validation)."
        )


def _users_short_of(frame: pd.DataFrame, user_ids: pd.Index, minimum: int) -> str:
    """The users with fewer than ``minimum`` rows, named for an error message ("" if none)."""
    counts = np.bincount(frame["user"].to_numpy(), minlength=len(user_ids))
    short = np.flatnonzero(counts < minimum)
    if not short.size:
        return ""
    return f"{short.size} users (e.g. user_id {', '.join(str(user_ids[i]) for i in short[:5])})"


def _check_room_for_negatives(
    frame: pd.DataFrame, user_ids: pd.Index, n_items: int, num_negatives: int
) -> None:
    counts = np.bincount(frame["user"].to_numpy(), minlength=len(user_ids))
    crowded = np.flatnonzero(n_items - counts < num_negatives)
    if crowded.size:
        raise ValueError(
            f"{crowded.size} users (e.g. user_id {user_ids[crowded[0]]}) have seen all but "
            f"{n_items - counts[crowded[0]]} of {n_items} items, too few to sample "
            f"{num_negatives} never-seen negatives. Lower --num-negatives."
        )


def _latest_rows(frame: pd.DataFrame) -> pd.Index:
    """Index labels of each user's latest interaction, ties broken by the larger item id."""
    item_bits = int(frame["item"].max()).bit_length()
    ts = frame["timestamp"].to_numpy()
    order_key = ((ts - ts.min()) << item_bits) | frame["item"].to_numpy(np.int64)
    latest = pd.Series(order_key, index=frame.index).groupby(frame["user"].to_numpy()).idxmax()
    return pd.Index(latest.to_numpy())


def _holdout(
    positives: pd.DataFrame,
    seen_keys: np.ndarray,
    n_items: int,
    num_negatives: int,
    rng: np.random.Generator,
) -> Holdout:
    positives = positives.sort_values("user").reset_index(drop=True)
    negatives = sample_unseen(
        positives["user"].to_numpy(np.int64), seen_keys, n_items, num_negatives, rng
    )
    return Holdout(frame=positives, negatives=negatives)


def sample_unseen(
    users: np.ndarray,
    seen_keys: np.ndarray,
    n_items: int,
    num_negatives: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Distinct never-seen items per user, by rejection: redraw only the rejected cells."""
    candidates = rng.integers(0, n_items, size=(len(users), num_negatives), dtype=np.int64)
    rows = np.arange(len(users))
    while rows.size:
        block = candidates[rows]
        redraw = _is_seen(users[rows], block, seen_keys, n_items) | _repeats_in_row(block)
        block[redraw] = rng.integers(0, n_items, size=int(redraw.sum()), dtype=np.int64)
        candidates[rows] = block
        rows = rows[redraw.any(axis=1)]
    return candidates.astype(np.int32)


def _is_seen(
    users: np.ndarray, candidates: np.ndarray, seen_keys: np.ndarray, n_items: int
) -> np.ndarray:
    keys = users[:, None] * n_items + candidates
    pos = np.searchsorted(seen_keys, keys)
    pos[pos == len(seen_keys)] = 0
    return seen_keys[pos] == keys


def _repeats_in_row(candidates: np.ndarray) -> np.ndarray:
    """Marks every later copy of an item already drawn earlier in the same row."""
    order = np.argsort(candidates, axis=1, kind="stable")
    ordered = np.take_along_axis(candidates, order, axis=1)
    repeat_sorted = np.zeros_like(ordered, dtype=bool)
    repeat_sorted[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    repeats = np.empty_like(repeat_sorted)
    np.put_along_axis(repeats, order, repeat_sorted, axis=1)
    return repeats


def _user_table(train: pd.DataFrame, user_ids: pd.Index) -> pd.DataFrame:
    stats = train.groupby("user")["timestamp"].agg(["size", "min", "max"])
    stats = stats.reindex(np.arange(len(user_ids)))
    return pd.DataFrame(
        {
            "user": np.arange(len(user_ids), dtype=np.int32),
            "user_id": user_ids.to_numpy(np.int64),
            "n_train": stats["size"].to_numpy(np.int32),
            "first_timestamp": stats["min"].to_numpy(np.int64),
            "last_timestamp": stats["max"].to_numpy(np.int64),
        }
    )


def _item_table(train: pd.DataFrame, item_ids: pd.Index) -> pd.DataFrame:
    stats = train.groupby("item")["rating"].agg(["size", "mean"])
    stats = stats.reindex(np.arange(len(item_ids)))
    return pd.DataFrame(
        {
            "item": np.arange(len(item_ids), dtype=np.int32),
            "item_id": item_ids.to_numpy(np.int64),
            "n_train": stats["size"].fillna(0).to_numpy(np.int32),
            "mean_rating": stats["mean"].to_numpy(np.float32),
            "title": np.full(len(item_ids), None, dtype=object),  # the split knows no titles
        }
    )
