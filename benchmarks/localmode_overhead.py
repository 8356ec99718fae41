"""What SageMaker local mode costs per job: the same work as a plain process and as a job.

Overhead = job wall time - plain-process wall time of the same entry point on the same data
(compose, container start, S3 transfers, artifact packing). Needs Docker and the images.

    python benchmarks/localmode_overhead.py [--data-dir ../shared/data/ml-100k] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from orchestration.infra.cleanup import clean
from orchestration.infra.services import LocalServices
from orchestration.sagemaker_local.jobs import run_processing, run_training
from orchestration.sagemaker_local.session import container_root, local_session, upload

TRAIN = {"model": "gmf", "epochs": 1, "refit": False, "seed": 0}


def timed(run) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def plain(module: str, *args: str) -> None:
    subprocess.run([sys.executable, "-m", module, *args], check=True, capture_output=True)


def measure(work: Path, data_dir: Path, repeats: int) -> dict[str, list[tuple[float, float]]]:
    """(plain process, local-mode job) seconds per job and repeat, everything under ``work``."""
    processed, prep = work / "processed", ["--dataset", "ml-100k", "--no-progress"]
    train_flags = [f"--{key.replace('_', '-')}={value}" for key, value in TRAIN.items()]
    train_flags += ["--model-dir", str(work / "model")]
    with LocalServices(work / "services") as services:
        scratch = container_root(work / "jobs")
        session = local_session(services.s3, scratch)
        raw = upload(session, data_dir, "bench/raw")
        output = f"s3://{services.s3.bucket}/bench/processed"
        tracking = {"MLFLOW_TRACKING_URI": services.mlflow.tracking_uri}
        jobs = {
            "processing": (
                lambda: plain("preprocessing", *prep, "--data-dir", str(data_dir),
                              "--output-dir", str(processed)),
                lambda: run_processing(session, raw=raw, output=output, arguments=prep),
            ),
            "training": (
                lambda: plain("training", "--train", str(processed), *train_flags,
                              "--tracking-uri", tracking["MLFLOW_TRACKING_URI"]),
                lambda: run_training(
                    session, channels={"train": output}, hyperparameters=TRAIN,
                    output_path=f"s3://{services.s3.bucket}/bench/models", environment=tracking),
            ),
        }  # fmt: skip
        return {
            job: [(timed(process), timed(job_run)) for _ in range(repeats)]
            for job, (process, job_run) in jobs.items()
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data/ml-100k"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    # Job containers write as root: a non-root user keeps what it cannot remove.
    with tempfile.TemporaryDirectory(prefix="ncf-overhead-", ignore_cleanup_errors=True) as work:
        try:
            figures = measure(Path(work), args.data_dir, args.repeats)
        finally:
            clean([], network=False)  # local mode leaves every job's stopped container behind
    print(f"\nML-100K, median of {args.repeats}")
    print("| job | plain process (s) | local-mode job (s) | overhead (s) |")
    print("|---|---|---|---|")
    for job, pairs in figures.items():
        p = statistics.median(pair[0] for pair in pairs)
        j = statistics.median(pair[1] for pair in pairs)
        print(f"| {job} | {p:.1f} | {j:.1f} | {j - p:.1f} |")


if __name__ == "__main__":
    main()
