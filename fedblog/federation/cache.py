"""Per-process memory of remote keys and actors, in front of the ``actor`` table.

Safe for processes to disagree on: a stale key fails verification and is refetched (at most once
per 5 minutes, P6); a stale display name lives at most ``ACTOR_TTL``. Failed fetches are
remembered for 5 minutes so a bad sender cannot make us hammer a host.

Every map is bounded (``MAX_ENTRIES`` each, sized so the whole cache stays in the tens of MB: a
parsed RSA key with its PEM is a few kB). When a map is full the entry used least recently goes
first: a flood of made-up keyIds (each leaves a failure and a refetch mark) pushes out other
made-up keyIds, not at once the keys of the servers we hear from every minute.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, TypeVar

V = TypeVar("V")

REFETCH_INTERVAL = 300.0
NEGATIVE_TTL = 300.0
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


@dataclass(frozen=True)
class ResolvedKey:
    key_id: str
    owner: str
    public_key_pem: str
    public_key: Any = None  # parsed once, reused for every verification


class RemoteCache:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._last_refetch: OrderedDict[str, float] = OrderedDict()
        self._failed: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._keys: OrderedDict[str, tuple[float, ResolvedKey]] = OrderedDict()
        self._actors: OrderedDict[str, tuple[float, ActorSnapshot]] = OrderedDict()
        self._hosts_cleared: OrderedDict[str, float] = OrderedDict()

    def sizes(self) -> dict[str, int]:
        """How many entries each map holds (for tests and the hostile-traffic benchmark)."""
        return {"refetch": len(self._last_refetch), "failed": len(self._failed), "keys": len(self._keys),
                "actors": len(self._actors), "hosts": len(self._hosts_cleared)}

    # -- refetch policy -------------------------------------------------------------------------
    def may_refetch(self, key_id: str) -> bool:
        return time.monotonic() - self._last_refetch.get(key_id, -1e9) >= REFETCH_INTERVAL

    def note_refetch(self, key_id: str) -> None:
        self._put(self._last_refetch, key_id, time.monotonic())  # bounded: senders choose the keyIds

    def note_failure(self, url: str, reason: str) -> None:
        self._put(self._failed, url, (time.monotonic(), reason))

    def failure(self, url: str) -> str | None:
        hit = self._failed.get(url)
        if hit and time.monotonic() - hit[0] < NEGATIVE_TTL:
            return hit[1]
        return None

    # -- entries --------------------------------------------------------------------------------
    def key(self, key_id: str) -> ResolvedKey | None:
        hit = self._get(self._keys, key_id)
        return hit[1] if hit and time.monotonic() - hit[0] < KEY_TTL else None

    def put_key(self, key: ResolvedKey) -> None:
        self._put(self._keys, key.key_id, (time.monotonic(), key))

    def forget_key(self, key_id: str) -> None:
        self._keys.pop(key_id, None)

    def actor(self, ap_id: str) -> ActorSnapshot | None:
        hit = self._get(self._actors, ap_id)
        return hit[1] if hit and time.monotonic() - hit[0] < ACTOR_TTL else None

    def put_actor(self, actor: ActorSnapshot) -> None:
        self._put(self._actors, actor.ap_id, (time.monotonic(), actor))

    def forget_actor(self, ap_id: str) -> None:
        self._actors.pop(ap_id, None)

    def host_clear_due(self, host: str) -> bool:
        """Clear a host's delivery failures at most once a minute per process when we hear from it."""
        return time.monotonic() - self._hosts_cleared.get(host, -1e9) >= HOST_CLEAR_INTERVAL

    def host_cleared(self, host: str) -> None:
        """Called once the clearing is committed."""
        self._put(self._hosts_cleared, host, time.monotonic())

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
