"""Data-parallel training across SageMaker instances: one process per host, gradients summed.

The rank is the current host's place in the sorted host list, the world is all hosts; ranks meet
at the first host on port 29500, and ``MASTER_ADDR`` / ``MASTER_PORT`` override both (a test on
one machine uses 127.0.0.1). Gloo on CPU, NCCL on CUDA.

An explicit all_reduce rather than DistributedDataParallel: a rank's loss is already its share
of the global batch's mean (``ProcessGroup.shard``), so gradients are summed, not averaged; the
reduction happens once per optimiser step, after gradient accumulation; and the same call carries
the step's loss and whether any rank was told to stop, so keeping ranks in lockstep costs no
extra round trip. With one host nothing is initialised and every method is the identity, so the
training loop has a single code path.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist

from training.sagemaker_contract import Cluster

log = logging.getLogger(__name__)

DEFAULT_PORT = 29500
# Rank 1 waits in a collective while rank 0 alone evaluates, saves and logs to MLflow.
TIMEOUT = timedelta(minutes=30)
T = TypeVar("T")


@dataclass(frozen=True)
class ProcessGroup:
    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_primary(self) -> bool:
        """Rank 0 alone writes the model folder, checkpoints and MLflow."""
        return self.rank == 0

    def shard(self, start: int, end: int, step_rows: int | None = None) -> tuple[slice, float]:
        """This rank's rows of the global batch ``[start, end)`` and their share of the step.

        Strided, so shards differ by at most a row. The share is of the ``step_rows`` rows that
        one optimiser step accumulates (default: this batch's): a rank's mean loss times its
        share, summed over ranks and the step's batches, is the mean over the step's rows,
        uneven batches included.
        """
        rows = range(start + self.rank, end, self.world_size)
        share = len(rows) / (end - start if step_rows is None else step_rows)
        return slice(rows.start, rows.stop, rows.step), share

    def reduce_step(
        self, parameters: Iterable[torch.Tensor], loss: torch.Tensor, stop: bool
    ) -> tuple[torch.Tensor, bool]:
        """Every rank's gradients and step loss summed, and whether any rank must stop."""
        if self.world_size == 1:
            return loss, stop
        params = [p for p in parameters if p.requires_grad]
        grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in params]
        tail = torch.stack([loss.detach().to(grads[0]), grads[0].new_tensor(float(stop))])
        flat = torch.cat([*(g.reshape(-1) for g in grads), tail])
        dist.all_reduce(flat)
        sizes = [p.numel() for p in params]
        for param, reduced in zip(params, flat[:-2].split(sizes), strict=True):
            param.grad = reduced.view_as(param)
        return flat[-2], bool(flat[-1])

    def any_rank(self, flag: bool) -> bool:
        if self.world_size == 1:
            return flag
        votes = torch.tensor([float(flag)], device=self.device)
        dist.all_reduce(votes, op=dist.ReduceOp.MAX)
        return bool(votes.item())

    def broadcast(self, value: T | None) -> T:
        """Rank 0's value on every rank: its figures decide early stopping for all."""
        if self.world_size == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0, device=self.device)
        return box[0]

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()


LOCAL = ProcessGroup()


def init_method(cluster: Cluster, env: Mapping[str, str]) -> str:
    address = env.get("MASTER_ADDR") or cluster.master
    return f"tcp://{address}:{env.get('MASTER_PORT') or DEFAULT_PORT}"


@contextmanager
def process_group(
    cluster: Cluster, device: torch.device, env: Mapping[str, str] | None = None
) -> Iterator[ProcessGroup]:
    """The job's process group, closed with a barrier after a clean finish.

    docker-compose stops every container as soon as the first one exits, so no rank may leave
    before rank 0 has written the model. After an error no barrier is attempted: the peers may
    be stuck in another collective, and closing the group lets them fail instead of hang.
    """
    if cluster.world_size == 1:
        yield ProcessGroup(device=device)
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    rendezvous = init_method(cluster, os.environ if env is None else env)
    log.info(
        "host %s is rank %d of %d; %s rendezvous at %s",
        cluster.current_host,
        cluster.rank,
        cluster.world_size,
        backend,
        rendezvous,
    )
    dist.init_process_group(
        backend,
        init_method=rendezvous,
        rank=cluster.rank,
        world_size=cluster.world_size,
        timeout=TIMEOUT,
    )
    group = ProcessGroup(cluster.rank, cluster.world_size, device)
    try:
        yield group
        group.barrier()
    finally:
        dist.destroy_process_group()
