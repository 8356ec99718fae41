"""Micro-batching: concurrent requests' users ranked in one pass over the catalogue.

A request hands its queries over and awaits its answer. The first one of a batch schedules a
flush after ``wait`` seconds (0: at the event loop's next turn, so it gathers exactly the
requests that arrived meanwhile and adds no latency when alone); the batch flushes earlier when
it holds ``max_users``. The pass runs on the event loop's thread: the server has one worker per
CPU share, and a thread pool would only add hand-offs. Whether it pays depends on the device:
on a GPU one pass of 32 users costs about what one user does, on a CPU each user costs its own
arithmetic and gathering saves only per-request overhead (docs/benchmarks.md, "Serving").
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from inference.recommender import Query, Ranking


class MicroBatcher:
    def __init__(
        self,
        rank: Callable[[Sequence[Query]], list[Ranking]],
        max_users: int,
        wait: float,
        observe: Callable[[int], None] = lambda users: None,
    ) -> None:
        self._rank = rank
        self._max_users = max_users
        self._wait = wait
        self._observe = observe  # users per pass, for the metrics
        self._pending: list[tuple[Sequence[Query], asyncio.Future[list[Ranking]]]] = []
        self._users = 0
        self._timer: asyncio.Handle | None = None

    async def rank(self, queries: Sequence[Query]) -> list[Ranking]:
        if self._max_users <= 1 or len(queries) >= self._max_users:
            self._observe(len(queries))
            return self._rank(queries)  # a batch of its own: nothing to wait for
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Ranking]] = loop.create_future()
        self._pending.append((queries, future))
        self._users += len(queries)
        if self._users >= self._max_users:
            self._flush()
        elif self._timer is None:
            self._timer = (
                loop.call_later(self._wait, self._flush)
                if self._wait
                else loop.call_soon(self._flush)
            )
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        pending, self._pending, self._users, self._timer = self._pending, [], 0, None
        if not pending:
            return
        queries = [query for batch, _ in pending for query in batch]
        self._observe(len(queries))
        try:
            rankings = self._rank(queries)
        except Exception:  # one request's failure must not fail the others
            for batch, future in pending:
                self._settle_alone(batch, future)
            return
        start = 0
        for batch, future in pending:
            if not future.cancelled():
                future.set_result(rankings[start : start + len(batch)])
            start += len(batch)

    def _settle_alone(self, batch: Sequence[Query], future: asyncio.Future[list[Ranking]]) -> None:
        if future.cancelled():
            return
        try:
            future.set_result(self._rank(batch))
        except Exception as exc:  # delivered to the request it belongs to
            future.set_exception(exc)
