"""Per-host lanes and delivery slots: the in-memory scheduling of one worker process.

``HostLanes``: at most ``per_host`` deliveries to one host run at a time; further rows of that
host wait in its lane (not in a delivery slot), so one slow or dead host never holds up the
others (no head-of-line blocking). ``Slots``: ``concurrency`` deliveries do work at once; one
that has had no answer for ``SLOW_AFTER`` seconds moves to the slow room (if there is space) and
frees its slot, so inboxes that accept a connection and then hang occupy sockets, not the
worker's capacity. Nothing here touches the database or the network.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class HostLanes(Generic[T]):
    per_host: int
    running: Counter[str] = field(default_factory=Counter)
    waiting: dict[str, deque[T]] = field(default_factory=dict)

    def admit(self, host: str) -> bool:
        """Take a running place for ``host`` if it has one free."""
        if self.running[host] < self.per_host:
            self.running[host] += 1
            return True
        return False

    def wait(self, host: str, job: T) -> None:
        self.waiting.setdefault(host, deque()).append(job)

    def finished(self, host: str) -> T | None:
        """A delivery to ``host`` ended: its place passes to the next waiting row, if any."""
        lane = self.waiting.get(host)
        if lane:
            job = lane.popleft()
            if not lane:
                del self.waiting[host]
            return job
        self.running[host] -= 1
        if self.running[host] <= 0:
            del self.running[host]
        return None

    def remove(self, host: str, job: T) -> None:
        lane = self.waiting.get(host)
        if lane and job in lane:
            lane.remove(job)
            if not lane:
                del self.waiting[host]

    def backlogged(self) -> set[str]:
        """Hosts with a full lane of their own: claiming more of them would only queue."""
        return {host for host, lane in self.waiting.items() if len(lane) >= self.per_host}

    def drain(self) -> list[T]:
        jobs = [job for lane in self.waiting.values() for job in lane]
        self.waiting.clear()
        return jobs


class Slots:
    """``fast`` working slots plus a room for up to ``slow`` deliveries that wait on a quiet peer."""

    def __init__(self, fast: int, slow: int, on_free: Callable[[], None]) -> None:
        self._fast = asyncio.Semaphore(fast)
        self.slow_free = slow
        self.pipeline = 0  # deliveries started and not (yet) moved to the slow room
        self._on_free = on_free

    async def acquire(self) -> None:
        self.pipeline += 1
        try:
            await self._fast.acquire()
        except BaseException:
            self.pipeline -= 1
            raise

    def to_slow(self) -> bool:
        """Move one running delivery to the slow room, freeing its slot; False if the room is full."""
        if self.slow_free <= 0:
            return False
        self.slow_free -= 1
        self.pipeline -= 1
        self._fast.release()
        self._on_free()
        return True

    def release(self, *, slow: bool) -> None:
        if slow:
            self.slow_free += 1
        else:
            self.pipeline -= 1
            self._fast.release()
        self._on_free()
