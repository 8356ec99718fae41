"""Training and evaluation speed on MovieLens-1M-shaped synthetic data (or ML-20M shape).

    python benchmarks/training_speed.py                 # CPU, ML-1M shape, both configs
    python benchmarks/training_speed.py --device cuda --shape ml-20m

Prints the time to draw one epoch's negatives with each lookup the sampler has, then seconds
per epoch (negative sampling included), samples per second, and the time of one evaluation pass
(every user against 100 candidates) and of a full-catalogue pass.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from preprocessing.manifest import write_split
from preprocessing.split import leave_one_out
from preprocessing.synthetic import SHAPES, generate
from training.config import TrainConfig
from training.data import TrainingData
from training.evaluate import evaluate_full_catalogue, evaluate_holdout
from training.precision import cpu_computes_bf16
from training.sampling import DENSE_TABLE_LIMIT, NegativeSampler
from training.train import epoch_generator, fit

CONFIGS = {
    "small (factors 8, layers 64-32-16-8)": {"num_factors": 8, "layers": (64, 32, 16, 8)},
    "large (factors 32, layers 256-128-64-32)": {"num_factors": 32, "layers": (256, 128, 64, 32)},
}


def prepare(shape: str, folder: Path) -> None:
    started = time.perf_counter()
    frame = generate(*SHAPES[shape], seed=0)
    write_split(leave_one_out(frame, validation=False, seed=0), folder, extra={})
    print(
        f"prepared synthetic {shape}: {len(frame):,} interactions in "
        f"{time.perf_counter() - started:.1f} s"
    )


def timed(fn, *args) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    fn(*args)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - started


def sampling_seconds(data: TrainingData, device: torch.device) -> dict[str, float]:
    """One epoch of 4 negatives a positive, with the dense table (where it fits) and sorted keys."""
    seconds = {}
    for lookup, limit in (("dense table", DENSE_TABLE_LIMIT), ("sorted keys", 0)):
        sampler = NegativeSampler(data.users, data.items, data.n_items, dense_table_limit=limit)
        if lookup == "dense table" and sampler.positive_flags is None:
            continue  # too large for a table: training uses the sorted keys
        sampler.sample(data.users, 4, epoch_generator(0, 0, device))  # warm-up
        seconds[lookup] = timed(sampler.sample, data.users, 4, epoch_generator(0, 1, device))
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="ml-1m")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument(
        "--cuda-graphs",
        choices=("true", "false"),
        default="true",
        help="replay each step as a CUDA graph (GPU only; false: eager steps, to compare)",
    )
    parser.add_argument(
        "--amp",
        choices=("true", "false"),
        default="true",
        help="mixed precision where the hardware computes it (false: fp32, to compare)",
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    print(
        f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
        f"batch {args.batch_size}, cuda graphs {args.cuda_graphs}, amp {args.amp} "
        f"(CPU bf16 units: {'yes' if cpu_computes_bf16() else 'no'})"
    )
    with tempfile.TemporaryDirectory() as tmp:
        prepare(args.shape, Path(tmp))
        data = TrainingData.load(Path(tmp), device)
    samples = len(data.users) * 5
    print(f"{len(data.users):,} positives x (1 + 4 negatives) = {samples:,} samples an epoch")
    drawn = sampling_seconds(data, device)
    print("negative sampling an epoch: " + ", ".join(f"{k} {v:.3f} s" for k, v in drawn.items()))
    print()
    print(
        "| config | epoch s (median) | first epoch s | samples/s | eval pass s | full catalogue s |"
    )
    print("|---|---|---|---|---|---|")
    for label, sizes in CONFIGS.items():
        config = TrainConfig(
            model="neumf",
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=0.001,
            patience=args.epochs,
            gpu="true" if device.type == "cuda" else "false",
            cuda_graphs=args.cuda_graphs == "true",
            amp=args.amp == "true",
            **sizes,
        )
        result = fit(config, data, device=device, progress=False)
        epochs = [row["epoch_seconds"] for row in result.history]
        steady = statistics.median(epochs[1:] or epochs)
        model = result.model
        eval_s = timed(evaluate_holdout, model, data.test, 10)
        full_s = timed(
            evaluate_full_catalogue, model, data.test, data.users, data.items, data.n_items, 10
        )
        print(
            f"| {label} | {steady:.2f} | {epochs[0]:.2f} | {samples / steady:,.0f} | "
            f"{eval_s:.3f} | {full_s:.2f} |"
        )


if __name__ == "__main__":
    main()
