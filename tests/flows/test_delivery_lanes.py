"""Hanging and refusing inboxes do not hold up a healthy one (a real worker loop, the real database).

100 followers sit on servers that accept the connection and then never answer, 100 more on
servers that refuse connections. While the hanging ones still hang, a reader on a healthy
server follows the blog and must get the ``Accept``, and a new post must reach that reader: a
healthy host is served next to hanging ones, not after them (claims are fair across hosts, a
delivery without an answer leaves its working slot, and a queued activity wakes the worker).

The worker is ``DeliveryRunner.run_forever`` with the default concurrency (50) and per-host cap;
the delivery deadline is the ``FEDBLOG_DELIVERY_TIMEOUT`` setting, long enough that no hanging
POST ends during the test, which compares what arrived against what still hangs. The one latency
requirement is asserted as a ceiling: a healthy host is served within 2 s of its activity being
queued, whatever other hosts do. Every wait is bounded.

A last test sets the deadline to 1 s and checks that a POST that never gets an answer is cut off
there and retried later.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import Session, select

from fedblog.blog.posts import parse_post_source
from fedblog.clock import FrozenClock, utc
from fedblog.federation import outbox
from fedblog.federation.publishing import publish
from fedblog.jobs.queue import claim_due
from fedblog.jobs.runner import DeliveryRunner
from fedblog.services import Services, build_services
from fedblog.settings import Settings
from fedblog.store.db import session_scope
from fedblog.store.tables import Delivery, Follower
from tests.fediverse.instance import FakeInstance, follow
from tests.fediverse.network import FakeFediverse

pytestmark = pytest.mark.anyio
HANGING, REFUSING = 100, 100
SERVED_WITHIN = 2.0  # seconds from an activity being queued to its arrival at a healthy host


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Longer than the test runs: a hanging POST never ends by its deadline here.
    return settings.replace(delivery_timeout_seconds=120)


@dataclass
class HangingInboxes:
    """An ASGI app that reads each POST and never answers; counts what is hanging right now."""

    hanging: dict[str, int] = field(default_factory=dict)  # activity id -> POSTs hanging now
    started: int = 0
    ended: int = 0  # POSTs that stopped hanging (the sender gave up or was cancelled)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        aid = httpx.Response(200, content=body).json().get("id", "")
        self.started += 1
        self.hanging[aid] = self.hanging.get(aid, 0) + 1
        try:
            await asyncio.Event().wait()
        finally:
            self.hanging[aid] -= 1
            self.ended += 1


@dataclass
class World:
    services: Services
    fediverse: FakeFediverse
    hang: HangingInboxes
    healthy: FakeInstance


async def _until(predicate: Any, what: str, timeout: float = 15.0) -> None:
    """Wait (bounded) until ``predicate()``; the bound is a failure, not a measurement."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def _publish(services: Services, slug: str) -> str:
    with session_scope(services.engine) as session:
        result = publish(session, services, parse_post_source(f"---\ntitle: {slug}\nslug: {slug}\n---\nHello.\n"))
        return services.urls.post(result.post.slug)


@pytest.fixture
async def world(services: Services, fediverse: FakeFediverse) -> AsyncIterator[World]:
    hang = HangingInboxes()
    now = services.clock.now()
    with session_scope(services.engine) as session:
        for i in range(HANGING):
            fediverse.add(f"hang{i}.test", hang)
            session.add(Follower(actor_ap_id=f"https://hang{i}.test/users/u", inbox=f"https://hang{i}.test/inbox",
                                 created_at=now))
        for i in range(REFUSING):
            fediverse.offline.add(f"refused{i}.test")
            fediverse.add(f"refused{i}.test", hang)  # never reached: the host refuses connections
            session.add(Follower(actor_ap_id=f"https://refused{i}.test/users/u",
                                 inbox=f"https://refused{i}.test/inbox", created_at=now))
    runner = DeliveryRunner(services, stop_grace=0.0)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run_forever(stop))
    try:
        yield World(services, fediverse, hang, FakeInstance("mastodon.test", fediverse))
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def _refused_attempts(services: Services) -> int:
    with Session(services.engine) as session:
        rows = session.exec(select(Delivery).where(Delivery.host.startswith("refused"))).all()  # type: ignore[attr-defined]
        return sum(1 for d in rows if d.attempts > 0)


async def test_healthy_reader_is_served_while_other_inboxes_hang(world: World) -> None:
    services, hang, healthy = world.services, world.hang, world.healthy
    first = _publish(services, "first")
    await _until(lambda: hang.started == HANGING, f"every hanging inbox to have {first}")
    await _until(lambda: _refused_attempts(services) == REFUSING, "every refusing inbox to have been tried")
    assert hang.ended == 0

    # A reader on a healthy server follows now: the Accept is queued behind 100 hanging POSTs.
    alice = healthy.actor("alice")
    r = await healthy.post(alice, "https://blog.test/users/blog/inbox", follow(alice, "https://blog.test/users/blog"))
    assert r.status_code == 202, r.text
    queued = time.monotonic()  # the 202 means the Follow is stored and the Accept queued
    await _until(lambda: healthy.activities("Accept"), "the Accept at the healthy server")
    waited = time.monotonic() - queued
    assert hang.ended == 0 and sum(hang.hanging.values()) == HANGING, "the Accept came only after a hanging POST ended"
    assert waited <= SERVED_WITHIN, f"the Accept took {waited:.2f} s after the Follow's 202"

    # A new post reaches the healthy reader while every hanging inbox still hangs on the first one
    # (and the second one joins them there: at most the per-host cap each).
    queued = time.monotonic()
    second = _publish(services, "second")
    await _until(lambda: any(a["object"]["id"] == second for a in healthy.activities("Create")),
                 "the new post at the healthy server")
    waited = time.monotonic() - queued
    assert hang.ended == 0
    assert waited <= SERVED_WITHIN, f"the Create took {waited:.2f} s after publishing"
    assert sum(hang.hanging.values()) >= HANGING
    assert len(healthy.activities("Accept")) == 1 and len(healthy.activities("Create")) == 1


async def test_claims_are_fair_across_hosts(services: Services) -> None:
    """A host with one due row is not behind 1,000 older rows of another host; one claim takes at most
    the per-host cap of a host."""
    now = services.clock.now()
    with session_scope(services.engine) as session:
        outbox.enqueue(session, {"id": "https://blog.test/activities/old", "type": "Create"},
                       [f"https://busy.test/inbox/{i}" for i in range(1000)], now=now - timedelta(hours=1))
        outbox.enqueue(session, {"id": "https://blog.test/activities/new", "type": "Accept"},
                       ["https://quiet.test/inbox"], now=now)
    with Session(services.engine) as session:
        claimed = claim_due(session, worker="w", now=now, limit=20, per_host=16, lease=timedelta(seconds=30))
    hosts = [c.host for c in claimed]
    assert "quiet.test" in hosts
    assert hosts.count("busy.test") == 16


async def test_a_post_without_an_answer_is_cut_off_at_the_delivery_timeout(
    settings: Settings, clock: FrozenClock, fediverse: FakeFediverse
) -> None:
    """FEDBLOG_DELIVERY_TIMEOUT bounds the whole exchange: an inbox that takes the request and never
    answers costs one attempt of about that long, recorded as a timeout and retried later."""
    services = build_services(settings.replace(delivery_timeout_seconds=1), clock=clock,
                              transport=fediverse.transport())
    hang = HangingInboxes()
    fediverse.add("hang.test", hang)
    with session_scope(services.engine) as session:
        session.add(Follower(actor_ap_id="https://hang.test/users/u", inbox="https://hang.test/inbox",
                             created_at=clock.now()))
    _publish(services, "cut-off")

    def rows() -> list[Delivery]:
        with Session(services.engine) as session:
            return list(session.exec(select(Delivery).where(Delivery.host == "hang.test")).all())

    runner = DeliveryRunner(services, stop_grace=0.0)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run_forever(stop))
    try:
        await _until(lambda: hang.started == 1, "the POST to the hanging inbox")
        started = time.monotonic()
        await _until(lambda: hang.ended == 1, "the hanging POST to be cut off", timeout=10.0)
        cut_after = time.monotonic() - started
        await _until(lambda: rows()[0].attempts == 1 and rows()[0].lease_until is None, "the attempt to be recorded")
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await services.aclose()
    assert cut_after <= 1.0 + 1.5, f"the POST hung {cut_after:.2f} s with a 1 s deadline"
    (row,) = rows()
    assert row.state == "pending" and row.attempts == 1
    assert row.last_error is not None and "timed out" in row.last_error and "1 s" in row.last_error, row.last_error
    assert utc(row.next_attempt_at) > clock.now()  # retried later, not at once
    assert hang.started == 1  # and not again within this test
