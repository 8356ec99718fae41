"""Load on a model server, and what the model alone manages (lesson 07, benchmarks/).

Load comes from locust (``benchmarks/locustfile.py``), run headless as a subprocess pinned to its
own CPU: importing locust into a notebook kernel would hang it (its gevent patches), and a load
generator sharing the server's CPU measures itself. Each step holds ``users`` closed-loop clients
(no think time); stats are reset once all have started. Locust keeps response times in whole
milliseconds below 100 ms, so its percentiles are that coarse.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import tarfile
import time
from io import BytesIO
from pathlib import Path

import pyarrow.parquet as pq
import torch

from inference.recommender import Query, Recommender
from orchestration.infra.model_server import ModelServer
from orchestration.infra.services import free_ports
from preprocessing.schema import TABLE_FILES

REPO = Path(__file__).resolve().parents[2]
LOCUSTFILE = REPO / "benchmarks" / "locustfile.py"
NAIVE_COMMIT = "bf2e870"  # the last server with a forward pass per request and no batching
SLO_MS = 20.0
# The servers compared: NAIVE_COMMIT's, and this one with micro-batching off and on (its env).
SERVERS = {
    "naive": {},
    "precomputed": {"NCF_MICRO_BATCH_USERS": "1"},
    "micro-batched": {"NCF_MICRO_BATCH_USERS": "32"},
}


def step(url: str, users: int, n_users: int, seconds: float, prefix: Path, cpus: str = "1") -> dict:
    """One step of ``users`` concurrent clients for ``seconds``: req/s and p50/p95/p99 in ms."""
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
        "-u", str(users), "-r", str(users), "-t", f"{seconds + 1:.0f}s", "--reset-stats",
        "--host", url, "--csv", str(prefix), "--loglevel", "ERROR", "--stop-timeout", "2",
    ]  # fmt: skip
    if cpus:
        command = ["taskset", "--cpu-list", cpus, *command]
    prefix.parent.mkdir(parents=True, exist_ok=True)
    run = subprocess.run(
        command,
        env={**os.environ, "NCF_USERS": str(n_users)},
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    stats = Path(f"{prefix}_stats.csv")
    if not stats.is_file():
        raise RuntimeError(
            f"locust wrote no statistics (exit {run.returncode}): {run.stderr[-800:]}"
        )
    with stats.open(newline="") as file:
        row = next(row for row in csv.DictReader(file) if row["Name"] == "/invocations")
    return {
        "users": users,
        "req/s": float(row["Requests/s"]),
        "p50 ms": float(row["50%"]),
        "p95 ms": float(row["95%"]),
        "p99 ms": float(row["99%"]),
        "failures": int(row["Failure Count"]),
    }


def stepped(
    model_dir: Path, server: str, steps: list[int], seconds: float, work: Path
) -> list[dict]:
    """``server`` (a key of SERVERS) as a host process pinned to CPU 0, under each step of
    locust's load from CPU 1; a row a step. Logs and CSVs go under ``work``."""
    code = naive_code(work / "naive") if server == "naive" else None
    n_users = pq.read_metadata(model_dir / TABLE_FILES["users"]).num_rows  # raw ids 1..n
    port = free_ports(1)[0]
    log = work / "logs" / f"{server}.log"
    with ModelServer(model_dir, port, cpus="0", code=code, env=SERVERS[server], log=log) as served:
        return [
            {
                "server": server,
                **step(served.url, users, n_users, seconds, work / "load" / f"{server}-{users}"),
            }
            for users in steps
        ]


def best_within_slo(rows: list[dict], slo_ms: float = SLO_MS) -> float:
    """The highest throughput of a step whose p99 holds the objective, without failures."""
    kept = [row["req/s"] for row in rows if row["p99 ms"] <= slo_ms and not row["failures"]]
    return max(kept, default=0.0)


def naive_code(target: Path, commit: str = NAIVE_COMMIT) -> Path:
    """The server of ``commit``, with the model code it ran, unpacked from ``git archive``
    (afresh: a folder an earlier run left is replaced)."""
    run = subprocess.run(
        ["git", "-C", str(REPO), "archive", commit, "inference", "training", "preprocessing"],
        check=False,
        capture_output=True,
    )
    if run.returncode:
        raise RuntimeError(
            f"the naive baseline is the server of commit {commit}, and this copy of the course "
            f"cannot give it ({run.stderr.decode(errors='replace').strip()}): use a full "
            "`git clone` of the repository (not a download or a shallow clone)"
        )
    archive = run.stdout
    shutil.rmtree(target, ignore_errors=True)
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target


def users_per_second(
    folder: Path, batches: tuple[int, ...], seconds: float = 2.0, precision: str = "auto"
) -> dict:
    """On one thread: this server's ranking with ``batch`` users a pass (``precision`` as the
    server picks it), and the naive path (the model's forward pass over the catalogue for one
    user, then top-k)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        recommender = Recommender.from_folder(folder, "cpu", precision=precision)
        user_ids = recommender.user_ids()
        result = {}
        for batch in batches:
            done, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds:
                recommender.rank(
                    [Query(user_ids[(done + i) % len(user_ids)]) for i in range(batch)]
                )
                done += batch
            result[f"precomputed, {batch} a pass"] = done / (time.perf_counter() - started)
        model, items = recommender.model, torch.arange(recommender.n_items).unsqueeze(0)
        done, started = 0, time.perf_counter()
        with torch.inference_mode():
            while time.perf_counter() - started < seconds:
                torch.topk(model(torch.tensor([done % len(user_ids)]), items), 10)
                done += 1
        result["naive, 1 a pass"] = done / (time.perf_counter() - started)
    finally:
        torch.set_num_threads(threads)
    return result
