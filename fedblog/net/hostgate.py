"""At most ``per_host`` requests to one host at a time, per process; the others wait in order.

The inbox fetches keys, actors and WebFinger answers on the request path. A burst of activities
from many new actors of one server would otherwise open one connection per actor at once: that is
impolite to the server, and httpcore's pool scans every connection it holds (a ``poll`` per idle
one) whenever a request starts or ends, so its cost grows with the square of the requests in
flight. A waiting request holds a future, no connection.

Entries exist only while a host has requests running or waiting, so the map stays as small as
the work in flight.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator

PER_HOST = 8


class HostGate:
    def __init__(self, per_host: int = PER_HOST) -> None:
        if per_host < 1:
            raise ValueError(f"per_host must be at least 1, not {per_host}")
        self.per_host = per_host
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running: dict[str, int] = {}
        self._waiting: dict[str, collections.deque[asyncio.Future[None]]] = {}

    def busy(self, host: str) -> tuple[int, int]:
        """(running, waiting) for ``host``: for tests and reports."""
        return self._running.get(host, 0), len(self._waiting.get(host, ()))

    @contextlib.asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new loop (tests run one per test): nothing of the old one is valid
            self._loop, self._running, self._waiting = loop, {}, {}
        if self._running.get(host, 0) >= self.per_host:
            future: asyncio.Future[None] = loop.create_future()
            self._waiting.setdefault(host, collections.deque()).append(future)
            try:
                await future  # the slot is handed over by the request that finishes (_release)
            except asyncio.CancelledError:
                if future.done() and not future.cancelled():
                    self._release(host)  # handed a slot just as it was cancelled: pass it on
                else:
                    self._forget(host, future)
                raise
        else:
            self._running[host] = self._running.get(host, 0) + 1
        try:
            yield
        finally:
            if loop is self._loop:
                self._release(host)

    def _release(self, host: str) -> None:
        waiting = self._waiting.get(host)
        while waiting:
            future = waiting.popleft()
            if not future.done():
                future.set_result(None)  # the slot passes on: the running count stays
                if not waiting:
                    del self._waiting[host]
                return
        self._waiting.pop(host, None)
        left = self._running.get(host, 0) - 1
        if left > 0:
            self._running[host] = left
        else:
            self._running.pop(host, None)

    def _forget(self, host: str, future: asyncio.Future[None]) -> None:
        waiting = self._waiting.get(host)
        if waiting is not None:
            with contextlib.suppress(ValueError):
                waiting.remove(future)
            if not waiting:
                del self._waiting[host]
