"""The remote world of linkbacks: fake websites on the fake network, and Python's own XML-RPC client
(``xmlrpc.client.ServerProxy``, the same pingback.ping call WordPress makes) talking to our app.

``Website`` serves pages set by the test (status, body, media type) and logs every request.
``XmlRpcTransport`` is an ``xmlrpc.client.Transport`` whose connection sends the bytes
``xmlrpc.client`` builds (headers, Content-Length, gzip when ``encode_threshold`` says so) over the
app's ASGI interface instead of a socket, and hands the answer back to ``xmlrpc.client``'s own
parser. Call the proxy from a worker thread (``anyio.to_thread.run_sync``): it blocks.
"""

from __future__ import annotations

import functools
import xmlrpc.client
from dataclasses import dataclass
from typing import Any

import anyio.from_thread
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fediverse.network import FakeFediverse


@dataclass
class Page:
    body: str
    status: int = 200
    media_type: str = "text/html; charset=utf-8"


class Website:
    """A website at ``https://{host}``: ``pages[path]`` is what it answers; anything else is 404."""

    def __init__(self, fediverse: FakeFediverse, host: str) -> None:
        self.host = host
        self.pages: dict[str, Page] = {}
        self.requests: list[str] = []
        fediverse.add(host, Starlette(routes=[Route("/{path:path}", self._serve, methods=["GET", "HEAD"])]))

    def url(self, path: str) -> str:
        return f"https://{self.host}{path}"

    def put(self, path: str, body: str, status: int = 200, media_type: str = "text/html; charset=utf-8") -> str:
        self.pages[path] = Page(body, status, media_type)
        return self.url(path)

    async def _serve(self, request: Request) -> Response:
        self.requests.append(request.url.path)
        page = self.pages.get(request.url.path)
        if page is None:
            return Response("not found", status_code=404, media_type="text/plain")
        return Response(page.body, status_code=page.status, media_type=page.media_type)


def h_entry(*, target: str, kind: str = "reply", name: str = "", content: str = "", author: str = "",
            author_url: str = "", photo: str = "", title: str = "A page") -> str:
    """An IndieWeb post (microformats2 h-entry) that replies to, likes, reposts or mentions ``target``."""
    prop = {"reply": "u-in-reply-to", "like": "u-like-of", "repost": "u-repost-of"}.get(kind)
    link = (f'<a class="{prop}" href="{target}">the post</a>' if prop
            else f'<p>As <a href="{target}">this post</a> says, blogs federate now.</p>')
    card = ('<div class="p-author h-card">' + (f'<img class="u-photo" src="{photo}" alt="">' if photo else "")
            + (f'<a class="p-name u-url" href="{author_url}">{author}</a>' if author_url
               else f'<span class="p-name">{author}</span>') + "</div>") if author else ""
    name_html = f'<h1 class="p-name">{name}</h1>' if name else ""
    if prop:  # the response's link sits outside its content, as IndieWeb pages put it
        return (f"<!doctype html><html><head><title>{title}</title></head><body><article class=\"h-entry\">"
                f'{card}{name_html}{link}<div class="e-content">{content}</div></article></body></html>')
    return (f"<!doctype html><html><head><title>{title}</title></head><body><article class=\"h-entry\">"
            f'{card}{name_html}<div class="e-content">{content}{link}</div></article></body></html>')


class _Answer:
    """What ``xmlrpc.client.Transport`` reads from ``http.client.HTTPResponse``."""

    def __init__(self, response: httpx.Response) -> None:
        self.status = response.status_code
        self.reason = response.reason_phrase
        self.headers = response.headers
        self._body = memoryview(response.content)
        self._at = 0

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)

    def getheaders(self) -> list[tuple[str, str]]:
        return list(self.headers.items())

    def read(self, amt: int | None = None) -> bytes:
        end = len(self._body) if amt is None else min(len(self._body), self._at + amt)
        chunk = bytes(self._body[self._at:end])
        self._at = end
        return chunk


class _Connection:
    """The part of ``http.client.HTTPConnection`` that ``xmlrpc.client.Transport`` uses."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.method = ""
        self.path = ""
        self.headers: list[tuple[str, str]] = []
        self.response: httpx.Response | None = None
        self.sent: list[tuple[list[tuple[str, str]], bytes]] = []

    def set_debuglevel(self, level: int) -> None:
        pass

    def putrequest(self, method: str, url: str, skip_host: bool = False, skip_accept_encoding: bool = False) -> None:
        self.method, self.path, self.headers = method, url, []

    def putheader(self, header: str, *values: Any) -> None:
        self.headers.append((header, ", ".join(str(v) for v in values)))

    def endheaders(self, message_body: bytes | None = None) -> None:
        body = message_body or b""
        self.sent.append((list(self.headers), body))
        send = functools.partial(self.client.request, self.method, self.path, content=body, headers=self.headers)
        self.response = anyio.from_thread.run(send)

    def getresponse(self) -> _Answer:
        assert self.response is not None
        return _Answer(self.response)

    def close(self) -> None:
        pass


class XmlRpcTransport(xmlrpc.client.Transport):
    """``xmlrpc.client``'s HTTP transport, over ``client`` (the fake network) instead of a socket."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        super().__init__()
        self.client = client
        self.connections: list[_Connection] = []

    def make_connection(self, host: Any) -> Any:
        connection = _Connection(self.client)
        self.connections.append(connection)
        return connection


def server_proxy(client: httpx.AsyncClient, url: str = "https://blog.test/xmlrpc") -> xmlrpc.client.ServerProxy:
    return xmlrpc.client.ServerProxy(url, transport=XmlRpcTransport(client))
