"""Where to send a linkback: Webmention endpoint or pingback server discovery, pure.

The caller fetches the target page (GET, through the guarded client, following redirects) and
passes its final URL, its response headers as (name, value) pairs (e.g. httpx
`response.headers.multi_items()`) and its HTML.

- W3C Webmention, 3.1.2 "Sender discovers receiver Webmention endpoint"
  (https://www.w3.org/TR/webmention/#sender-discovers-receiver-webmention-endpoint): an HTTP `Link`
  header with `rel="webmention"` first; else the first `<link>` or `<a>` element with
  `rel="webmention"` in document order. `rel` holds space-separated values and must match
  "webmention" exactly (not "not-webmention"); header names are case-insensitive; an element
  without `href` is skipped; an empty `href` is the page itself; relative URLs are resolved against
  the page URL (after redirects); the query string is kept as is. The conformance cases are
  webmention.rocks discovery tests 1-23 (https://webmention.rocks/, github.com/aaronpk/webmention.rocks).
- Link header syntax: RFC 8288 section 3 (https://www.rfc-editor.org/rfc/rfc8288#section-3).
- Pingback 1.0, "Autodiscovery" (http://www.hixie.ch/specs/pingback/pingback): an `X-Pingback`
  header, else `<link rel="pingback" href="...">`.
Webmention wins when a page offers both. Only http(s) endpoints are returned; whether the address
may be contacted (no loopback or private networks) is the guarded client's decision.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit


@dataclass(frozen=True)
class Endpoint:
    protocol: str  # "webmention" | "pingback"
    url: str


def _resolve_http(page_url: str, reference: str) -> str | None:
    """`reference` resolved against the page, if that gives an absolute http(s) URL."""
    try:
        url = urljoin(page_url, reference)
        parts = urlsplit(url)
        parts.port  # noqa: B018  # raises ValueError for a bad port
    except ValueError:
        return None
    return url if parts.scheme.lower() in ("http", "https") and parts.hostname else None


def parse_link_header(value: str) -> list[tuple[str, frozenset[str]]]:
    """RFC 8288 `Link` values as (URI reference, lower-cased rel values), in order; malformed parts skipped."""
    links: list[tuple[str, frozenset[str]]] = []
    i, n = 0, len(value)
    while i < n:
        start = value.find("<", i)
        if start < 0:
            break
        end = value.find(">", start + 1)
        if end < 0:
            break
        uri, rels, i = value[start + 1:end].strip(), frozenset[str](), end + 1
        while i < n and value[i] != ",":  # parameters up to the next link-value
            if value[i] in "; \t":
                i += 1
                continue
            name_end = i
            while name_end < n and value[name_end] not in "=;,":
                name_end += 1
            name, i = value[i:name_end].strip().lower(), name_end
            param = ""
            if i < n and value[i] == "=":
                i += 1
                while i < n and value[i] in " \t":
                    i += 1
                if i < n and value[i] == '"':
                    chars: list[str] = []
                    i += 1
                    while i < n and value[i] != '"':
                        if value[i] == "\\" and i + 1 < n:
                            i += 1
                        chars.append(value[i])
                        i += 1
                    param, i = "".join(chars), i + 1
                else:
                    token_end = i
                    while token_end < n and value[token_end] not in ";,":
                        token_end += 1
                    param, i = value[i:token_end].strip(), token_end
            if name == "rel" and not rels:  # RFC 8288 3.3: only the first rel counts
                rels = frozenset(param.lower().split())
        links.append((uri, rels))
        i += 1
    return links


class _RelScan(HTMLParser):
    """First `<link>`/`<a>` with rel=webmention and an href, and first `<link rel=pingback href>`."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.webmention: list[str] = []
        self.pingback: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ("link", "a"):
            return
        values = {name: value for name, value in attrs}
        href, rel = values.get("href"), values.get("rel")
        if href is None or not rel:
            return
        rels = {token.lower() for token in rel.split()}
        if "webmention" in rels:
            self.webmention.append(href.strip())
        if "pingback" in rels and tag == "link":
            self.pingback.append(href.strip())


def _scan(html: str | None) -> _RelScan:
    scan = _RelScan()
    if html:
        scan.feed(html)
        scan.close()
    return scan


def _header_values(headers: Iterable[tuple[str, str]], name: str) -> list[str]:
    return [value for key, value in headers if key.lower() == name]


def webmention_endpoint(page_url: str, headers: Iterable[tuple[str, str]], html: str | None) -> str | None:
    """The Webmention endpoint of the page at `page_url` (its URL after redirects), or None."""
    candidates = [uri for value in _header_values(headers, "link")
                  for uri, rels in parse_link_header(value) if "webmention" in rels]
    candidates += _scan(html).webmention
    for candidate in candidates:
        if (url := _resolve_http(page_url, candidate)) is not None:
            return url
    return None


def pingback_server(page_url: str, headers: Iterable[tuple[str, str]], html: str | None) -> str | None:
    """The page's pingback server: the `X-Pingback` header, else `<link rel="pingback">`; or None."""
    candidates = [value.strip() for value in _header_values(headers, "x-pingback")] + _scan(html).pingback
    for candidate in candidates:
        if candidate and (url := _resolve_http(page_url, candidate)) is not None:
            return url
    return None


def discover(page_url: str, headers: Iterable[tuple[str, str]], html: str | None) -> Endpoint | None:
    """Where to notify the target page: its Webmention endpoint if it has one, else its pingback server."""
    pairs = list(headers)
    if (url := webmention_endpoint(page_url, pairs, html)) is not None:
        return Endpoint("webmention", url)
    if (url := pingback_server(page_url, pairs, html)) is not None:
        return Endpoint("pingback", url)
    return None
