"""The evaluation stage: trained models and baselines ranked by one code path on one split.

Each candidate (a model folder or ``model.tar.gz``, or a baseline) ranks every test user's
held-out item twice: among its sampled negatives (99 in the paper's protocol) and among all items
the user has not seen (the full catalogue). Every figure is computed from those ranks, so models
and baselines are compared by the same code. Outputs, written together or not at all:

- ``evaluation.json`` (``SCHEMA_VERSION``): per candidate, HR / NDCG / MAP / MRR at K = 1..k_max
  on the sampled protocol, recall and NDCG at K on the full catalogue, catalogue coverage and
  popularity bias of the top-10, the same at K = 10 per segment (users by history length, held-out
  items by popularity), and mean ± standard deviation over the seeds of each group;
- ``per_user.parquet`` (``PER_USER_SCHEMA``): one row per candidate and user, what paired tests
  (``evaluation.ab``) read;
- ``plots/*.png`` (``evaluation.plots``): the comparison with error bars, HR / NDCG against K,
  sampled against full catalogue, segments.

A candidate named ``group/member`` (``gmf/seed1``) belongs to ``group``: its seeds are summarised.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch import nn

from evaluation.ease import Ease
from evaluation.plots import write_plots
from training.artifacts import ArtifactError, extract_model_archive, load_model
from training.baselines import MostPopular
from training.cpu_memory import keep_freed_memory
from training.data import TrainingData
from training.evaluate import full_catalogue_pass, holdout_ranks
from training.metrics import hit_rate_at_k, map_at_k, mrr, ndcg_at_k

SCHEMA_VERSION = "1.1"  # 1.1: top_n, sampled_negatives, device and data_identity added
EVALUATION_FILE = "evaluation.json"
PER_USER_FILE = "per_user.parquet"
PLOTS_FOLDER = "plots"
TOP_N = 10  # the list a user would see: coverage, popularity bias and segments are measured at it
BASELINES = ("random", "most-popular", "ease")
EASE_L2 = 500.0  # lesson 06 tunes it on validation (evaluation.ease.tune_ease)
PER_USER_SCHEMA = pa.schema(
    [
        ("candidate", pa.string()),
        ("user", pa.int64()),
        ("item", pa.int64()),
        ("rank", pa.int64()),  # 0-based, among the held-out item and its sampled negatives
        ("full_rank", pa.int64()),  # 0-based, among every item the user has not seen
        (f"hit@{TOP_N}", pa.bool_()),
        (f"ndcg@{TOP_N}", pa.float64()),
        (f"full_hit@{TOP_N}", pa.bool_()),
    ]
)


class EvaluationError(ValueError):
    """The inputs cannot be evaluated together; the message names the input and the fix."""


class RandomScores(nn.Module):
    """Uniform random scores from a seeded generator: the floor every model must clear."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return torch.rand(items.shape, generator=self.generator).to(items.device)


@dataclass(frozen=True)
class Ranked:
    """One candidate's ranks of every test user's held-out item, and its top-N lists."""

    name: str
    sampled: torch.Tensor  # (users,)
    full: torch.Tensor  # (users,)
    top: torch.Tensor  # (users, TOP_N)


def load_candidate(name: str, path: Path, data: TrainingData, scratch: Path) -> nn.Module:
    """A model folder or ``model.tar.gz`` (a folder holding one counts too), refused when it was
    trained on another split: its id maps would point at other users and items."""
    archive = path / "model.tar.gz" if path.is_dir() else path
    if not path.exists():
        raise EvaluationError(f"model {name!r}: {path} does not exist")
    folder = extract_model_archive(archive, scratch / name) if archive.is_file() else path
    try:
        model, config = load_model(folder, data.users.device)
    except (ArtifactError, FileNotFoundError, RuntimeError, json.JSONDecodeError) as exc:
        raise EvaluationError(f"model {name!r}: {path} is not a readable model ({exc})") from exc
    if not data.trained(config):
        recorded = config.get("data", {})
        raise EvaluationError(
            f"model {name!r} was trained on another split (its data identity "
            f"{recorded.get('identity') or recorded.get('manifest_sha256')} differs from this "
            f"split's {data.identity}): evaluate it on the split it was trained on"
        )
    return model.eval()


def baseline_models(names: Iterable[str], seen: TrainingData, l2: float = EASE_L2) -> dict:
    """The baselines, fitted on what the models saw before the test: train and validation."""
    makers = {
        "random": lambda: RandomScores(),
        "most-popular": lambda: MostPopular(torch.bincount(seen.items, minlength=seen.n_items)).to(
            seen.items.device
        ),
        "ease": lambda: Ease.fit(seen.users, seen.items, seen.n_users, seen.n_items, l2=l2),
    }
    unknown = sorted(set(names) - set(makers))
    if unknown:
        raise EvaluationError(f"unknown baseline(s) {unknown}; known: {', '.join(BASELINES)}")
    return {name: makers[name]() for name in names}


def _at_k(ranks: torch.Tensor, k_values: range) -> dict[str, Any]:
    """HR, NDCG, MAP (one relevant item) and MRR by K, means over users (training.metrics)."""
    return {
        "hr": {str(k): hit_rate_at_k(ranks, k) for k in k_values},
        "ndcg": {str(k): ndcg_at_k(ranks, k) for k in k_values},
        "map": {str(k): map_at_k(ranks, k) for k in k_values},
        "mrr": mrr(ranks),
    }


def _segments(ranked: Ranked, labels: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """HR / NDCG at TOP_N on both views, and the number of users, per segment."""
    result: dict[str, Any] = {}
    for segmentation, label in labels.items():
        result[segmentation] = {}
        for segment in pd.unique(label):
            chosen = torch.from_numpy(label == segment)
            ranks = ranked.sampled[chosen]
            result[segmentation][str(segment)] = {
                "users": int(chosen.sum()),
                f"hr@{TOP_N}": hit_rate_at_k(ranks, TOP_N),
                f"ndcg@{TOP_N}": ndcg_at_k(ranks, TOP_N),
                f"full_recall@{TOP_N}": hit_rate_at_k(ranked.full[chosen], TOP_N),
            }
    return result


def segment_labels(data: TrainingData, seen: TrainingData) -> dict[str, np.ndarray]:
    """Test users by the length of their history (thirds), held-out items by their popularity
    in what the models saw (head: the most popular items that make up a third of all
    interactions; tail: the least popular third; the rest mid). ``seen``: train + validation."""
    history = torch.bincount(seen.users, minlength=data.n_users)[data.test.users].cpu().numpy()
    thirds = pd.qcut(history, 3, labels=["short", "medium", "long"], duplicates="drop")
    counts = torch.bincount(seen.items, minlength=data.n_items).cpu().numpy()
    order = np.argsort(-counts, kind="stable")
    share = np.empty(len(counts))
    share[order] = np.cumsum(counts[order]) / counts.sum()
    held_out = share[data.test.items.cpu().numpy()]
    popularity = np.where(held_out <= 1 / 3, "head", np.where(held_out <= 2 / 3, "mid", "tail"))
    return {"user_history": np.asarray(thirds, dtype=str), "item_popularity": popularity}


@dataclass(frozen=True)
class TestView:
    """What every candidate is judged against, computed once: the split, what the models saw
    before the test (train + validation), each item's popularity percentile, the segments."""

    data: TrainingData
    seen: TrainingData
    popularity_percentile: torch.Tensor  # (n_items,) 0: the least popular, 1: the most
    segments: dict[str, np.ndarray]

    @classmethod
    def of(cls, data: TrainingData) -> TestView:
        seen = data.with_validation_merged()
        counts = torch.bincount(seen.items, minlength=data.n_items)
        percentile = counts.argsort().argsort().double().cpu() / max(data.n_items - 1, 1)
        return cls(data, seen, percentile, segment_labels(data, seen))


def rank_candidate(name: str, model: nn.Module, view: TestView) -> Ranked:
    """Both passes on the data's device; the ranks come back to the CPU for the summaries."""
    data, seen = view.data, view.seen
    full, top = full_catalogue_pass(
        model, data.test, seen.users, seen.items, data.n_items, top_k=TOP_N
    )
    return Ranked(name, holdout_ranks(model, data.test).cpu(), full.cpu(), top.cpu())


def summarise(ranked: Ranked, view: TestView, k_max: int) -> dict[str, Any]:
    k_values = range(1, k_max + 1)
    full = _at_k(ranked.full, k_values)
    return {
        "sampled": _at_k(ranked.sampled, k_values),
        "full_catalogue": {"recall": full["hr"], "ndcg": full["ndcg"]},
        f"coverage@{TOP_N}": len(torch.unique(ranked.top)) / view.data.n_items,
        # 0.5: the items recommended are as popular as a typical item; 1.0: always the most popular
        f"popularity_percentile@{TOP_N}": view.popularity_percentile[ranked.top].mean().item(),
        "segments": _segments(ranked, view.segments),
    }


def group_summary(candidates: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """Mean and standard deviation (n - 1) of the headline figures over each group's members."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for name, summary in candidates.items():
        if "/" in name:
            groups.setdefault(name.split("/", 1)[0], []).append(summary)
    headline = {
        f"hr@{TOP_N}": lambda s: s["sampled"]["hr"][str(TOP_N)],
        f"ndcg@{TOP_N}": lambda s: s["sampled"]["ndcg"][str(TOP_N)],
        f"full_recall@{TOP_N}": lambda s: s["full_catalogue"]["recall"][str(TOP_N)],
    }
    result = {}
    for group, members in groups.items():
        result[group] = {"members": len(members)}
        for metric, read in headline.items():
            values = np.array([read(member) for member in members])
            std = float(values.std(ddof=1)) if len(values) > 1 else math.nan
            result[group][metric] = {"mean": float(values.mean()), "std": std}
    return result


def per_user_table(ranked: Iterable[Ranked], data: TrainingData) -> pa.Table:
    frames = []
    for candidate in ranked:
        sampled, full = candidate.sampled.numpy(), candidate.full.numpy()
        frames.append(
            pd.DataFrame(
                {
                    "candidate": candidate.name,
                    "user": data.test.users.numpy(),
                    "item": data.test.items.numpy(),
                    "rank": sampled,
                    "full_rank": full,
                    f"hit@{TOP_N}": sampled < TOP_N,
                    f"ndcg@{TOP_N}": np.where(sampled < TOP_N, 1 / np.log2(sampled + 2.0), 0.0),
                    f"full_hit@{TOP_N}": full < TOP_N,
                }
            )
        )
    return pa.Table.from_pandas(pd.concat(frames, ignore_index=True), PER_USER_SCHEMA, False)


def check_inputs(data: TrainingData, data_dir: Path, k_max: int) -> None:
    if len(data.test.users) == 0:
        raise EvaluationError(f"{data_dir} has no test rows: nothing to evaluate")
    candidates = 1 + data.test.negatives.shape[1]
    if not 1 <= k_max <= min(candidates, data.n_items):
        raise EvaluationError(
            f"k_max {k_max} is outside 1..{min(candidates, data.n_items)}: each user's held-out "
            f"item is ranked among {candidates} candidates, from a catalogue of {data.n_items}"
        )


def evaluate(
    data_dir: Path,
    models: Mapping[str, Path],
    output: Path,
    *,
    baselines: Iterable[str] = BASELINES,
    k_max: int = 20,
    ease_l2: float = EASE_L2,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Rank every model and baseline on ``data_dir``'s test hold-out (on ``device``: the split,
    models and baselines all live there); write the outputs into ``output`` only once everything
    was computed. Returns what ``evaluation.json`` holds."""
    if torch.device(device).type == "cpu":
        keep_freed_memory()  # else every chunk's activations fault in fresh pages: 4x slower
    data = TrainingData.load(data_dir, torch.device(device))
    check_inputs(data, data_dir, k_max)
    clash = sorted(set(models) & set(baselines))
    if clash:
        raise EvaluationError(f"model name(s) {clash} are baseline names: rename them")
    view = TestView.of(data)
    with tempfile.TemporaryDirectory(prefix="evaluation-") as scratch:
        candidates = {
            name: load_candidate(name, path, data, Path(scratch)) for name, path in models.items()
        } | baseline_models(baselines, view.seen, ease_l2)
        ranked = [rank_candidate(name, model, view) for name, model in candidates.items()]
    summaries = {entry.name: summarise(entry, view, k_max) for entry in ranked}
    result = {
        "schema_version": SCHEMA_VERSION,
        "data_manifest_sha256": data.manifest_sha256,
        "data_identity": data.identity,
        "test_users": len(data.test.users),
        "device": data.users.device.type,
        "n_items": data.n_items,
        "k_max": k_max,
        "top_n": TOP_N,
        "sampled_negatives": data.test.negatives.shape[1],
        "candidates": summaries,
        "groups": group_summary(summaries),
    }
    _write_together(output, result, per_user_table(ranked, data))
    return result


def _write_together(output: Path, result: dict[str, Any], per_user: pa.Table) -> None:
    """The outputs appear together: written in a sibling folder, then moved into ``output``,
    ``evaluation.json`` last (its presence says the rest is there and current)."""
    output.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".evaluation-", dir=output))
    try:
        (staging / EVALUATION_FILE).write_text(json.dumps(result, indent=2) + "\n")
        pq.write_table(per_user, staging / PER_USER_FILE)
        write_plots(result, staging / PLOTS_FOLDER)
        shutil.rmtree(output / PLOTS_FOLDER, ignore_errors=True)
        for name in (PLOTS_FOLDER, PER_USER_FILE, EVALUATION_FILE):
            (staging / name).replace(output / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
