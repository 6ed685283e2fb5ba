"""Group commit: the calls made while the database is busy share one database round.

Under load, many inbox POSTs are ready at the same moment. Each used to check out a connection,
begin, run its statements and commit on its own: most of the cost of a small write is that
overhead, not the rows. A ``Coalescer`` collects the items submitted while the loop runs the other
ready tasks (and while its previous batch is still in the database), hands them to ``flush`` in one
call (one connection, one transaction), and wakes each caller with its own result.

``flush`` is blocking database work: it runs through ``run`` (``Services.run_db``: the bounded
database thread pool), never on the event loop, so a locked or slow database holds a pool thread,
not every request of the process. At most ``concurrency`` batches are in the database at once; the
items that arrive meanwhile wait and form the next batch. ``flush`` must return one result per item,
in order; if it raises, every caller of that batch gets the exception.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

MAX_BATCH = 128  # bounds one flush's transaction
Flush = Callable[[list[T]], Sequence[R]]
Runner = Callable[[Flush[T, R], list[T]], Awaitable[Sequence[R]]]


async def _inline(flush: Flush[T, R], items: list[T]) -> Sequence[R]:
    """For callers without a pool (unit tests of the batching alone)."""
    return flush(items)


class Coalescer(Generic[T, R]):
    def __init__(self, flush: Flush[T, R], *, run: Runner[T, R] | None = None, max_batch: int = MAX_BATCH,
                 concurrency: int = 1) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        self._flush = flush
        self._run: Runner[T, R] = run or _inline
        self._max = max_batch
        self._concurrency = concurrency
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduled = False
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0  # counters, for the benchmark's report
        self.items = 0

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new loop (tests run one per test): nothing of the old one is valid
            self._loop, self._pending, self._scheduled, self._in_flight = loop, [], False, 0
            self._tasks = set()
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future))
        self._kick()
        return await future

    def _kick(self) -> None:
        if self._pending and not self._scheduled and self._in_flight < self._concurrency:
            assert self._loop is not None
            self._scheduled = True
            self._loop.call_soon(self._start)  # after the tasks already ready: they may submit too

    def _start(self) -> None:
        self._scheduled = False
        assert self._loop is not None
        while self._pending and self._in_flight < self._concurrency:
            batch, self._pending = self._pending[: self._max], self._pending[self._max :]
            self._in_flight += 1
            task = self._loop.create_task(self._flush_batch(batch))
            self._tasks.add(task)  # keep a reference until it is done
            task.add_done_callback(self._tasks.discard)

    async def _flush_batch(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        loop = self._loop
        try:
            self.batches += 1
            self.items += len(batch)
            try:
                results = await self._run(self._flush, [item for item, _ in batch])
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
        finally:
            if loop is self._loop:
                self._in_flight -= 1
                self._kick()
