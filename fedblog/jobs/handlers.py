"""Background jobs other than deliveries: the handler interface and the registry of kinds.

A job is a row of the delivery queue with a ``kind`` other than "deliver" (queued with
``fedblog.federation.outbox.enqueue_job``). It is claimed, leased, renewed by the heartbeat,
scheduled per host and retried exactly like a delivery (``fedblog.jobs.queue``,
``fedblog.jobs.retry``): the worker runs its kind's handler and records the ``Outcome`` it
returns — "sent" (done), "retry" (again later, with backoff; ``retry_after`` honoured up to the
cap) or "give_up" (never again). A handler that raises is retried like a failed delivery.

A worker claims only the kinds its registry has a handler for, so a kind added in a newer
version waits for a worker that knows it, instead of failing in an older one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import httpx

from fedblog.federation import linkback_verify
from fedblog.federation.linkback_jobs import VERIFY_LINKBACK
from fedblog.jobs.delivery import Outcome
from fedblog.jobs.queue import DELIVER, Claimed
from fedblog.services import Services


@dataclass(frozen=True)
class Job:
    """One claimed job, as its handler sees it."""

    id: int
    kind: str
    url: str  # the URL the job contacts (its row's ``inbox``): the queue schedules it by this host
    host: str
    attempts: int  # failed tries so far
    created_at: datetime
    payload: dict[str, Any]

    @classmethod
    def of(cls, item: Claimed) -> Job:
        payload = json.loads(item.payload) if item.payload else {}
        return cls(item.id, item.kind, item.inbox, item.host, item.attempts, item.created_at,
                   payload if isinstance(payload, dict) else {})


@dataclass(frozen=True)
class JobContext:
    services: Services
    client: httpx.AsyncClient  # a guarded client of the worker (SSRF guard, size caps)
    deadline: float  # seconds this run may take in all (the worker cancels it after that)
    on_waiting: Callable[[], None]  # call once the job only waits on a remote server: frees its slot


class JobHandler(Protocol):
    async def __call__(self, ctx: JobContext, job: Job) -> Outcome: ...


class JobRegistry:
    """The job kinds a worker runs, by name. "deliver" is built in (the worker's own hot path)."""

    def __init__(self, handlers: Iterable[tuple[str, JobHandler]] = ()) -> None:
        self._handlers: dict[str, JobHandler] = {}
        for kind, handler in handlers:
            self.register(kind, handler)

    def register(self, kind: str, handler: JobHandler) -> None:
        if kind == DELIVER or kind in self._handlers:
            raise ValueError(f"job kind {kind!r} is already registered")
        if not kind or len(kind) > 40:
            raise ValueError(f"job kind {kind!r}: 1 to 40 characters")
        self._handlers[kind] = handler

    def handler(self, kind: str) -> JobHandler | None:
        return self._handlers.get(kind)

    def kinds(self) -> tuple[str, ...]:
        """Every kind this registry runs, "deliver" first."""
        return (DELIVER, *self._handlers)


async def verify_linkback(ctx: JobContext, job: Job) -> Outcome:
    """``linkback.verify``: check a received pingback's or Webmention's source, then record, update,
    delete or refuse it (``fedblog.federation.linkback_verify``)."""
    verdict = await linkback_verify.verify(ctx.services, ctx.client, job.payload, attempts=job.attempts)
    return Outcome(verdict.kind, error=verdict.error)


def default_registry() -> JobRegistry:
    """The kinds every worker runs (``fedblog.federation.linkback_jobs``)."""
    return JobRegistry([(VERIFY_LINKBACK, verify_linkback)])
