"""Keep this process's effective profile fresh (fedblog.blog.site): before a request is handled,
if the profile was last checked more than ``TTL`` seconds ago, read the save counter (in the
read pool, never on the event loop) and reload the profile if another process saved it.

If the database cannot be reached, the request goes on with the profile already in memory (the
page itself will say what is wrong, and static files still answer)."""

from __future__ import annotations

import logging

from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Receive, Scope, Send

from fedblog.services import Services

log = logging.getLogger("fedblog")


class SiteProfileRefresh:
    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        site = self.services.site
        if scope["type"] == "http" and site.stale():
            try:
                await self.services.run_read(site.refresh, self.services.engine)
            except SQLAlchemyError as exc:
                log.warning("could not check the saved profile; serving the one in memory: %s", exc)
        await self.app(scope, receive, send)
