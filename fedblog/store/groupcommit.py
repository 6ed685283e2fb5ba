"""Group commit: the calls made in one turn of the event loop share one database round.

Under load, many inbox POSTs are ready at the same moment. Each used to check out a connection,
begin, run its statements and commit on its own: most of the cost of a small write is that
overhead, not the rows. A ``Coalescer`` collects the items submitted while the loop runs the other
ready tasks, hands them to ``flush`` in one call (one connection, one transaction), and wakes each
caller with its own result. When the server is idle a batch is one item and the only cost is one
``call_soon``: the flush runs in the same loop turn, right after the tasks that were already ready.

``flush`` runs in the event loop thread, as every database call of the inbox does, and must return
one result per item, in order. If it raises, every caller of that batch gets the exception.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

MAX_BATCH = 128  # bounds one flush's transaction (and how long it holds the loop)


class Coalescer(Generic[T, R]):
    def __init__(self, flush: Callable[[list[T]], Sequence[R]], *, max_batch: int = MAX_BATCH) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        self._flush = flush
        self._max = max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduled = False
        self.batches = 0  # counters, for the benchmark's report
        self.items = 0

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new loop (tests run one per test): nothing of the old one is valid
            self._loop, self._pending, self._scheduled = loop, [], False
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._run)
        return await future

    def _run(self) -> None:
        batch, self._pending = self._pending[: self._max], self._pending[self._max :]
        if self._pending:  # more than one batch waiting: the next one after the loop's other work
            assert self._loop is not None
            self._loop.call_soon(self._run)
        else:
            self._scheduled = False
        if not batch:
            return
        self.batches += 1
        self.items += len(batch)
        try:
            results = self._flush([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"flush returned {len(results)} results for {len(batch)} items")
        except BaseException as exc:  # every caller of the batch hears of it; nobody waits forever
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():  # the caller may have gone (client disconnect): the work stands
                future.set_result(result)
