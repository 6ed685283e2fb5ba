"""Background jobs other than deliveries, on the delivery queue: claim, lease, heartbeat, retry.

The test registers its own handlers for the two linkback kinds (the real verifier is tested by
tests/flows/test_pingback.py and test_webmention.py): the verification handler fetches the source
from a fake website through the worker's guarded client and asks for a retry while the site
answers 503. Everything else is the real worker loop and the
real database: the claim by kind, the lease (another worker cannot take the row while the
handler runs, even past the first lease, because the heartbeat renews it), the retry policy's
backoff, and success on the next attempt.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from sqlmodel import Session, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fedblog.clock import FrozenClock, utc
from fedblog.federation.linkback_jobs import SEND_LINKBACK, VERIFY_LINKBACK, SendLinkback, VerifyLinkback
from fedblog.jobs.delivery import Outcome, outcome_of
from fedblog.jobs.handlers import Job, JobContext, JobRegistry, default_registry
from fedblog.jobs.queue import claim_due
from fedblog.jobs.runner import DeliveryRunner
from fedblog.services import Services
from fedblog.settings import Settings
from fedblog.store.db import session_scope
from fedblog.store.tables import Delivery
from tests.fediverse.network import FakeFediverse

pytestmark = pytest.mark.anyio
SOURCE = "https://site.test/a-post-linking-to-us"
TARGET = "https://blog.test/posts/hello"
LEASE = 3  # seconds: the heartbeat renews every second


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(delivery_lease_seconds=LEASE)


class Site:
    """A website that answers 503 (with ``Retry-After``) ``failures`` times, then 200."""

    def __init__(self, fediverse: FakeFediverse, failures: int) -> None:
        self.failures = failures
        self.requests: list[str] = []
        fediverse.add("site.test", Starlette(routes=[Route("/{path:path}", self._page, methods=["GET", "POST"])]))

    async def _page(self, request: Request) -> Response:
        self.requests.append(f"{request.method} {request.url.path}")
        if len(self.requests) <= self.failures:
            return Response(status_code=503, headers={"Retry-After": "120"})
        return Response(f'<a href="{TARGET}">hello</a>', media_type="text/html")


def _row(services: Services, row_id: int) -> Delivery:
    with Session(services.engine) as session:
        row = session.get(Delivery, row_id)
        assert row is not None
        return row


def _steal(services: Services) -> list[int]:
    """Another worker tries to claim everything due now."""
    with Session(services.engine) as session:
        got = claim_due(session, worker="other", now=services.clock.now(), limit=10,
                        lease=timedelta(seconds=LEASE))
    return [c.id for c in got]


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10.0) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not await check():
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"waited {timeout:g} s for {what}")


@pytest.fixture
def queued(services: Services) -> int:
    with session_scope(services.engine) as session:
        row = VerifyLinkback(SOURCE, TARGET, "webmention").queue(session, now=services.clock.now())
        assert row.id is not None
        return row.id


async def test_a_job_is_claimed_leased_renewed_retried_with_backoff_then_done(
        services: Services, fediverse: FakeFediverse, clock: FrozenClock, queued: int) -> None:
    site = Site(fediverse, failures=1)
    calls: list[Job] = []
    runner: DeliveryRunner

    async def verify(ctx: JobContext, job: Job) -> Outcome:
        calls.append(job)
        if len(calls) == 1:  # the lease and its heartbeat, seen from inside the first run
            row = await services.run_db(_row, services, job.id)
            assert row.leased_by == runner.worker_id and row.lease_until is not None
            first_end = utc(row.lease_until)
            assert await services.run_db(_steal, services) == []  # leased: no other worker takes it
            clock.advance(LEASE - 1)

            async def renewed() -> bool:
                lease = (await services.run_db(_row, services, job.id)).lease_until
                return lease is not None and utc(lease) > first_end

            await _until(renewed, "the heartbeat to renew the job's lease")
            clock.advance(2)  # past the first lease: still held, thanks to the renewal
            assert await services.run_db(_steal, services) == []
        check = VerifyLinkback.from_payload(job.payload)
        response = await ctx.client.get(check.source)
        return outcome_of(response, ctx.services.clock.now())

    # a worker without a handler for the kind leaves the row alone
    assert (await DeliveryRunner(services, concurrency=4, registry=JobRegistry()).run_until_idle()).settled == 0
    assert _row(services, queued).leased_by is None and _row(services, queued).attempts == 0

    registry = JobRegistry([(VERIFY_LINKBACK, verify)])  # the real verifier is tested in test_pingback/webmention
    runner = DeliveryRunner(services, concurrency=4, registry=registry)
    stats = await runner.run_until_idle()

    assert stats.retried == 1 and site.requests == ["GET /a-post-linking-to-us"]
    row = _row(services, queued)
    assert row.state == "pending" and row.attempts == 1 and row.last_status == 503 and row.leased_by is None
    wait = utc(row.next_attempt_at) - clock.now()
    assert timedelta(seconds=120) <= wait <= timedelta(seconds=121)  # Retry-After: 120 beats the first step

    assert (await DeliveryRunner(services, concurrency=4, registry=registry).run_until_idle()).settled == 0
    clock.advance(wait.total_seconds())
    runner = DeliveryRunner(services, concurrency=4, registry=registry)
    stats = await runner.run_until_idle()

    assert stats.sent == 1 and len(site.requests) == 2
    row = _row(services, queued)
    assert row.state == "sent" and row.attempts == 2 and row.finished_at is not None
    assert [(c.kind, c.url, c.host, c.attempts) for c in calls] == [
        (VERIFY_LINKBACK, SOURCE, "site.test", 0), (VERIFY_LINKBACK, SOURCE, "site.test", 1)]
    assert VerifyLinkback.from_payload(calls[0].payload) == VerifyLinkback(SOURCE, TARGET, "webmention")


async def test_a_failing_handler_is_retried_with_the_retry_policy(
        services: Services, fediverse: FakeFediverse, clock: FrozenClock) -> None:
    Site(fediverse, failures=0)
    with session_scope(services.engine) as session:
        row_id = SendLinkback(TARGET, SOURCE).queue(session, now=clock.now()).id
    seen: list[SendLinkback] = []

    async def send(ctx: JobContext, job: Job) -> Outcome:
        seen.append(SendLinkback.from_payload(job.payload))
        raise RuntimeError("a bug in a handler")

    registry = JobRegistry([(SEND_LINKBACK, send)])
    stats = await DeliveryRunner(services, concurrency=4, registry=registry).run_until_idle()

    assert stats.retried == 1 and seen == [SendLinkback(TARGET, SOURCE)]
    assert row_id is not None
    row = _row(services, row_id)
    assert row.state == "pending" and row.attempts == 1 and row.host == "site.test"
    assert "internal error: RuntimeError: a bug in a handler" in (row.last_error or "")
    wait = utc(row.next_attempt_at) - clock.now()
    assert timedelta(seconds=30) <= wait <= timedelta(seconds=60)  # the first backoff step, with jitter


async def test_payloads_and_kinds_are_checked(services: Services) -> None:
    with pytest.raises(ValueError, match="source must be an http"):
        VerifyLinkback.from_payload({"source": "javascript:alert(1)", "target": TARGET, "via": "webmention"})
    with pytest.raises(ValueError, match="via must be one of"):
        VerifyLinkback.from_payload({"source": SOURCE, "target": TARGET, "via": "carrier-pigeon"})
    with session_scope(services.engine) as session, pytest.raises(ValueError):
        VerifyLinkback("ftp://x.test/", TARGET, "pingback").queue(session, now=services.clock.now())
    registry = JobRegistry()
    for kind in ("deliver", ""):
        with pytest.raises(ValueError):
            registry.register(kind, lambda ctx, job: None)  # type: ignore[arg-type]
    with Session(services.engine) as session:
        assert session.exec(select(Delivery)).all() == []
    assert json.dumps(registry.kinds()) == '["deliver"]'
    assert VERIFY_LINKBACK in default_registry().kinds()  # what `fedblog serve` and `fedblog worker` run
