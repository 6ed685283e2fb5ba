"""What one claimed row does once it has a working slot: a delivery is signed by its activity's
own local actor and POSTed; another job runs its kind's handler (``fedblog.jobs.handlers``).

Signers are built once per actor and kept (a bounded number): the blog's is a memory read after
start-up, another actor's keys are read through the database pool the first time (and its RSA
key made, if it has none yet), never on the event loop.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from fedblog.federation.keys import UnknownActorKeys
from fedblog.jobs.delivery import Outcome, deliver_one
from fedblog.jobs.handlers import Job, JobContext, JobRegistry
from fedblog.jobs.queue import DELIVER, Claimed, Outgoing
from fedblog.services import Services

log = logging.getLogger("fedblog.worker")
SIGNERS_KEPT = 256  # signers of distinct actors kept by one worker


@dataclass
class RunStats:
    sent: int = 0  # deliveries sent and other jobs done
    retried: int = 0
    gave_up: int = 0
    gone: int = 0

    @property
    def settled(self) -> int:
        return self.sent + self.retried + self.gave_up + self.gone


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Work:
    def __init__(self, services: Services, registry: JobRegistry, timeout: float) -> None:
        self.services = services
        self.registry = registry
        self.timeout = timeout
        self._signers: dict[str, httpx.Auth] = {}

    async def run(self, item: Claimed, outgoing: Outgoing | None, client: httpx.AsyncClient,
                  on_sent: Callable[[], None]) -> Outcome:
        if item.kind == DELIVER:
            if outgoing is None:  # the activity was deleted meanwhile
                return Outcome("give_up", error="the activity no longer exists")
            auth = self._signers.get(outgoing.actor)
            if auth is None:
                try:
                    auth = await self._signer(outgoing.actor)
                except UnknownActorKeys:
                    return Outcome("give_up", error=f"no keys for the local actor {outgoing.actor!r}")
            return await deliver_one(self.services, client, auth, item.inbox, outgoing.body,
                                     deadline=self.timeout, on_sent=on_sent)
        handler = self.registry.handler(item.kind)
        if handler is None:  # not claimed by kind unless registered: only if the registry changed
            return Outcome("retry", error=f"no handler for job kind {item.kind!r} in this worker")
        ctx = JobContext(self.services, client, self.timeout, on_sent)
        return await handler(ctx, Job.of(item))

    async def _signer(self, actor: str) -> httpx.Auth:
        auth = await self.services.run_db(self.services.signer_for, actor)
        if len(self._signers) >= SIGNERS_KEPT:
            self._signers.clear()  # rebuilt on demand, from the key ring's cache
        self._signers[actor] = auth
        return auth
