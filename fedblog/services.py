"""The frozen Services container: everything a request or a job needs, built once.

Passed explicitly to ``create_app`` and to workers; there is no global state. Tests build it
with their own clock and HTTP transport (the fake fediverse). Building it opens nothing: the
engine connects on first use, keys load on first use, the HTTP client connects on first request.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar, cast

import httpx
from sqlalchemy.engine import Engine

from fedblog import __version__
from fedblog.blog.site import ProfileCache
from fedblog.clock import Clock, SystemClock
from fedblog.federation.cache import RemoteCache
from fedblog.federation.keys import KeyRing
from fedblog.net.client import build_http_client, make_ssl_context, make_user_agent
from fedblog.net.safety import UrlPolicy
from fedblog.net.signing import HttpSignatureAuth
from fedblog.settings import Settings
from fedblog.store.db import make_engine
from fedblog.store.groupcommit import Coalescer
from fedblog.urls import Urls

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R")
DB_THREADS = 16  # bounded: the engine's pool (store/db.py) always has a connection for each thread
READ_THREADS = 4  # the small read pool: page version reads and the profile check, never behind writes


@dataclass(frozen=True)
class Services:
    settings: Settings
    engine: Engine
    urls: Urls
    clock: Clock
    http: httpx.AsyncClient
    policy: UrlPolicy
    keys: KeyRing
    client_factory: Callable[[int], httpx.AsyncClient]
    remote: RemoteCache  # per-process memory of remote keys and actors
    db_pool: ThreadPoolExecutor  # database work runs here, never on the event loop
    read_pool: ThreadPoolExecutor  # short reads that pages wait on (run_read)
    site: ProfileCache  # the effective profile: admin-saved values over settings (fedblog.blog.site)
    batches: dict[str, Coalescer[Any, Any]] = field(default_factory=dict)  # see coalescer()

    async def run_db(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run blocking database work ``fn(*args, **kwargs)`` in the bounded database thread pool.

        The event loop never waits on the database: a locked SQLite file or a slow PostgreSQL
        query holds one pool thread, not every request of the process.
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.db_pool, functools.partial(fn, *args, **kwargs))

    async def run_read(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``run_db`` for a short read a reader waits on (a post's version, the profile's save
        counter): its own small pool, so it never queues behind a burst of inbox writes."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.read_pool, functools.partial(fn, *args, **kwargs))

    def coalescer(self, name: str, flush: Callable[[list[T]], Sequence[R]]) -> Coalescer[T, R]:
        """This process's group commit (store/groupcommit.py) named ``name``: the items submitted in
        one loop turn go to ``flush(items)`` together, in the database pool. The ``flush`` given
        when the name is first used is the one kept."""
        found = self.batches.get(name)
        if found is None:
            found = self.batches[name] = Coalescer(flush, run=self.run_db)
        return cast("Coalescer[T, R]", found)

    def new_client(self, max_connections: int = 1) -> httpx.AsyncClient:
        """Another guarded client with the same settings (delivery workers keep one each)."""
        return self.client_factory(max_connections)

    def signer(self) -> HttpSignatureAuth:
        """An httpx.Auth that signs as the blog actor (for POSTs and authorized-fetch GETs)."""
        return HttpSignatureAuth(self.urls.key_id(), self.keys.get().rsa, self.clock.now)

    def signer_for(self, actor: str) -> HttpSignatureAuth:
        """An httpx.Auth that signs as the local ``actor`` (``fedblog.urls.BLOG_ACTOR`` or a guest),
        with its key id (the actor id + ``#main-key``). Blocking the first time (a database read,
        and the actor's RSA key is made if it has none yet): from async code, via ``run_db``."""
        return HttpSignatureAuth(self.urls.key_id_of(actor), self.keys.signing_key(actor), self.clock.now)

    async def aclose(self) -> None:
        await self.http.aclose()
        self.db_pool.shutdown(wait=True)
        self.read_pool.shutdown(wait=True)
        self.engine.dispose()


def build_services(
    settings: Settings,
    *,
    clock: Clock | None = None,
    engine: Engine | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Services:
    clock = clock or SystemClock()
    engine = engine or make_engine(settings.database_url)
    tls = make_ssl_context(settings.ssl_cert_file)  # one context for every client of this process

    def client_factory(max_connections: int) -> httpx.AsyncClient:
        return build_http_client(
            user_agent=make_user_agent(__version__, settings.base_url + "/"),
            allow_private_hosts=settings.allow_private_hosts,
            ssl_context=tls,
            transport=transport,
            max_connections=max_connections,
        )

    site = ProfileCache(settings)
    return Services(
        settings=settings,
        engine=engine,
        urls=Urls(settings.base_url, settings.handle, site.handle),
        clock=clock,
        http=client_factory(100),
        policy=UrlPolicy(allow_private_hosts=settings.allow_private_hosts),
        keys=KeyRing(engine, clock.now),
        client_factory=client_factory,
        remote=RemoteCache.for_clock(clock),
        db_pool=ThreadPoolExecutor(max_workers=DB_THREADS, thread_name_prefix="fedblog-db"),
        read_pool=ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="fedblog-read"),
        site=site,
    )
