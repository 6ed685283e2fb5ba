"""FakeFediverse: host -> ASGI app; one httpx transport that routes every request by host.

Our blog, fake Mastodon/GoToSocial/Misskey instances and fake websites all live on it, in
process, with no sockets. Unknown or offline hosts raise ``httpx.ConnectError``.
"""

from __future__ import annotations

from typing import Any

import httpx


class FakeFediverse:
    def __init__(self, clock: Any = None) -> None:
        self.clock = clock  # fakes sign with the same clock as the blog under test
        self.apps: dict[str, Any] = {}
        self.offline: set[str] = set()
        self.log: list[tuple[str, str]] = []

    def add(self, host: str, app: Any) -> None:
        self.apps[host] = app

    def transport(self) -> httpx.AsyncBaseTransport:
        return _Router(self)

    def client(self, base_url: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self.transport(), base_url=base_url)


class _Router(httpx.AsyncBaseTransport):
    def __init__(self, net: FakeFediverse) -> None:
        self.net = net

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        self.net.log.append((request.method, str(request.url)))
        app = self.net.apps.get(host)
        if app is None or host in self.net.offline:
            raise httpx.ConnectError(f"fake network: no route to {host}", request=request)
        return await httpx.ASGITransport(app=app).handle_async_request(request)
