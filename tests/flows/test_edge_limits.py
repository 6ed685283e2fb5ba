"""Inbox rate limits (per client IP, per signing host) and trusted-proxy handling, over HTTP.

The limits are lowered for the test (5 POSTs per IP, 4 accepted per host, per 300 s); the clock
is the test's FrozenClock, so "later" is an ``advance``, not a sleep.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlmodel import Session, func, select

from fedblog.app import create_app
from fedblog.clock import FrozenClock
from fedblog.services import Services, build_services
from fedblog.settings import Settings, load_settings
from fedblog.store.tables import InboxItem
from tests.fediverse import signing
from tests.fediverse.instance import FakeInstance, follow
from tests.fediverse.network import FakeFediverse

pytestmark = pytest.mark.anyio
AP = {"Content-Type": "application/activity+json"}
BLOG = "https://blog.test/users/blog"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(rate_limit=5, rate_limit_host=4, rate_window=300)


def stored(services: Services) -> int:
    with Session(services.engine) as s:
        return int(s.exec(select(func.count()).select_from(InboxItem)).one())


def test_defaults_are_gotosocials() -> None:
    s = load_settings({})
    assert (s.rate_limit, s.rate_window, s.header_timeout, s.body_timeout) == (300, 300, 10, 15)
    assert [str(n) for n in s.trusted_proxies] == ["127.0.0.1/32", "::1/128"]
    assert load_settings({"FEDBLOG_TRUSTED_PROXIES": ""}).trusted_proxies == ()


async def test_ip_over_the_limit_gets_429_with_retry_after(
    services: Services, client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    for _ in range(5):  # unsigned: refused, but counted
        r = await client.post("/inbox", content=b'{"id": "https://x.test/1"}', headers=AP)
        assert r.status_code in (400, 401), r.text
    r = await client.post("/users/blog/inbox", content=b"{}", headers=AP)
    assert r.status_code == 429 and "Too many requests" in r.text
    assert 1 <= int(r.headers["retry-after"]) <= 600, r.headers
    assert r.headers["x-content-type-options"] == "nosniff"
    assert (await client.get("/about")).status_code == 200  # pages are not limited
    clock.advance(int(r.headers["retry-after"]))
    r = await client.post("/inbox", content=b"{}", headers=AP)
    assert r.status_code == 400, r.text  # heard again once Retry-After has passed
    assert stored(services) == 0


async def test_forwarded_for_is_believed_only_from_trusted_proxies(
    services: Services, client: httpx.AsyncClient
) -> None:
    # the test client connects from 127.0.0.1, a trusted proxy by default
    def via(chain: str) -> dict[str, str]:
        return {**AP, "X-Forwarded-For": chain}

    for _ in range(5):
        assert (await client.post("/inbox", content=b"{}", headers=via("203.0.113.7"))).status_code == 400
    assert (await client.post("/inbox", content=b"{}", headers=via("203.0.113.7"))).status_code == 429
    # a client cannot hide behind a forged left-most entry: the right-most untrusted one counts
    assert (await client.post("/inbox", content=b"{}", headers=via("198.51.100.1, 203.0.113.7"))).status_code == 429
    assert (await client.post("/inbox", content=b"{}", headers=via("203.0.113.7, 127.0.0.1"))).status_code == 429
    assert (await client.post("/inbox", content=b"{}", headers=via("203.0.113.8"))).status_code == 400
    assert (await client.post("/inbox", content=b"{}", headers=AP)).status_code == 400  # the proxy itself


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(
    settings: Settings, clock: FrozenClock, fediverse: FakeFediverse
) -> None:
    svc = build_services(settings.replace(trusted_proxies=()), clock=clock, transport=fediverse.transport())
    app = create_app(svc)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://blog.test") as c:
            for i in range(5):
                r = await c.post("/inbox", content=b"{}", headers={**AP, "X-Forwarded-For": f"203.0.113.{i}"})
                assert r.status_code == 400
            r = await c.post("/inbox", content=b"{}", headers={**AP, "X-Forwarded-For": "203.0.113.99"})
            assert r.status_code == 429, "X-Forwarded-For from an untrusted peer must not buy a fresh budget"
    finally:
        await svc.aclose()


async def test_per_host_limit_counts_only_verified_requests(
    services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    masto, other = FakeInstance("mastodon.test", fediverse), FakeInstance("other.test", fediverse)
    alice, bob = masto.actor("alice"), other.actor("bob")
    # 10 forged requests claiming other.test's key, each from its own address: 401, and not charged
    for i in range(10):
        act = follow(bob, BLOG)
        body = json.dumps(act).encode()
        headers = signing.sign("POST", "https://blog.test/inbox", body, alice.key, bob.key_id, now=clock.now())
        r = await client.post("/inbox", content=body, headers={**headers, "X-Forwarded-For": f"198.51.100.{i}"})
        assert r.status_code == 401, r.text
    # 4 accepted from mastodon.test (from one address each), the 5th is over the host's budget
    for i in range(4):
        act = follow(alice, BLOG)
        body = json.dumps(act).encode()
        headers = signing.sign("POST", "https://blog.test/inbox", body, alice.key, alice.key_id, now=clock.now())
        r = await client.post("/inbox", content=body, headers={**headers, "X-Forwarded-For": f"192.0.2.{i}"})
        assert r.status_code == 202, r.text
    act = follow(alice, BLOG)
    body = json.dumps(act).encode()
    headers = signing.sign("POST", "https://blog.test/inbox", body, alice.key, alice.key_id, now=clock.now())
    r = await client.post("/inbox", content=body, headers={**headers, "X-Forwarded-For": "192.0.2.200"})
    assert r.status_code == 429 and "mastodon.test" in r.text and int(r.headers["retry-after"]) >= 1
    # other.test was never charged by the forgeries
    r = await other.post(bob, "https://blog.test/inbox", follow(bob, BLOG))
    assert r.status_code == 202, r.text
    assert stored(services) == 5


async def test_limiter_memory_is_bounded() -> None:
    from fedblog.web.middleware import SlidingWindow

    t = [0.0]
    w = SlidingWindow(2, 60, lambda: t[0], max_keys=100)
    for i in range(10_000):
        assert w.hit(f"198.51.{i // 256}.{i % 256}") is None
    assert len(w) == 100
    assert w.hit("x") is None and w.hit("x") is None and w.hit("x") == 60 + 15  # 60 s left, then 1/4 of the next
    t[0] = 75.0
    assert w.hit("x") is None


@pytest.fixture
async def unlimited_client(settings: Settings, clock: FrozenClock, fediverse: FakeFediverse
                           ) -> AsyncIterator[httpx.AsyncClient]:
    unlimited = settings.replace(rate_limit=0, rate_limit_host=0)
    svc = build_services(unlimited, clock=clock, transport=fediverse.transport())
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(svc)),
                                     base_url="https://blog.test") as c:
            yield c
    finally:
        await svc.aclose()


async def test_zero_turns_the_limit_off(unlimited_client: httpx.AsyncClient) -> None:
    for _ in range(20):
        assert (await unlimited_client.post("/inbox", content=b"{}", headers=AP)).status_code == 400


async def test_inbox_in_flight_requests_and_bytes_are_bounded(
    services: Services, client: httpx.AsyncClient, fediverse: FakeFediverse
) -> None:
    """Past the in-flight bound (requests or buffered bytes) the sender gets 503 + Retry-After."""
    import anyio

    from fedblog.web.inbox import InboxGate

    gate = InboxGate(max_requests=1, max_bytes=3000)
    fediverse.apps["blog.test"].state.inbox_gate = gate
    r = await client.post("/inbox", content=b"{" + b" " * 4000 + b"}", headers=AP)
    assert r.status_code == 503 and r.headers["retry-after"] == "10" and "busy" in r.text
    assert (gate.requests, gate.bytes) == (0, 0)  # released

    release = anyio.Event()

    async def slow_body():  # type: ignore[no-untyped-def]
        yield b"{"
        await release.wait()
        yield b"}"

    async with anyio.create_task_group() as tg:
        first: list[httpx.Response] = []

        async def send_slow() -> None:
            first.append(await client.post("/inbox", content=slow_body(), headers=AP))

        tg.start_soon(send_slow)
        while gate.requests == 0:
            await anyio.sleep(0)
        second = await client.post("/users/blog/inbox", content=b"{}", headers=AP)
        assert second.status_code == 503, second.text
        release.set()
    assert first[0].status_code == 400  # the slow one was heard: an empty object is not an activity
    assert (gate.requests, gate.bytes) == (0, 0)
    assert stored(services) == 0
