"""The model server under load: the naive server against this one, per catalogue.

    python benchmarks/serving_load.py                          # ML-100K, ML-1M and ML-20M shapes
    python benchmarks/serving_load.py --catalogues ml-1m --seconds 5 --steps 1 8 32

For each catalogue it saves the course's NeuMF recipe (``training.recipes``; fresh weights: the
cost depends on the sizes, not the values) with the id maps and seen items of a real split
(ML-100K from ../shared/data, the larger ones synthetic at the release's users and items), then:

1. the in-process bound: users/s that ``Recommender.rank`` manages on one thread, alone and in
   batches, and the naive path (the model's forward over the catalogue, one user at a time);
2. each server pinned to CPU 0 (``taskset``) and locust (``benchmarks/locustfile.py``, headless,
   a subprocess) pinned to CPU 1, at each step of concurrent closed-loop users: p50/p95/p99 (ms,
   locust's, whole milliseconds below 100) and requests/s; then the highest throughput whose p99
   holds 20 ms. Servers (``load_test.SERVERS``): ``naive`` (the server at ``NAIVE_COMMIT``, before
   this design, from ``git archive``), ``precomputed`` (this one, micro-batching off) and
   ``micro-batched``.

Prints the tables as markdown for docs/benchmarks.md. Needs 2 CPUs, git and locust (dev extra).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from orchestration.lessons.load_test import (
    SERVERS,
    SLO_MS,
    best_within_slo,
    stepped,
    users_per_second,
)
from preprocessing.job import resolve_source, run_preprocessing
from preprocessing.schema import TABLE_FILES
from training.artifacts import save_model
from training.config import TrainConfig
from training.data import TrainingData
from training.models import architecture, build_model
from training.recipes import RECIPES

REPO = Path(__file__).resolve().parents[1]


def model_folder(catalogue: str, data_dir: Path, scratch: Path) -> Path:
    """The NeuMF recipe on ``catalogue``'s split, saved as training saves a model."""
    if catalogue == "ml-100k":
        source = resolve_source("ml-100k", data_dir=data_dir, cache_dir=scratch, progress=False)
    else:
        source = resolve_source(
            "synthetic", data_dir=None, cache_dir=scratch, synthetic_shape=catalogue
        )
    split = scratch / f"split-{catalogue}"
    run_preprocessing(source, split, seed=0)
    data = TrainingData.load(split, torch.device("cpu"))
    config = TrainConfig(**RECIPES["neumf"])
    torch.manual_seed(0)
    model = build_model("neumf", data.n_users, data.n_items, config.num_factors, config.layers)
    seen = data.with_validation_merged()
    folder = scratch / f"model-{catalogue}"
    model_config = {
        "architecture": architecture(
            "neumf", data.n_users, data.n_items, config.num_factors, config.layers
        ),
        "data": {"id_maps": {"users": TABLE_FILES["users"], "items": TABLE_FILES["items"]}},
    }
    save_model(
        folder,
        model,
        model_config,
        {},
        id_maps=[split / TABLE_FILES["users"], split / TABLE_FILES["items"]],
        seen_items=(seen.users, seen.items),
    )
    print(f"{catalogue}: {data.n_users:,} users x {data.n_items:,} items, NeuMF recipe")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalogues", nargs="+", default=["ml-100k", "ml-1m", "ml-20m"])
    parser.add_argument("--steps", nargs="+", type=int, default=[1, 2, 4, 8, 16, 32, 64])
    parser.add_argument("--seconds", type=float, default=8.0, help="measured time per step")
    parser.add_argument("--servers", nargs="+", default=list(SERVERS), choices=list(SERVERS))
    parser.add_argument(
        "--data-dir", type=Path, default=REPO.parent / "shared" / "data" / "ml-100k"
    )
    args = parser.parse_args()
    summary = []
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        for catalogue in args.catalogues:
            folder = model_folder(catalogue, args.data_dir, scratch)
            bound = users_per_second(folder, (1, 8, 32))
            print("in-process, one thread:", ", ".join(f"{k} {v:,.0f}/s" for k, v in bound.items()))
            best = {}
            for server in args.servers:
                rows = stepped(folder, server, args.steps, args.seconds, scratch / catalogue)
                best[server] = best_within_slo(rows)
                print(f"\n{catalogue}, {server} server (CPU 0; locust on CPU 1):")
                print("| users | req/s | p50 ms | p95 ms | p99 ms | failures |")
                print("|---|---|---|---|---|---|")
                for r in rows:
                    print(f"| {r['users']} | {r['req/s']:,.0f} | {r['p50 ms']:.0f} | "
                          f"{r['p95 ms']:.0f} | {r['p99 ms']:.0f} | {r['failures']} |")  # fmt: skip
            summary.append((catalogue, best, bound))
    print(f"\nHighest req/s with p99 <= {SLO_MS:.0f} ms, against the naive server and the bound:")
    print("| catalogue | " + " | ".join(args.servers) + " | x naive | share of the bound |")
    print("|---|" + "---|" * (len(args.servers) + 2))
    for catalogue, best, bound in summary:
        fastest = max(best.get("precomputed", 0), best.get("micro-batched", 0))
        ratio = fastest / best["naive"] if best.get("naive") else float("nan")
        share = fastest / bound["precomputed, 1 a pass"]
        cells = " | ".join(f"{best[s]:,.0f}" for s in args.servers)
        alone = bound["precomputed, 1 a pass"]
        print(f"| {catalogue} | {cells} | {ratio:.1f}x | {share:.0%} of {alone:,.0f}/s |")


if __name__ == "__main__":
    main()
