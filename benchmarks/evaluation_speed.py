"""Evaluation stage speed on MovieLens-1M-shaped synthetic data (or another shape of SHAPES).

    python benchmarks/evaluation_speed.py                      # ML-1M shape, CUDA if seen
    python benchmarks/evaluation_speed.py --gpu false          # the CPU
    python benchmarks/evaluation_speed.py --shape ml-100k --repeats 1

Builds a split (train, validation, test: each held-out item with 99 sampled negatives) in a
temporary folder and saves the four recipe models (GMF, MLP, NeuMF, NeuMF pre-trained: the
``training.recipes`` sizes) with freshly initialised weights: what evaluation costs depends on
the sizes, not on the weights. Prints the time to prepare all that, the wall time of the whole
evaluation stage (``evaluation.stage.evaluate``: the four models and the three baselines; the
target on 2 CPU cores at ML-1M shape is under 30 s), seconds per candidate for each pass (and
each baseline's fit), and test users ranked per second against the users scored at once for
NeuMF (``evaluation.throughput``, lesson 06's performance analysis). A full-catalogue batch
whose activations would not fit in memory is skipped, and said so.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from evaluation.stage import (
    BASELINES,
    EASE_L2,
    TOP_N,
    TestView,
    baseline_models,
    evaluate,
    load_candidate,
)
from evaluation.throughput import measure
from preprocessing.manifest import write_split
from preprocessing.split import leave_one_out
from preprocessing.synthetic import SHAPES, generate
from training.artifacts import save_model
from training.config import GPU_CHOICES, GpuUse, TrainConfig
from training.cpu_memory import keep_freed_memory
from training.data import TrainingData
from training.evaluate import _chunk_scores, full_catalogue_pass, holdout_ranks
from training.models import architecture, build_model
from training.recipes import RECIPES
from training.train import resolve_device

MODELS = ("gmf", "mlp", "neumf", "neumf-pretrained")
THROUGHPUT_MODEL = "neumf"
BATCHES = (64, 256, 1024, 4096)
# Peak memory a full-catalogue score of the NeuMF recipe takes on the CPU (activations of its
# 128-wide first layer, the GMF product, the fused features): 1.5-2.2 KB measured on ML-1M at 64
# and 256 users a batch. A batch whose activations would pass half the free memory is skipped.
FULL_BYTES_PER_SCORE = 2048


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, /, *args, **kwargs) -> tuple[float, object]:
    synchronize(device)
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    synchronize(device)
    return time.perf_counter() - started, result


def prepare(shape: str, folder: Path) -> dict[str, Path]:
    """The split in ``folder / "split"`` and a folder per recipe model; returns the models."""
    frame = generate(*SHAPES[shape], seed=0)
    split = folder / "split"
    write_split(leave_one_out(frame, validation=True, seed=0), split, extra={})
    data = TrainingData.load(split, torch.device("cpu"))
    models = {}
    for name in MODELS:
        config = TrainConfig(**RECIPES[name])
        torch.manual_seed(0)
        model = build_model(
            config.model, data.n_users, data.n_items, config.num_factors, config.layers
        )
        arch = architecture(
            config.model, data.n_users, data.n_items, config.num_factors, config.layers
        )
        model_config = {
            "architecture": arch,
            "hyperparameters": config.to_dict(),
            "data": {"manifest_sha256": data.manifest_sha256},
        }
        models[name] = folder / "models" / name
        save_model(models[name], model, model_config, metrics={})
    print(
        f"synthetic {shape}: {len(frame):,} interactions, {data.n_users:,} users x "
        f"{data.n_items:,} items; {len(data.test.users):,} test users, each against "
        f"{data.test.negatives.shape[1]} sampled negatives and the full catalogue"
    )
    return models


def per_candidate(
    data: TrainingData, models: dict[str, Path], device: torch.device, scratch: Path
) -> pd.DataFrame:
    """Each candidate's passes timed apart, as the stage runs them (``rank_candidate``)."""
    view = TestView.of(data)
    seen = view.seen
    rows = []
    candidates = {
        name: (0.0, load_candidate(name, path, data, scratch)) for name, path in models.items()
    }
    for name in BASELINES:
        fit_s, fitted = timed(baseline_models, device, [name], seen, EASE_L2)
        candidates[name] = (fit_s, fitted[name])
    for name, (fit_s, model) in candidates.items():
        sampled_s, _ = timed(holdout_ranks, device, model, data.test)
        full_s, _ = timed(
            full_catalogue_pass,
            device,
            model,
            data.test,
            seen.users,
            seen.items,
            data.n_items,
            TOP_N,
        )
        rows.append([name, fit_s, sampled_s, full_s])
    return pd.DataFrame(rows, columns=["candidate", "fit s", "sampled s", "full catalogue s"])


def tuned() -> str:
    """Whether this process keeps freed memory (the stage sets it on the CPU): without it every
    chunk's activations fault in fresh pages (training/cpu_memory.py)."""
    return "yes" if keep_freed_memory.cache_info().currsize else "no"


def markdown(frame: pd.DataFrame, formats: dict[str, str]) -> str:
    """The table as markdown (``formats``: a format spec per column; the rest as they are)."""
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    for row in frame.itertuples(index=False):
        cells = [format(v, formats.get(c, "")) for c, v in zip(frame.columns, row, strict=True)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def available_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 8 << 30  # not Linux: assume 8 GB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="ml-1m")
    parser.add_argument(
        "--gpu",
        choices=GPU_CHOICES,
        default=GpuUse.AUTO.value,
        help="auto: CUDA when PyTorch sees it; true: fail without it; false: the CPU",
    )
    parser.add_argument("--batches", type=int, nargs="+", default=list(BATCHES))
    parser.add_argument("--repeats", type=int, default=3, help="throughput: best of this many")
    args = parser.parse_args()
    device = resolve_device(args.gpu)
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}")
    print(
        "models: the recipe sizes with freshly initialised weights (evaluation cost depends on "
        "the sizes, not on the weights: the figures are not meaningful here, only the times)"
    )
    with tempfile.TemporaryDirectory(prefix="evaluation-speed-") as tmp:
        folder = Path(tmp)
        prepare_s, models = timed(prepare, device, args.shape, folder)
        print(f"prepare data (generate, split, save {len(models)} models): {prepare_s:.1f} s")

        stage_s, _ = timed(
            evaluate, device, folder / "split", models, folder / "out", device=device
        )
        print(
            f"whole evaluation ({len(models)} models + {len(BASELINES)} baselines, both passes, "
            f"summaries and files): {stage_s:.1f} s (target: under 30 s on 2 CPU cores); "
            f"glibc malloc tuned (keep_freed_memory): {tuned()}"
        )

        data = TrainingData.load(folder / "split", device)
        chunk = _chunk_scores(device)
        sampled_users = chunk // (1 + data.test.negatives.shape[1])
        print(
            "\nper candidate, as the stage runs them (after the stage, so warm; the stage's "
            f"batches: {sampled_users:,} users sampled, {chunk // data.n_items:,} users full "
            "catalogue):"
        )
        table = per_candidate(data, models, device, folder / "scratch")
        print(markdown(table, dict.fromkeys(table.columns[1:], ".3f")))
        print(f"total: {table[['fit s', 'sampled s', 'full catalogue s']].to_numpy().sum():.1f} s")

        model = load_candidate(THROUGHPUT_MODEL, models[THROUGHPUT_MODEL], data, folder / "x")
    room = available_bytes(device) // 2
    users = len(data.test.users)
    need = {b: min(b, users) * data.n_items * FULL_BYTES_PER_SCORE for b in args.batches}
    full_batches = [b for b in args.batches if need[b] <= room]
    print(
        f"\n{THROUGHPUT_MODEL} throughput, {len(data.test.users):,} test users, best of "
        f"{args.repeats}:"
    )
    frames = [measure(model, data, args.batches, args.repeats, passes=["sampled"])]
    if full_batches:
        frames.append(measure(model, data, full_batches, args.repeats, passes=["full catalogue"]))
    throughput = pd.concat(frames, ignore_index=True)
    print(markdown(throughput, {"seconds": ".3f", "users_per_s": ",.0f", "users_per_batch": ","}))
    for batch in sorted(set(args.batches) - set(full_batches)):
        print(
            f"full catalogue at {batch:,} users a batch skipped: about {need[batch] / 2**30:.0f} "
            f"GB of activations, over half the {2 * room / 2**30:.0f} GB available"
        )


if __name__ == "__main__":
    main()
