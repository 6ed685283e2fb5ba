"""Fake websites a blog post links to, on the fake network: pages that advertise a Webmention
endpoint (``Link`` header) or a pingback server (``X-Pingback``), or nothing, and the endpoints
themselves, which act as real receivers do.

- The Webmention endpoint reads the form POST as a real one would (W3C Webmention §3.2), answers
  with the next status of its script (202 by default), and verifies the source the way §3.2.2
  asks: it GETs the source and looks for an ``<a href>`` equal to the target. It records
  what it got and what it found.
- The pingback server checks the XML with ``defusedxml`` (no DTD, no entities), reads the call
  with Python's ``xmlrpc.client.loads``, and answers a string, or fault 0x30 "already registered"
  for a (source, target) pair it has seen.

Every request is logged per host, so a test can assert that a host was never contacted.
"""

from __future__ import annotations

import xmlrpc.client
from collections import defaultdict
from dataclasses import dataclass
from html.parser import HTMLParser

import defusedxml.ElementTree as SafeET
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fediverse.network import FakeFediverse


@dataclass(frozen=True)
class Mention:
    """One Webmention or pingback as received."""

    via: str  # webmention | pingback
    source: str
    target: str
    endpoint_query: str  # the query string the endpoint URL was called with
    source_status: int = 0  # what fetching the source answered (webmentions only)
    links_to_target: bool = False  # the source page has <a href="target">


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs += [v.split("#", 1)[0] for k, v in attrs if k == "href" and v]


def _page(title: str) -> str:
    return f"<!doctype html><html><head><title>{title}</title></head><body><p>{title}</p></body></html>"


class Websites:
    """Hosts: ``wm.test`` (Webmention in a Link header), ``pb.test`` (X-Pingback), ``plain.test``
    (neither), and any host added with ``add_webmention_site`` / ``add_plain``."""

    def __init__(self, fediverse: FakeFediverse) -> None:
        self.fediverse = fediverse
        self.requests: dict[str, list[str]] = defaultdict(list)
        self.mentions: list[Mention] = []
        self.statuses: dict[str, list[tuple[int, dict[str, str], str]]] = defaultdict(list)
        self.add_webmention_site("wm.test")
        self.add_pingback_site("pb.test")
        self.add_plain("plain.test")

    def _log(self, host: str, request: Request) -> None:
        self.requests[host].append(f"{request.method} {request.url.path}")

    def script(self, host: str, *answers: tuple[int, dict[str, str], str]) -> None:
        """The next answers of ``host``'s endpoint: (status, headers, body); then 202."""
        self.statuses[host].extend(answers)

    def add_plain(self, host: str, page_headers: dict[str, str] | None = None) -> None:
        async def page(request: Request) -> Response:
            self._log(host, request)
            return Response(_page(f"A page on {host}"), media_type="text/html", headers=page_headers)

        self.fediverse.add(host, Starlette(routes=[Route("/{path:path}", page, methods=["GET", "POST"])]))

    def add_webmention_site(self, host: str, endpoint: str | None = None) -> None:
        endpoint = endpoint or f"https://{host}/webmention?key=k1"

        async def page(request: Request) -> Response:
            self._log(host, request)
            return Response(_page(f"A page on {host}"), media_type="text/html",
                            headers={"Link": f'<{endpoint}>; rel="webmention"'})

        async def receive(request: Request) -> Response:
            self._log(host, request)
            form = await request.form()
            source, target = str(form.get("source", "")), str(form.get("target", ""))
            if request.headers.get("content-type", "").split(";")[0] != "application/x-www-form-urlencoded":
                return Response("form-encoded source and target, please", status_code=400)
            async with self.fediverse.client(source) as web:  # verify, as §3.2.2 asks
                fetched = await web.get(source)
            anchors = _Anchors()
            anchors.feed(fetched.text)
            self.mentions.append(Mention("webmention", source, target, request.url.query, fetched.status_code,
                                         target in anchors.hrefs))
            status, headers, body = self.statuses[host].pop(0) if self.statuses[host] else (202, {}, "")
            return Response(body, status_code=status, headers=headers)

        self.fediverse.add(host, Starlette(routes=[Route("/webmention", receive, methods=["POST"]),
                                                   Route("/{path:path}", page)]))

    def add_pingback_site(self, host: str) -> None:
        async def page(request: Request) -> Response:
            self._log(host, request)
            return Response(_page(f"A page on {host}"), media_type="text/html",
                            headers={"X-Pingback": f"https://{host}/xmlrpc.php"})

        async def xmlrpc_server(request: Request) -> Response:
            self._log(host, request)
            body = await request.body()
            SafeET.fromstring(body, forbid_dtd=True)  # raises on a DTD or entity: never expected here
            params, method = xmlrpc.client.loads(body)
            assert method == "pingback.ping" and len(params) == 2, (method, params)
            source, target = str(params[0]), str(params[1])
            seen = any(m.via == "pingback" and (m.source, m.target) == (source, target) for m in self.mentions)
            self.mentions.append(Mention("pingback", source, target, request.url.query))
            if seen:
                answer = xmlrpc.client.dumps(xmlrpc.client.Fault(0x30, "The pingback has already been registered."),
                                             methodresponse=True)
            else:
                answer = xmlrpc.client.dumps(("Pingback registered. Keep the web talking!",), methodresponse=True)
            return Response(answer, media_type="text/xml")

        self.fediverse.add(host, Starlette(routes=[Route("/xmlrpc.php", xmlrpc_server, methods=["POST"]),
                                                   Route("/{path:path}", page)]))

    def webmentions(self) -> list[Mention]:
        return [m for m in self.mentions if m.via == "webmention"]

    def pingbacks(self) -> list[Mention]:
        return [m for m in self.mentions if m.via == "pingback"]
