"""Accuracy on real MovieLens-100K under the NCF paper's protocol, mean and spread of 3 seeds.

    python benchmarks/accuracy_ml100k.py [--data-dir ../shared/data/ml-100k] [--seeds 0 1 2]

The split is fixed (latest interaction per user held out, ties to the larger item id, 99 sampled
negatives); the seed changes model initialisation and training negatives. Every model uses the
main job's recipe, stops early on the validation hold-out, is refitted on train + validation for
the chosen number of epochs, and only then meets the test set once.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from preprocessing.job import resolve_source, run_preprocessing
from training.config import TrainConfig
from training.job import run_training
from training.precision import cpu_computes_bf16
from training.recipes import RECIPES

REPO = Path(__file__).resolve().parents[1]
# guoyang9/NCF on the same split, best epoch picked on the test set (which flatters it).
REFERENCE = {
    "gmf": (0.619, 0.326),
    "mlp": (0.611, 0.328),
    "neumf": (0.615, 0.336),
    "neumf-pretrained": (0.628, 0.338),
}


def train_all(processed: Path, models: Path, seed: int, gpu: str) -> dict[str, dict]:
    results = {}
    for name in REFERENCE:
        config = replace(TrainConfig(**RECIPES[name]), seed=seed, gpu=gpu)
        pretrained = {}
        if name == "neumf-pretrained":
            pretrained = {"pretrained_gmf": models / "gmf", "pretrained_mlp": models / "mlp"}
        started = time.perf_counter()
        metrics = run_training(config, processed, models / name, progress=False, **pretrained)
        metrics["seconds"] = time.perf_counter() - started
        results[name] = metrics
        print(
            f"  seed {seed} {name:17s} best epoch {metrics['best_epoch']:3d}  "
            f"val HR {metrics['val_hr@10']:.3f}  test HR {metrics['test_hr@10']:.3f}  "
            f"NDCG {metrics['test_ndcg@10']:.3f}  {metrics['mean_epoch_seconds']:.2f} s/epoch",
            flush=True,
        )
    return results


def spread(values: list[float]) -> str:
    deviation = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {deviation:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared/data/ml-100k")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--gpu", default="false")
    args = parser.parse_args()
    bf16 = "yes (on CPU, MLP and NeuMF train in bf16)" if cpu_computes_bf16() else "no"
    print(
        f"torch {torch.__version__}, --gpu {args.gpu}, threads {torch.get_num_threads()}, "
        f"CPU bf16 units: {bf16}"
    )
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        processed = Path(tmp) / "processed"
        source = resolve_source("ml-100k", data_dir=args.data_dir, cache_dir=Path(tmp))
        run_preprocessing(source, processed, seed=0)
        for seed in args.seeds:
            runs.append(train_all(processed, Path(tmp) / f"models-{seed}", seed, args.gpu))

    # s/epoch alone can flatter a recipe that needs more epochs; the whole run (early stopping
    # on validation, refit, test) is what a learner waits for.
    print(
        "\n| model | HR@10 | NDCG@10 | reference HR@10 / NDCG@10 | epochs (val) | s/epoch "
        "| s/model |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, (ref_hr, ref_ndcg) in REFERENCE.items():
        rows = [run[name] for run in runs]
        hr = spread([r["test_hr@10"] for r in rows])
        ndcg = spread([r["test_ndcg@10"] for r in rows])
        epochs = "/".join(str(r["best_epoch"]) for r in rows)
        epoch_seconds = statistics.mean(r["mean_epoch_seconds"] for r in rows)
        seconds = statistics.mean(r["seconds"] for r in rows)
        print(
            f"| {name} | {hr} | {ndcg} | {ref_hr:.3f} / {ref_ndcg:.3f} | {epochs} "
            f"| {epoch_seconds:.2f} | {seconds:.0f} |"
        )


if __name__ == "__main__":
    main()
