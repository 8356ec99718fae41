"""Data-parallel arithmetic: each rank's shard of a batch and its weight in the optimiser step
(the real two-rank runs are in integration/test_distributed.py)."""

import math

import pytest

from training.config import TrainConfig
from training.distributed import ProcessGroup


@pytest.mark.parametrize("world_size", [2, 3])
@pytest.mark.parametrize(("start", "end"), [(0, 1021), (19380, 19400), (2042, 2043)])
def test_shards_partition_the_batch_and_their_shares_sum_to_one(world_size, start, end):
    shards = [ProcessGroup(rank, world_size).shard(start, end) for rank in range(world_size)]
    rows = sorted(i for rows, _ in shards for i in range(end)[rows])
    assert rows == list(range(start, end))
    assert sum(share for _, share in shards) == pytest.approx(1.0)
    for rows, share in shards:
        assert share == len(range(end)[rows]) / (end - start)


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_every_optimiser_steps_weights_sum_to_one_over_ranks_and_micro_batches(world_size):
    """1,950 rows in micro-batches of 85, three a step: the last step has 85 + 80 rows."""
    from training.steps import micro_batch

    config = TrainConfig(batch_size=85, grad_accumulation=3)
    totals = [0.0] * math.ceil(1950 / (85 * 3))
    for step in range(math.ceil(1950 / 85)):
        for rank in range(world_size):
            totals[step // 3] += micro_batch(step, config, 1950, ProcessGroup(rank, world_size))[1]
    assert totals == pytest.approx([1.0] * len(totals))
