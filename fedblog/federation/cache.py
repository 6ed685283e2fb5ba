"""Per-process memory of remote keys and actors, in front of the ``actor`` table.

Safe for processes to disagree on: a stale key fails verification and is refetched (at most once
per key id per 5 minutes, like Mastodon's circuit breaker); a stale display name lives at most
``ACTOR_TTL``. A failed fetch is remembered so a bad sender cannot make us hammer a host: a
permanent failure for 5 minutes, a temporary one (timeout, 5xx, 429) for ``TEMPORARY_TTL``, the
``Retry-After`` the inbox answers with, so the sender's retry finds a fresh attempt.
Concurrent fetches of one URL share one request (``single_flight``).

Every map is bounded (``MAX_ENTRIES`` each, sized so the whole cache stays in the tens of MB: a
parsed RSA key with its PEM is a few kB). When a map is full the entry used least recently goes
first: a flood of made-up keyIds (each leaves a failure and a refetch mark) pushes out other
made-up keyIds, not at once the keys of the servers we hear from every minute.

Time is read from ``now`` (monotonic seconds; tests pass their frozen clock's).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from fedblog.clock import Clock, SystemClock
from fedblog.net.hostgate import HostGate

T = TypeVar("T")
V = TypeVar("V")
REFETCH_INTERVAL = 300.0
NEGATIVE_TTL = 300.0
TEMPORARY_TTL = 60.0  # equals the Retry-After of the inbox's 503 (fedblog/web/inbox.py)
MAX_IN_FLIGHT = 10_000
KEY_TTL = 3600.0
ACTOR_TTL = 600.0
MAX_ENTRIES = 10_000  # per map
HOST_CLEAR_INTERVAL = 60.0


@dataclass(frozen=True)
class ActorSnapshot:
    """What handlers need of a remote actor, detached from any database session."""

    id: int
    ap_id: str
    host: str
    name: str | None
    preferred_username: str | None
    handle: str | None
    url: str | None
    icon_url: str | None
    inbox: str | None
    shared_inbox: str | None


class Failure(NamedTuple):
    """A failed fetch, remembered: why, whether worth retrying soon, and the HTTP status if any
    (a 410 for an actor's key says the actor is gone: its Delete is then accepted, not refused)."""

    reason: str
    temporary: bool
    status: int | None = None


@dataclass(frozen=True)
class ResolvedKey:
    key_id: str
    owner: str
    public_key_pem: str
    public_key: Any = None  # parsed once, reused for every verification


class RemoteCache:
    def __init__(self, now: Callable[[], float] = time.monotonic, max_entries: int = MAX_ENTRIES) -> None:
        self._now = now
        self.max_entries = max_entries
        self._last_refetch: OrderedDict[str, float] = OrderedDict()
        self._failed: OrderedDict[str, tuple[float, Failure]] = OrderedDict()
        self._in_flight: dict[str, asyncio.Future[Any]] = {}
        self._keys: OrderedDict[str, tuple[float, ResolvedKey]] = OrderedDict()
        self._actors: OrderedDict[str, tuple[float, ActorSnapshot]] = OrderedDict()
        self._hosts_cleared: OrderedDict[str, float] = OrderedDict()
        self.hosts = HostGate()  # the inbox's fetches: a few at a time per remote host (net/hostgate.py)

    def sizes(self) -> dict[str, int]:
        """How many entries each map holds (for tests and the hostile-traffic benchmark)."""
        return {"refetch": len(self._last_refetch), "failed": len(self._failed), "keys": len(self._keys),
                "actors": len(self._actors), "hosts": len(self._hosts_cleared), "in_flight": len(self._in_flight)}

    @classmethod
    def for_clock(cls, clock: Clock) -> RemoteCache:
        """Monotonic time in production; a test's FrozenClock moves the cache's time too."""
        if isinstance(clock, SystemClock):
            return cls()
        return cls(lambda: clock.now().timestamp())

    # -- refetch policy -------------------------------------------------------------------------
    def may_refetch(self, key_id: str) -> bool:
        """May a key be refetched after a verification failure (once per key id per 5 minutes)?"""
        return self._now() - self._last_refetch.get(key_id, -1e18) >= REFETCH_INTERVAL

    def note_refetch(self, key_id: str) -> None:
        self._put(self._last_refetch, key_id, self._now())  # bounded: senders choose the keyIds

    def note_failure(self, url: str, reason: str, *, temporary: bool = False, status: int | None = None) -> None:
        self._put(self._failed, url, (self._now(), Failure(reason, temporary, status)))

    def failure(self, url: str) -> Failure | None:
        """The recent failed fetch of ``url`` (reason, temporary, HTTP status if any), else None."""
        hit = self._failed.get(url)
        if hit and self._now() - hit[0] < (TEMPORARY_TTL if hit[1].temporary else NEGATIVE_TTL):
            return hit[1]
        return None

    def fetching(self, key: str) -> bool:
        """Is a ``single_flight`` for ``key`` under way?"""
        return key in self._in_flight

    async def single_flight(self, url: str, fetch: Callable[[], Awaitable[T]]) -> T:
        """``await fetch()``, shared by every concurrent caller for ``url``: one request, one answer.

        The fetch runs as its own task, so a caller that gives up (its client went away) does not
        cancel it for the others. Bounded: past ``MAX_IN_FLIGHT`` distinct URLs, callers fetch alone.
        """
        running = self._in_flight.get(url)
        if running is None:
            task = asyncio.ensure_future(fetch())
            task.add_done_callback(_consume_exception)
            if len(self._in_flight) < MAX_IN_FLIGHT:
                self._in_flight[url] = task
                task.add_done_callback(lambda _: self._in_flight.pop(url, None))
            running = task
        result: T = await asyncio.shield(running)
        return result

    # -- entries --------------------------------------------------------------------------------
    def key(self, key_id: str) -> ResolvedKey | None:
        hit = self._get(self._keys, key_id)
        return hit[1] if hit and self._now() - hit[0] < KEY_TTL else None

    def put_key(self, key: ResolvedKey) -> None:
        self._put(self._keys, key.key_id, (self._now(), key))

    def forget_key(self, key_id: str) -> None:
        self._keys.pop(key_id, None)

    def actor(self, ap_id: str) -> ActorSnapshot | None:
        hit = self._get(self._actors, ap_id)
        return hit[1] if hit and self._now() - hit[0] < ACTOR_TTL else None

    def put_actor(self, actor: ActorSnapshot) -> None:
        self._put(self._actors, actor.ap_id, (self._now(), actor))

    def forget_actor(self, ap_id: str) -> None:
        self._actors.pop(ap_id, None)

    def host_clear_due(self, host: str) -> bool:
        """Clear a host's delivery failures at most once a minute per process when we hear from it."""
        return self._now() - self._hosts_cleared.get(host, -1e9) >= HOST_CLEAR_INTERVAL

    def host_cleared(self, host: str) -> None:
        """Called once the clearing is committed."""
        self._put(self._hosts_cleared, host, self._now())

    @staticmethod
    def _get(d: OrderedDict[str, V], key: str) -> V | None:
        hit = d.get(key)
        if hit is not None:
            d.move_to_end(key)  # recently used: evicted last
        return hit

    def _put(self, d: OrderedDict[str, V], key: str, value: V) -> None:
        d[key] = value
        d.move_to_end(key)
        while len(d) > self.max_entries:
            d.popitem(last=False)


def _consume_exception(task: asyncio.Future[Any]) -> None:
    """Every waiter may have gone: mark the exception as seen so asyncio does not log it."""
    if not task.cancelled():
        task.exception()
