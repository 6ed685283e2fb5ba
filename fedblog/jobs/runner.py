"""The delivery worker loop: claim due rows, deliver them concurrently, settle them in batches.

Each of the ``concurrency`` delivery tasks keeps its own guarded client with one connection:
httpx's shared pool costs O(connections²) per request, and per-task clients measured 5× faster
here (research/bench-ceilings.md §4). Deliveries to one host are capped (``per_host``) so one
slow server cannot take every slot. Outcomes are written in batches; a crash between sending and
recording means a re-send after the lease expires, which receivers dedupe by activity id.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlmodel import Session

from fedblog.jobs import queue
from fedblog.jobs.delivery import Outcome, deliver_one
from fedblog.jobs.retry import UNAVAILABLE_AFTER_DAYS, next_attempt
from fedblog.services import Services

log = logging.getLogger("fedblog.worker")
FLUSH_EVERY = 0.25  # seconds
FLUSH_SIZE = 200


@dataclass
class RunStats:
    sent: int = 0
    retried: int = 0
    gave_up: int = 0
    gone: int = 0
    by_host_failures: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def settled(self) -> int:
        return self.sent + self.retried + self.gave_up + self.gone


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class DeliveryRunner:
    """Deliver pending rows. ``run_until_idle`` for CLI/tests, ``run_forever`` inside serve/worker."""

    def __init__(self, services: Services, *, worker_id: str | None = None, concurrency: int | None = None,
                 per_host: int | None = None, on_progress: Callable[[RunStats], None] | None = None) -> None:
        s = services.settings
        self.services = services
        self.worker_id = worker_id or default_worker_id()
        self.concurrency = concurrency or s.delivery_concurrency
        self.per_host = per_host or s.delivery_per_host
        self.lease = timedelta(seconds=s.delivery_lease_seconds)
        self.on_progress = on_progress
        self.stats = RunStats()
        self._host_slots: dict[str, asyncio.Semaphore] = defaultdict(lambda: asyncio.Semaphore(self.per_host))
        self._bodies: dict[int, bytes] = {}
        self._results: list[tuple[queue.Claimed, Outcome]] = []

    # -- public -----------------------------------------------------------------------------------
    async def run_until_idle(self) -> RunStats:
        """Deliver until nothing is due (rows scheduled for later are left for later)."""
        await self._run(stop=None)
        return self.stats

    async def run_forever(self, stop: asyncio.Event, idle_sleep: float = 1.0) -> None:
        while not stop.is_set():
            await self._run(stop=stop)
            try:
                await asyncio.wait_for(stop.wait(), timeout=idle_sleep)
            except TimeoutError:
                pass

    # -- internals --------------------------------------------------------------------------------
    async def _run(self, stop: asyncio.Event | None) -> None:
        work: asyncio.Queue[queue.Claimed | None] = asyncio.Queue(maxsize=self.concurrency * 2)
        clients = [self.services.new_client(1) for _ in range(self.concurrency)]
        auth = self.services.signer()
        flusher = asyncio.create_task(self._flush_loop())
        tasks = [asyncio.create_task(self._deliver_loop(work, c, auth)) for c in clients]
        try:
            while stop is None or not stop.is_set():
                claimed = self._claim(self.concurrency * 4)
                if not claimed:
                    break
                for item in claimed:
                    await work.put(item)
        finally:
            for _ in tasks:
                await work.put(None)
            await asyncio.gather(*tasks, return_exceptions=True)
            flusher.cancel()
            await asyncio.gather(flusher, return_exceptions=True)
            self._flush()
            for c in clients:
                await c.aclose()

    def _claim(self, limit: int) -> list[queue.Claimed]:
        now = self.services.clock.now()
        with Session(self.services.engine) as session:
            claimed = queue.claim_due(session, worker=self.worker_id, now=now, limit=limit, lease=self.lease)
            missing = [c.activity_id for c in claimed if c.activity_id not in self._bodies]
            for aid, body in queue.activity_bodies(session, list(set(missing))).items():
                self._bodies[aid] = body.encode()
        return claimed

    async def _deliver_loop(self, work: asyncio.Queue[queue.Claimed | None], client: object, auth: object) -> None:
        while True:
            item = await work.get()
            if item is None:
                return
            async with self._host_slots[item.host]:
                outcome = await deliver_one(self.services, client, auth, item.inbox, self._bodies[item.activity_id])  # type: ignore[arg-type]
            self._results.append((item, outcome))
            if len(self._results) >= FLUSH_SIZE:
                self._flush()

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY)
            self._flush()

    def _flush(self) -> None:
        if not self._results:
            return
        batch, self._results = self._results, []
        now = self.services.clock.now()
        with Session(self.services.engine) as session:
            unavailable: dict[str, bool] = {}
            w = self.worker_id
            sent = [item for item, out in batch if out.kind == "sent"]
            queue.mark_sent(session, [item.id for item in sent], worker=w, now=now)
            self.stats.sent += len(sent)
            for host in {item.host for item in sent}:
                queue.clear_host(session, host, now)
            for item, out in batch:
                if out.kind == "sent":
                    continue
                if out.kind == "gone":
                    queue.mark_gave_up(session, item.id, worker=w, now=now, status=out.status, error=out.error)
                    removed = queue.remove_followers_at(session, item.inbox)
                    log.info("inbox %s is gone (410): removed %d follower(s)", item.inbox, removed)
                    self.stats.gone += 1
                elif out.kind == "give_up":
                    queue.mark_gave_up(session, item.id, worker=w, now=now, status=out.status, error=out.error)
                    self.stats.gave_up += 1
                else:
                    if item.host not in unavailable:
                        unavailable[item.host] = queue.record_host_failure(
                            session, item.host, now, days_for_unavailable=UNAVAILABLE_AFTER_DAYS)
                    at = next_attempt(item.attempts + 1, now, item.created_at if item.created_at.tzinfo else item.created_at.replace(tzinfo=now.tzinfo),
                                      retry_after=out.retry_after, host_unavailable=unavailable[item.host])
                    if at is None:
                        queue.mark_gave_up(session, item.id, worker=w, now=now, status=out.status,
                                           error=f"gave up after retrying for days; last error: {out.error}")
                        self.stats.gave_up += 1
                    else:
                        queue.mark_retry(session, item.id, worker=w, now=now, at=at, status=out.status, error=out.error)
                        self.stats.retried += 1
            session.commit()
        if self.on_progress:
            self.on_progress(self.stats)
