"""Micro-batching: concurrent requests share one pass, and one request's failure stays its own."""

from __future__ import annotations

import asyncio

import pytest

from inference.batching import MicroBatcher
from inference.recommender import Query, Ranking


class Ranker:
    """Records each pass; user 666 fails its pass."""

    def __init__(self) -> None:
        self.passes: list[list[int]] = []

    def __call__(self, queries):
        self.passes.append([query.user_id for query in queries])
        if any(query.user_id == 666 for query in queries):
            raise ArithmeticError("user 666 overflows")
        return [Ranking(query.user_id, [(query.user_id * 10, 1.0)]) for query in queries]


def _requests(batcher, *groups):
    async def main():
        return await asyncio.gather(
            *(batcher.rank([Query(user) for user in group]) for group in groups),
            return_exceptions=True,
        )

    return asyncio.run(main())


def test_concurrent_requests_are_ranked_in_one_pass_and_answered_in_order():
    ranker, sizes = Ranker(), []
    batcher = MicroBatcher(ranker, max_users=32, wait=0, observe=sizes.append)
    answers = _requests(batcher, [1], [2, 3], [4])
    assert ranker.passes == [[1, 2, 3, 4]]
    assert sizes == [4]
    assert [[r.user_id for r in answer] for answer in answers] == [[1], [2, 3], [4]]
    assert answers[1][1].items == [(30, 1.0)]


def test_a_full_batch_is_ranked_without_waiting_for_the_rest():
    ranker = Ranker()
    _requests(MicroBatcher(ranker, max_users=2, wait=0.2), [1], [2], [3, 4, 5], [6])
    # 1+2 fill a batch at once; 3,4,5 is a batch of its own; 6 waits alone for the timer
    assert sorted(ranker.passes) == [[1, 2], [3, 4, 5], [6]]


def test_a_wait_window_gathers_requests_that_arrive_within_it():
    ranker = Ranker()
    batcher = MicroBatcher(ranker, max_users=32, wait=0.05)

    async def main():
        first = asyncio.ensure_future(batcher.rank([Query(1)]))
        await asyncio.sleep(0.01)  # arrives later, within the window
        return await asyncio.gather(first, batcher.rank([Query(2)]))

    asyncio.run(main())
    assert ranker.passes == [[1, 2]]


def test_one_failing_request_does_not_fail_the_others_in_its_batch():
    ranker = Ranker()
    ok, failed, also_ok = _requests(MicroBatcher(ranker, 32, 0), [1], [666], [2])
    assert isinstance(failed, ArithmeticError)
    assert [r.user_id for r in ok] == [1] and [r.user_id for r in also_ok] == [2]
    assert ranker.passes[0] == [1, 666, 2]  # then each request alone


@pytest.mark.parametrize("max_users", [0, 1])
def test_batching_off_ranks_each_request_on_its_own(max_users):
    ranker = Ranker()
    _requests(MicroBatcher(ranker, max_users=max_users, wait=0), [1], [2])
    assert ranker.passes == [[1], [2]]
