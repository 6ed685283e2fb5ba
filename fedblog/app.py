"""``create_app(services)``: the Starlette application.

Routes, error pages and templates are wired here. Nothing is read at import time; the lifespan
only starts and stops background work and closes resources.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from fedblog.federation.handlers import build_handlers
from fedblog.federation.inbox import Inbox
from fedblog.jobs import scheduler
from fedblog.jobs.runner import DeliveryRunner
from fedblog.services import Services
from fedblog.store.db import optimize
from fedblog.web import comments
from fedblog.web.fastpage import CachedPostPages
from fedblog.web.inbox import InboxGate, InboxTurnstile
from fedblog.web.linkbacks import build_limits
from fedblog.web.middleware import InboxRateLimit, ProxyHeaders, SecurityHeaders
from fedblog.web.pagecache import PageCache, VersionReader
from fedblog.web.routes import build_routes
from fedblog.web.site import SiteProfileRefresh
from fedblog.web.templating import Renderer

log = logging.getLogger("fedblog")
OPTIMIZE_EVERY_S = 6 * 3600  # SQLite's advice for long-lived connections: PRAGMA optimize now and then

_TITLES = {
    400: "Bad request",
    404: "Not found",
    405: "Method not allowed",
    410: "Gone",
    413: "Too large",
    429: "Too many requests",
}


def _wants_html(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "json" not in accept or "text/html" in accept


async def _keep_statistics(services: Services, stop: asyncio.Event) -> None:
    """Refresh the query planner's statistics periodically (https://www.sqlite.org/pragma.html#pragma_optimize)."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), OPTIMIZE_EVERY_S)
        if not stop.is_set():
            await services.run_db(optimize, services.engine)


def create_app(services: Services) -> Starlette:
    renderer = Renderer(services)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if not _wants_html(request):
            return PlainTextResponse(str(exc.detail), status_code=exc.status_code, headers=exc.headers)
        return renderer.page(
            "error.html",
            {"status": exc.status_code, "title": _TITLES.get(exc.status_code, "Error"), "detail": exc.detail},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    async def server_error(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return renderer.page(
            "error.html",
            {"status": 500, "title": "Something went wrong",
             "detail": "The server hit an unexpected error. It has been logged; please try again in a moment."},
            status_code=500,
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        """Start the delivery worker (unless FEDBLOG_WORKER=off); close resources at the end."""
        stop = asyncio.Event()
        tasks = []
        if services.settings.run_worker:  # deliveries, and scheduled posts (docs/editor.md)
            tasks = [asyncio.create_task(DeliveryRunner(services).run_forever(stop)),
                     asyncio.create_task(scheduler.run_forever(services, stop))]
        statistics = asyncio.create_task(_keep_statistics(services, stop))
        try:  # the keys once, in the database pool: signing later never reads the database
            await services.keys.load(services.run_db)
        except SQLAlchemyError:
            log.warning("could not load the blog's keys at start-up; they load on first use", exc_info=True)
        try:
            yield
        finally:
            stop.set()
            statistics.cancel()
            await asyncio.gather(statistics, return_exceptions=True)
            await asyncio.gather(*tasks, return_exceptions=True)
            await services.http.aclose()

    app = Starlette(
        routes=build_routes(),
        exception_handlers={HTTPException: http_error, 500: server_error},
        lifespan=lifespan,
    )
    settings = services.settings  # the edge: outermost last (the 500 page sets its own headers)
    app.add_middleware(InboxRateLimit, per_ip=settings.rate_limit, per_host=settings.rate_limit_host,
                       window=settings.rate_window, now=lambda: services.clock.now().timestamp())
    app.add_middleware(SiteProfileRefresh, services=services)  # the admin's profile, fresh within its TTL
    app.add_middleware(ProxyHeaders, trusted=settings.trusted_proxies)
    app.add_middleware(SecurityHeaders)
    page_cache = PageCache(services.settings, services.settings.page_cache_mb * 1_048_576, site=services.site)
    post_versions = VersionReader(services, by="slug")  # page URLs
    # outermost: a GET of a post page whose current version is cached is answered before the stack
    app.add_middleware(CachedPostPages, services=services, cache=page_cache, versions=post_versions,
                       fill=comments.token_filler(services))
    app.add_middleware(InboxTurnstile)  # outermost: a burst of inbox POSTs starts a few per loop turn
    app.state.services = services
    app.state.renderer = renderer
    app.state.inbox = Inbox(services, build_handlers())
    app.state.linkback_limits = build_limits(services)  # pingback and Webmention POSTs
    app.state.inbox_gate = InboxGate()  # bounded in-flight inbox POSTs and body bytes
    app.state.page_cache = page_cache
    app.state.post_versions = post_versions
    app.state.post_ids = VersionReader(services, by="ap_path")  # Article ids
    return app
