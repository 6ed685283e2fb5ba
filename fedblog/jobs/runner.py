"""The delivery worker loop: claim due rows, deliver them concurrently, settle them in batches.

``concurrency`` delivery tasks share HTTP clients in small groups (``TASKS_PER_CLIENT`` tasks per
guarded client, whose pool holds as many connections): httpx's pool costs O(connections²) per
request, so one big shared pool is slow (research/bench-ceilings.md §4; groups of 8 measured
about as fast as 4, 12 and 16 much slower), while a client per task costs an SSL context each
(~20 ms of CPU). Clients are built on first use, in a thread, and kept for the life of the
runner: an idle worker builds nothing, and a post to one follower builds one client.

Deliveries to one host are capped (``per_host``). A row whose host is at its cap waits in that
host's line, not in a delivery task, so one slow or dead host never holds up the others (no
head-of-line blocking); a host with a full line is left out of further claims until it moves.
Outcomes are written in batches; a crash between sending and recording means a re-send after
the lease expires, which receivers dedupe by activity id.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

import httpx
from sqlmodel import Session

from fedblog.clock import utc
from fedblog.jobs import queue
from fedblog.jobs.delivery import Outcome, deliver_one
from fedblog.jobs.retry import UNAVAILABLE_AFTER_DAYS, next_attempt
from fedblog.services import Services
from fedblog.store.federation import clear_host_failures

log = logging.getLogger("fedblog.worker")
FLUSH_EVERY = 0.25  # seconds
FLUSH_SIZE = 200
TASKS_PER_CLIENT = 2  # delivery tasks sharing one HTTP client (and its connection pool)
ERROR_BACKOFF = 5.0  # seconds run_forever waits after an unexpected error (e.g. the DB is down)


@dataclass
class RunStats:
    sent: int = 0
    retried: int = 0
    gave_up: int = 0
    gone: int = 0

    @property
    def settled(self) -> int:
        return self.sent + self.retried + self.gave_up + self.gone


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class _Dispatch:
    """Claimed rows on their way to the delivery tasks, at most ``per_host`` at a time per host."""

    def __init__(self, per_host: int, lease: float) -> None:
        self.per_host = per_host
        self.lease = lease * 0.9  # seconds a row may wait in a line before its lease is too close to its end
        self.ready: asyncio.Queue[queue.Claimed | None] = asyncio.Queue()
        self.lines: dict[str, deque[tuple[float, queue.Claimed]]] = {}  # rows waiting for a slot of their host
        self.active: Counter[str] = Counter()  # rows ready or in flight, per host
        self.outstanding = 0  # claimed and not yet finished
        self.changed = asyncio.Event()

    def add(self, item: queue.Claimed) -> None:
        self.outstanding += 1
        if self.active[item.host] < self.per_host:
            self.active[item.host] += 1
            self.ready.put_nowait(item)
        else:
            self.lines.setdefault(item.host, deque()).append((time.monotonic() + self.lease, item))

    def done(self, item: queue.Claimed) -> None:
        self.outstanding -= 1
        line = self.lines.get(item.host)
        now = time.monotonic()
        while line and line[0][0] < now:
            # Waited so long behind a slow host that its lease is about to end: leave it (not sent)
            # to whichever worker claims it next, rather than risk two workers sending it.
            line.popleft()
            self.outstanding -= 1
        if line:  # the slot passes to the next row of the same host
            self.ready.put_nowait(line.popleft()[1])
            if not line:
                del self.lines[item.host]
        else:
            self.lines.pop(item.host, None)
            self.active[item.host] -= 1
            if self.active[item.host] <= 0:
                del self.active[item.host]
        self.changed.set()

    def backlogged(self) -> set[str]:
        """Hosts with a full line of their own: claiming more of them would only queue."""
        return {host for host, line in self.lines.items() if len(line) >= self.per_host}

    def drop_waiting(self) -> list[queue.Claimed]:
        """Take back every row not yet in flight (the runner is stopping)."""
        dropped = [item for line in self.lines.values() for _, item in line]
        self.lines.clear()
        while not self.ready.empty():
            item = self.ready.get_nowait()
            if item is not None:
                dropped.append(item)
        self.outstanding -= len(dropped)
        return dropped

    async def wait_change(self) -> None:
        self.changed.clear()
        await self.changed.wait()


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
        self._clients: dict[int, httpx.AsyncClient] = {}
        self._building: dict[int, asyncio.Future[httpx.AsyncClient]] = {}
        self._builder: ThreadPoolExecutor | None = None
        self._auth: httpx.Auth | None = None
        self._bodies: dict[int, bytes] = {}
        self._results: list[tuple[queue.Claimed, Outcome]] = []

    # -- public -----------------------------------------------------------------------------------
    async def run_until_idle(self) -> RunStats:
        """Deliver until nothing is due (rows scheduled for later are left for later)."""
        try:
            await self._run(stop=None)
        finally:
            await self.aclose()
        return self.stats

    async def run_forever(self, stop: asyncio.Event, idle_sleep: float = 1.0) -> None:
        try:
            while not stop.is_set():
                pause = idle_sleep
                try:
                    await self._run(stop=stop)
                except Exception:  # a DB outage must not end deliveries for good: log, wait, retry
                    log.exception("delivery run failed; retrying in %.0f s", ERROR_BACKOFF)
                    pause = ERROR_BACKOFF
                try:
                    await asyncio.wait_for(stop.wait(), timeout=pause)
                except TimeoutError:
                    pass
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP clients (a later run builds new ones)."""
        building, self._building = list(self._building.values()), {}
        built = await asyncio.gather(*building, return_exceptions=True)
        if self._builder is not None:
            self._builder.shutdown(wait=False)  # idle: every build was awaited above
            self._builder = None
        clients, self._clients = list(self._clients.values()), {}
        for c in {id(c): c for c in [*clients, *built] if isinstance(c, httpx.AsyncClient)}.values():
            await c.aclose()

    # -- internals --------------------------------------------------------------------------------
    async def _client(self, slot: int) -> httpx.AsyncClient:
        """The client of ``slot``'s group, built on first use in a thread (an SSL context takes ~20 ms
        of CPU, mostly without the GIL), so tasks that already have one keep delivering meanwhile."""
        group = slot // TASKS_PER_CLIENT
        client = self._clients.get(group)
        if client is not None:
            return client
        building = self._building.get(group)
        if building is None:
            size = min(TASKS_PER_CLIENT, self.concurrency - group * TASKS_PER_CLIENT)
            if self._builder is None:  # one thread: the first groups get their clients first
                self._builder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fedblog-http-clients")
            building = self._building[group] = asyncio.get_running_loop().run_in_executor(
                self._builder, self.services.new_client, size)
        try:
            client = await asyncio.shield(building)
        except Exception:
            self._building.pop(group, None)  # the next delivery tries again
            raise
        self._building.pop(group, None)
        self._clients[group] = client
        return client

    async def _run(self, stop: asyncio.Event | None) -> None:
        site = self.services.site
        if site.stale():  # the handle in the signatures' keyId follows the admin's profile
            await self.services.run_db(site.refresh, self.services.engine)
        dispatch = _Dispatch(self.per_host, self.lease.total_seconds())
        flusher = asyncio.create_task(self._flush_loop(stop, dispatch))
        tasks = [asyncio.create_task(self._deliver_loop(slot, dispatch)) for slot in range(self.concurrency)]
        try:
            while stop is None or not stop.is_set():
                if dispatch.ready.qsize() >= self.concurrency:  # every task has work queued: wait
                    await dispatch.wait_change()
                    continue
                busy = dispatch.backlogged()
                claimed = self._claim(self.concurrency * 4, busy)
                for item in claimed:
                    dispatch.add(item)
                if not claimed:
                    if not busy:
                        break  # nothing more is due
                    # Only the backlogged hosts may have more due: claim again once one of them moves.
                    while busy <= dispatch.backlogged() and (stop is None or not stop.is_set()):
                        await dispatch.wait_change()
            if stop is not None and stop.is_set():  # stopping: finish what is in flight, give back the rest
                self._release(dispatch.drop_waiting())
            while dispatch.outstanding > 0 and not all(t.done() for t in tasks):
                await dispatch.wait_change()
        finally:
            for _ in tasks:
                dispatch.ready.put_nowait(None)
            await asyncio.gather(*tasks, return_exceptions=True)
            flusher.cancel()
            await asyncio.gather(flusher, return_exceptions=True)
            self._flush()
            self._bodies.clear()  # fetched again by the next run: no growth over a long-lived worker

    def _claim(self, limit: int, exclude_hosts: set[str]) -> list[queue.Claimed]:
        now = self.services.clock.now()
        with Session(self.services.engine) as session:
            claimed = queue.claim_due(session, worker=self.worker_id, now=now, limit=limit, lease=self.lease,
                                      exclude_hosts=exclude_hosts)
            missing = [c.activity_id for c in claimed if c.activity_id not in self._bodies]
            for aid, body in queue.activity_bodies(session, list(set(missing))).items():
                self._bodies[aid] = body.encode()
        return claimed

    def _release(self, items: list[queue.Claimed]) -> None:
        if not items:
            return
        try:
            with Session(self.services.engine) as session:
                queue.release(session, [item.id for item in items], worker=self.worker_id)
                session.commit()
        except Exception:  # the leases simply expire instead
            log.exception("could not release %d leases", len(items))

    async def _deliver_loop(self, slot: int, dispatch: _Dispatch) -> None:
        while True:
            item = await dispatch.ready.get()
            if item is None:
                return
            try:
                if self._auth is None:
                    self._auth = self.services.signer()
                client = await self._client(slot)
                outcome = await deliver_one(
                    self.services, client, self._auth, item.inbox, self._bodies[item.activity_id]
                )
            except Exception as exc:  # a bug must not take the task (and its slot) down
                log.exception("delivery to %s failed unexpectedly", item.inbox)
                outcome = Outcome("retry", error=f"internal error: {type(exc).__name__}: {exc}"[:500])
            self._results.append((item, outcome))
            dispatch.done(item)
            if len(self._results) >= FLUSH_SIZE:
                self._flush()

    async def _flush_loop(self, stop: asyncio.Event | None, dispatch: _Dispatch) -> None:
        while True:
            if stop is not None and stop.is_set():
                dispatch.changed.set()  # wake the claim loop so that it notices
            await asyncio.sleep(FLUSH_EVERY)
            self._flush()

    def _flush(self) -> None:
        if not self._results:
            return
        batch, self._results = self._results, []
        try:
            self._write(batch)
        except Exception:  # e.g. the DB is briefly unavailable: keep the outcomes for the next flush
            log.exception("could not record %d delivery outcomes; will retry", len(batch))
            self._results[:0] = batch
            return
        if self.on_progress:
            self.on_progress(self.stats)

    def _write(self, batch: list[tuple[queue.Claimed, Outcome]]) -> None:
        now = self.services.clock.now()
        with Session(self.services.engine) as session:
            unavailable: dict[str, bool] = {}
            w = self.worker_id
            counts: Counter[str] = Counter()
            sent = [item for item, out in batch if out.kind == "sent"]
            queue.mark_sent(session, [item.id for item in sent], worker=w, now=now)
            counts["sent"] = len(sent)
            clear_host_failures(session, {item.host for item in sent}, now)
            for item, out in batch:
                if out.kind == "sent":
                    continue
                if out.kind == "gone":
                    queue.mark_gave_up(session, item.id, worker=w, now=now, status=out.status, error=out.error)
                    removed = queue.remove_followers_at(session, item.inbox)
                    log.info("inbox %s is gone (410): removed %d follower(s)", item.inbox, removed)
                    counts["gone"] += 1
                elif out.kind == "give_up":
                    queue.mark_gave_up(session, item.id, worker=w, now=now, status=out.status, error=out.error)
                    counts["gave_up"] += 1
                else:
                    if item.host not in unavailable:
                        unavailable[item.host] = queue.record_host_failure(
                            session, item.host, now, days_for_unavailable=UNAVAILABLE_AFTER_DAYS)
                    at = next_attempt(
                        item.attempts + 1,
                        now,
                        utc(item.created_at),
                        retry_after=out.retry_after,
                        host_unavailable=unavailable[item.host],
                    )
                    if at is None:
                        queue.mark_gave_up(session, item.id, worker=w, now=now, status=out.status,
                                           error=f"gave up after retrying for days; last error: {out.error}")
                        counts["gave_up"] += 1
                    else:
                        queue.mark_retry(session, item.id, worker=w, now=now, at=at, status=out.status, error=out.error)
                        counts["retried"] += 1
            session.commit()
        for name, n in counts.items():
            setattr(self.stats, name, getattr(self.stats, name) + n)
