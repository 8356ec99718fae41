"""What a few users would be shown: each model's top unseen movies, by title, side by side."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from inference.recommender import Recommender
from preprocessing.manifest import read_split

TITLE_WIDTH = 38  # characters: four models side by side must fit a notebook's width


def _short(title: str | float | None, item_id: int) -> str:
    text = title if isinstance(title, str) else f"movie {item_id}"  # null: no titles (NaN here)
    return text if len(text) <= TITLE_WIDTH else text[: TITLE_WIDTH - 1] + "…"


def side_by_side(
    folders: Mapping[str, Path], processed: Path, user_ids: list[int], k: int = 5
) -> pd.DataFrame:
    """Rows (user, rank), a column per model: its k best unseen movies for each user, as the
    inference container would rank them (``inference.recommender``)."""
    items = read_split(processed).items
    titles = dict(zip(items["item_id"], items["title"], strict=True))
    recommenders = {
        name: Recommender.from_folder(folder, "cpu") for name, folder in folders.items()
    }
    ranked = {
        name: {user: recommender.recommend(user, k) for user in user_ids}
        for name, recommender in recommenders.items()
    }
    rows = [
        {"user": user, "rank": rank + 1}
        | {
            name: _short(titles.get(lists[user][rank][0]), lists[user][rank][0])
            for name, lists in ranked.items()
        }
        for user in user_ids
        for rank in range(k)
    ]
    return pd.DataFrame(rows).set_index(["user", "rank"])


def held_out(
    per_user: pd.DataFrame, processed: Path, user_ids: list[int], candidates: list[str]
) -> pd.DataFrame:
    """Each user's held-out test movie and where each candidate ranked it among all the movies
    the user had not seen (1 = first; the evaluation stage's per-user table)."""
    split = read_split(processed)
    users = split.users.set_index("user_id")["user"]
    items = split.items.set_index("item")
    rows = []
    for user_id in user_ids:
        mine = per_user[per_user["user"] == users[user_id]].set_index("candidate")
        item = int(mine["item"].iloc[0])
        row = {
            "user": user_id,
            "held-out movie": _short(items.at[item, "title"], items.at[item, "item_id"]),
        }
        rows.append(row | {name: int(mine.at[name, "full_rank"]) + 1 for name in candidates})
    return pd.DataFrame(rows).set_index("user")
