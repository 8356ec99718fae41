"""Lesson 06's offline A/B test: two candidates of the evaluation stage compared on the same
test users, with the functions of ``evaluation.ab`` (the ones lesson 08's router reuses)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from evaluation.ab import mcnemar, minimum_detectable_effect, paired_bootstrap
from evaluation.stage import TOP_N

HIT, NDCG = f"hit@{TOP_N}", f"ndcg@{TOP_N}"


def _per_user(per_user: pd.DataFrame, candidate: str) -> pd.DataFrame:
    rows = per_user[per_user["candidate"] == candidate].set_index("user").sort_index()
    if rows.empty:
        known = ", ".join(sorted(per_user["candidate"].unique()))
        raise KeyError(f"no candidate {candidate!r} in the per-user table; it has {known}")
    return rows


def paired_comparison(per_user: pd.DataFrame, a: str, b: str) -> dict[str, Any]:
    """B against A on the same users: the difference in HR@10 and NDCG@10 with a 95 % paired
    bootstrap interval, McNemar's exact test on the hits, and the smallest difference in HR@10
    this many users detect at 80 % power (with the discordant rate the two models show)."""
    rows_a, rows_b = _per_user(per_user, a), _per_user(per_user, b)
    if not rows_a.index.equals(rows_b.index):
        raise ValueError(f"{a!r} and {b!r} were not evaluated on the same users")
    hr = paired_bootstrap(rows_a[HIT].to_numpy(float), rows_b[HIT].to_numpy(float))
    ndcg = paired_bootstrap(rows_a[NDCG].to_numpy(), rows_b[NDCG].to_numpy())
    test = mcnemar(rows_a[HIT].to_numpy(), rows_b[HIT].to_numpy())
    users = len(rows_a)
    mde = minimum_detectable_effect(
        users, float(rows_a[HIT].mean()), discordant=max(test.b + test.c, 1) / users
    )
    significant = test.p_value < 0.05 and not hr.low <= 0 <= hr.high
    verdict = "no detectable difference"
    if significant:
        verdict = f"{b} better" if hr.difference > 0 else f"{a} better"
    return {
        "A": a,
        "B": b,
        "users": users,
        f"HR@{TOP_N} A": float(rows_a[HIT].mean()),
        f"HR@{TOP_N} B": float(rows_b[HIT].mean()),
        f"ΔHR@{TOP_N}": hr.difference,
        "95% interval": f"[{hr.low:+.4f}, {hr.high:+.4f}]",
        f"ΔNDCG@{TOP_N}": ndcg.difference,
        "95% interval ": f"[{ndcg.low:+.4f}, {ndcg.high:+.4f}]",
        "A only / B only": f"{test.b} / {test.c}",
        "McNemar p": test.p_value,
        "MDE (80% power)": mde,
        "verdict": verdict,
    }
