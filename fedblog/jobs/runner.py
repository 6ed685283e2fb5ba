"""The delivery worker loop: claim due rows fairly, deliver them concurrently, settle in batches.

Rows of other job kinds (``fedblog.jobs.handlers``) go through the same loop: same claims, lanes,
slots, leases and retry policy; only the work done with a slot differs (``fedblog.jobs.work``).

One long-lived loop per worker (``run_forever``; ``run_until_idle`` for the CLI and tests):

* **Claims** are fair across hosts (``queue.claim_due``: at most ``per_host`` rows of a host per
  claim, every host's oldest row first) and sized to the free capacity, so due rows wait in the
  database, in fair order, rather than in a first-come queue in memory.
* **Lanes and slots** (``fedblog.jobs.lanes``): at most ``per_host`` deliveries per host;
  ``concurrency`` working slots (signing, connecting, sending); once its request is out (or after
  ``SLOW_AFTER`` seconds) a delivery only waits for the peer, in a waiting room of ``SLOW_FACTOR``
  × concurrency, and its working slot goes to the next row. Every delivery has a
  wall-clock deadline (``FEDBLOG_DELIVERY_TIMEOUT``).
* **Wake-up**: a commit that queued deliveries in this process wakes the loop at once (a
  SQLAlchemy ``after_commit`` hook, see ``outbox.DELIVERIES_QUEUED``); other processes' rows and
  retries that fall due are found by a poll every ``idle_sleep`` seconds (one indexed query).
* **Leases and heartbeat**: claimed rows are leased for ``FEDBLOG_DELIVERY_LEASE`` seconds (30)
  and renewed every third of that while this worker holds them. A killed worker's rows are free
  again within one lease; a row whose lease could not be renewed in time is abandoned (its POST
  cancelled), so two workers never send one row at the same time.

Deliveries share HTTP clients in small groups (``fedblog.jobs.clients``). Outcomes are written in
batches; a crash between sending and recording means a re-send after the lease ends, which
receivers dedupe by activity id. docs/delivery.md says all this for operators.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import event
from sqlalchemy.orm import Session as OrmSession

from fedblog.federation.outbox import DELIVERIES_QUEUED
from fedblog.jobs import queue, settle
from fedblog.jobs.clients import ClientGroups
from fedblog.jobs.delivery import Outcome
from fedblog.jobs.handlers import JobRegistry, default_registry
from fedblog.jobs.lanes import HostLanes, Slots
from fedblog.jobs.work import RunStats as RunStats
from fedblog.jobs.work import Work, default_worker_id
from fedblog.services import Services

log = logging.getLogger("fedblog.worker")
FLUSH_EVERY = 0.25  # seconds
FLUSH_SIZE = 200
ERROR_BACKOFF = 5.0  # seconds to wait after an unexpected error (e.g. the DB is down)
SLOW_AFTER = 0.5  # seconds without an answer before a delivery stops taking a working slot (if the
# transport cannot tell when the request is out; over real sockets that moment is used instead)
SLOW_FACTOR = 4  # the slow room holds up to SLOW_FACTOR × concurrency deliveries
HELD_FACTOR = 8  # rows held at once (running, slow, waiting in a host lane): at most this × concurrency
STOP_GRACE = 5.0  # seconds a stopping worker lets deliveries in flight finish


@dataclass(eq=False)
class _Job:
    item: queue.Claimed
    expires: float  # time.monotonic() until which our lease surely holds
    state: str = "waiting"  # waiting (host lane) | running | done (outcome not yet written)
    posting: bool = False  # the POST has begun: cancelling it now may or may not have reached the inbox
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class DeliveryRunner:
    """Deliver pending rows. ``run_until_idle`` for CLI/tests, ``run_forever`` inside serve/worker."""

    def __init__(self, services: Services, *, worker_id: str | None = None, concurrency: int | None = None,
                 per_host: int | None = None, on_progress: Callable[[RunStats], None] | None = None,
                 stop_grace: float = STOP_GRACE, registry: JobRegistry | None = None) -> None:
        s = services.settings
        self.services = services
        self.worker_id = worker_id or default_worker_id()
        self.concurrency = concurrency or s.delivery_concurrency
        self.per_host = per_host or s.delivery_per_host
        self.lease = float(s.delivery_lease_seconds)
        self.timeout = float(s.delivery_timeout_seconds)
        self.on_progress = on_progress
        self.stop_grace = stop_grace  # seconds a stopping worker lets POSTs in flight finish
        self.stats = RunStats()
        self._clients = ClientGroups(services.new_client)
        self.registry = registry or default_registry()
        self._kinds = self.registry.kinds()  # claimed by this worker
        self._work = Work(services, self.registry, self.timeout)
        self._jobs: dict[int, _Job] = {}  # rows this worker holds: claimed and not yet settled
        self._bodies: dict[int, queue.Outgoing] = {}
        self._body_refs: Counter[int] = Counter()
        self._results: list[tuple[_Job, Outcome]] = []
        self._lanes: HostLanes[_Job] = HostLanes(self.per_host)
        self._slots = Slots(self.concurrency, self.concurrency * SLOW_FACTOR, self._poke)  # rebuilt per run
        self._changed: asyncio.Event | None = None
        self._queued = False  # a commit in this process queued deliveries since the last claim
        self._flush_lock: asyncio.Lock | None = None

    # -- public -----------------------------------------------------------------------------------
    async def run_until_idle(self) -> RunStats:
        """Deliver until nothing is due (rows scheduled for later are left for later)."""
        try:
            await self._run(stop=None, idle_sleep=1.0)
        finally:
            await self.aclose()
        return self.stats

    async def run_forever(self, stop: asyncio.Event, idle_sleep: float = 1.0) -> None:
        try:
            while not stop.is_set():
                try:
                    await self._run(stop=stop, idle_sleep=idle_sleep)
                except Exception:  # a bug or outage must not end deliveries for good: log, wait, retry
                    log.exception("delivery loop failed; restarting in %.0f s", ERROR_BACKOFF)
                    try:
                        await asyncio.wait_for(stop.wait(), timeout=ERROR_BACKOFF)
                    except TimeoutError:
                        pass
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP clients (a later run builds new ones)."""
        await self._clients.aclose()

    # -- the loop ---------------------------------------------------------------------------------
    def _poke(self) -> None:
        if self._changed is not None:
            self._changed.set()

    def _room(self) -> int:
        """How many more rows to claim now: enough to keep every working slot busy, one batch ahead."""
        return min(2 * self.concurrency - self._slots.pipeline,
                   HELD_FACTOR * self.concurrency - len(self._jobs))

    async def _run(self, stop: asyncio.Event | None, idle_sleep: float) -> None:
        self._changed, self._flush_lock = asyncio.Event(), asyncio.Lock()
        self._lanes, self._slots = HostLanes(self.per_host), Slots(self.concurrency, self.concurrency * SLOW_FACTOR,
                                                                   self._poke)
        loop = asyncio.get_running_loop()
        engine = self.services.engine

        def on_commit(session: OrmSession) -> None:  # runs in whichever thread committed
            if session.bind is engine and session.info.pop(DELIVERIES_QUEUED, False):
                try:
                    loop.call_soon_threadsafe(self._on_queued)
                except RuntimeError:  # the loop is closed: nothing to wake
                    pass

        event.listen(OrmSession, "after_commit", on_commit)
        helpers: list[asyncio.Task[object]] = [asyncio.create_task(self._flush_loop()),
                                               asyncio.create_task(self._heartbeat_loop())]
        if stop is not None:
            helpers.append(asyncio.create_task(stop.wait()))
            helpers[-1].add_done_callback(lambda _: self._poke())

        def stopping() -> bool:
            return stop is not None and stop.is_set()

        maybe_more: set[str] = set()  # hosts that may have more due rows than the last claim took
        next_poll = 0.0  # time.monotonic() of the next claim made without a reason
        try:
            while not stopping():
                room, excluded = self._room(), self._lanes.backlogged()
                idle_check = stop is None and not self._active()
                if room > 0 and (self._queued or time.monotonic() >= next_poll or idle_check
                                 or maybe_more - excluded):
                    self._queued = False
                    try:
                        site = self.services.site
                        if site.stale():  # the handle in the signatures' keyId follows the admin's profile
                            await self.services.run_db(site.refresh, self.services.engine)
                        hosts = await self._claim(room, excluded)
                    except Exception:
                        log.exception("could not claim deliveries; trying again in %.0f s", ERROR_BACKOFF)
                        await self._wait(stopping, time.monotonic() + ERROR_BACKOFF)
                        continue
                    n = sum(hosts.values())
                    if idle_check and n == 0 and not excluded:
                        if not await self.services.run_db(settle.has_due, self.services, excluded, self._kinds):
                            break  # run_until_idle: nothing running and nothing more due
                        await asyncio.sleep(0.05)  # another worker's claim is under way: look again
                        continue
                    maybe_more = {h for h, c in hosts.items() if c >= self.per_host} | excluded
                    next_poll = time.monotonic() + (0.0 if n >= room else idle_sleep)
                    continue

                def wake(more: set[str] = maybe_more, poll: float = next_poll) -> bool:
                    return stopping() or (self._room() > 0 and (  # no room: only a poke or the deadline wakes
                        self._queued or (stop is None and not self._active()) or time.monotonic() >= poll
                        or bool(more - self._lanes.backlogged())))

                now = time.monotonic()
                await self._wait(wake, next_poll if room > 0 else now + min(idle_sleep, FLUSH_EVERY))
            if stopping():
                await self._shutdown()
        finally:
            event.remove(OrmSession, "after_commit", on_commit)
            async with self._flush_lock:  # never cancel a flush half way: its outcomes would be lost
                for t in helpers:
                    t.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await self._abandon_all()
            await self._flush()

    def _on_queued(self) -> None:
        self._queued = True
        self._poke()

    async def _wait(self, until: Callable[[], bool], deadline: float) -> None:
        assert self._changed is not None
        while not until():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return

    def _active(self) -> bool:
        return any(job.state != "done" for job in self._jobs.values())

    async def _claim(self, room: int, excluded: set[str]) -> Counter[str]:
        claimed, bodies = await self.services.run_db(
            settle.claim, self.services, self.worker_id, room, self.per_host, excluded, set(self._bodies),
            self._kinds)
        self._bodies.update(bodies)
        for item in claimed:  # from here on these bodies stay until the rows are settled
            if item.activity_id is not None:
                self._body_refs[item.activity_id] += 1
        missing = {item.activity_id for item in claimed if item.activity_id is not None} - self._bodies.keys()
        if missing:  # dropped meanwhile, when the last row of that activity was settled
            self._bodies.update(await self.services.run_db(settle.bodies, self.services, missing))
        expires = time.monotonic() + self.lease * 0.9  # the claim's clock started a little earlier
        for item in claimed:
            job = self._jobs[item.id] = _Job(item, expires)
            if self._lanes.admit(item.host):
                self._start(job)
            else:
                self._lanes.wait(item.host, job)
        return Counter(item.host for item in claimed)

    def _start(self, job: _Job) -> None:
        job.state = "running"
        job.task = asyncio.create_task(self._deliver(job))

    async def _deliver(self, job: _Job) -> None:
        item, slow, timer = job.item, False, None
        loop = asyncio.get_running_loop()
        try:
            await self._slots.acquire()
            try:
                def move() -> None:  # sent, or no answer for SLOW_AFTER: waiting needs no working slot
                    nonlocal slow, timer
                    if slow:
                        return
                    if timer is not None:
                        timer.cancel()
                    if self._slots.to_slow():
                        slow = True
                    else:
                        timer = loop.call_later(SLOW_AFTER, move)

                timer = loop.call_later(SLOW_AFTER, move)
                if time.monotonic() + self.lease * 0.1 > job.expires:
                    return self._forget(job)  # our lease is about to end: leave the row to whoever claims it
                group = self._clients.take()
                try:
                    client = await self._clients.client(group)
                    job.posting = True
                    outgoing = self._bodies.get(item.activity_id) if item.activity_id is not None else None
                    outcome = await self._work.run(item, outgoing, client, on_sent=move)
                finally:
                    self._clients.give_back(group)
            finally:
                if timer is not None:
                    timer.cancel()
                self._slots.release(slow=slow)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not take the worker down
            log.exception("delivery to %s failed unexpectedly", item.inbox)
            outcome = Outcome("retry", error=f"internal error: {type(exc).__name__}: {exc}"[:500])
        finally:
            nxt = self._lanes.finished(item.host)
            if nxt is not None:
                self._start(nxt)
        job.state, job.task = "done", None
        self._results.append((job, outcome))
        if len(self._results) >= FLUSH_SIZE:
            await self._flush()

    def _forget(self, job: _Job) -> None:
        """This worker no longer holds ``job``'s row (settled, released or abandoned)."""
        if self._jobs.pop(job.item.id, None) is None:
            return
        aid = job.item.activity_id
        if aid is None:
            return
        self._body_refs[aid] -= 1
        if self._body_refs[aid] <= 0:
            del self._body_refs[aid]
            self._bodies.pop(aid, None)

    def _abandon(self, job: _Job) -> None:
        """Stop working on ``job`` without an outcome (its lease is ending or was lost)."""
        if job.state == "waiting":
            self._lanes.remove(job.item.host, job)
        elif job.state == "running" and job.task is not None:
            job.task.cancel()  # the task's own finally passes the host's place on
        if job.state != "done":
            self._forget(job)

    async def _abandon_all(self) -> None:
        jobs = [job for job in self._jobs.values() if job.state != "done"]
        for job in jobs:
            self._abandon(job)
        tasks = [job.task for job in jobs if job.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        if jobs:
            await self._release([job.item.id for job in jobs])

    async def _shutdown(self) -> None:
        """Stopping: give back rows not yet posted, let posts in flight finish for a few seconds."""
        unsent = [job for job in self._jobs.values() if job.state == "waiting" or
                  (job.state == "running" and not job.posting)]
        for job in unsent:
            self._abandon(job)
        await self._release([job.item.id for job in unsent])
        deadline = time.monotonic() + self.stop_grace
        await self._wait(lambda: not self._active(), deadline)

    async def _release(self, ids: list[int]) -> None:
        if not ids:
            return
        try:
            await self.services.run_db(settle.release, self.services.engine, self.worker_id, ids)
        except Exception:  # the leases simply expire instead
            log.exception("could not release %d leases", len(ids))

    # -- leases ------------------------------------------------------------------------------------
    async def _heartbeat_loop(self) -> None:
        every = self.lease / 3
        while True:
            await asyncio.sleep(every)
            ids = list(self._jobs)
            if ids:
                started = time.monotonic()
                try:
                    held = await self.services.run_db(settle.renew, self.services, self.worker_id, ids)
                except Exception:
                    log.exception("could not renew %d leases", len(ids))
                else:
                    for i in ids:
                        job = self._jobs.get(i)
                        if job is None:
                            continue
                        if i in held:
                            job.expires = started + self.lease
                        elif job.state != "done":
                            log.warning("lost the lease on delivery %d to %s", i, job.item.inbox)
                            self._abandon(job)
            now = time.monotonic()
            for job in list(self._jobs.values()):
                # Another renewal might come too late for this one: stop before another worker may start.
                if job.state != "done" and job.expires - now < every + self.lease * 0.1:
                    log.warning("abandoning delivery %d to %s: its lease could not be renewed",
                                job.item.id, job.item.inbox)
                    self._abandon(job)

    # -- outcomes -----------------------------------------------------------------------------------
    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY)
            await self._flush()

    async def _flush(self) -> None:
        assert self._flush_lock is not None
        async with self._flush_lock:
            if not self._results:
                return
            batch, self._results = self._results, []
            try:
                counts = await self.services.run_db(
                    settle.write, self.services, self.worker_id, [(job.item, out) for job, out in batch])
            except Exception:  # e.g. the DB is briefly unavailable: keep the outcomes for the next flush
                log.exception("could not record %d delivery outcomes; will retry", len(batch))
                self._results[:0] = batch
                return
            for job, _ in batch:
                self._forget(job)
            for name, n in counts.items():
                setattr(self.stats, name, getattr(self.stats, name) + n)
            if self.on_progress:
                self.on_progress(self.stats)
