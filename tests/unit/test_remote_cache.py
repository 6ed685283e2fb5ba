"""RemoteCache: one fetch per URL at a time, failures remembered for their own time."""

from __future__ import annotations

import asyncio

import pytest

from fedblog.federation.cache import NEGATIVE_TTL, TEMPORARY_TTL, RemoteCache

pytestmark = pytest.mark.anyio


async def test_single_flight_shares_one_call_and_survives_a_waiter_leaving() -> None:
    cache = RemoteCache()
    release = asyncio.Event()
    calls = 0

    async def fetch() -> str:
        nonlocal calls
        calls += 1
        await release.wait()
        return "key"

    waiters = [asyncio.create_task(cache.single_flight("https://a.example/k", fetch)) for _ in range(5)]
    await asyncio.sleep(0)
    assert cache.fetching("https://a.example/k")
    waiters[0].cancel()  # one sender hangs up: the fetch goes on for the others
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiters[1:]) == ["key"] * 4
    assert calls == 1 and not cache.fetching("https://a.example/k")  # nothing kept once done


async def test_single_flight_gives_every_waiter_the_error() -> None:
    cache = RemoteCache()

    async def fetch() -> str:
        await asyncio.sleep(0)
        raise ValueError("down")

    results = await asyncio.gather(*(cache.single_flight("u", fetch) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in results) and not cache.fetching("u")


def test_failures_are_remembered_for_their_kind() -> None:
    now = [1000.0]
    cache = RemoteCache(lambda: now[0])
    cache.note_failure("https://slow.example/k", "timeout", temporary=True)
    cache.note_failure("https://gone.example/k", "HTTP 410")
    now[0] += TEMPORARY_TTL
    assert cache.failure("https://slow.example/k") is None
    assert cache.failure("https://gone.example/k") == ("HTTP 410", False, None)
    now[0] += NEGATIVE_TTL
    assert cache.failure("https://gone.example/k") is None


def test_refetch_once_per_key_per_five_minutes() -> None:
    now = [0.0]
    cache = RemoteCache(lambda: now[0])
    assert cache.may_refetch("k")
    cache.note_refetch("k")
    now[0] += 299
    assert not cache.may_refetch("k") and cache.may_refetch("other")
    now[0] += 1
    assert cache.may_refetch("k")
