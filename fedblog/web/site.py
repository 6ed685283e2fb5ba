"""Keep this process's effective profile fresh (fedblog.blog.site): before a request is handled,
if the profile was last checked more than ``TTL`` seconds ago, read the save counter (in the
database pool, never on the event loop) and reload the profile if another process saved it."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from fedblog.services import Services


class SiteProfileRefresh:
    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.services.site.stale():
            await self.services.run_db(self.services.site.refresh, self.services.engine)
        await self.app(scope, receive, send)
