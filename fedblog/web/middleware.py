"""ASGI middleware at the edge: who the client is, inbox rate limits, browser-hardening headers.

* ``ProxyHeaders``: ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed only when the TCP
  peer is one of FEDBLOG_TRUSTED_PROXIES (anyone can send the header; only our proxy's copy
  means something). The client is the right-most address not itself a trusted proxy.
* ``InboxRateLimit``: ActivityPub inbox POSTs are counted per client IP (GoToSocial's default of
  300 requests per 5 minutes, https://docs.gotosocial.org/en/latest/api/ratelimiting/) and, once a
  request has been accepted, per signing host (the keyId's host). Over the limit: 429 with
  ``Retry-After`` (RFC 6585 section 4). Counters are sliding windows in a size-capped dict.
* ``SecurityHeaders``: every response gets ``X-Content-Type-Options: nosniff`` and a
  ``Referrer-Policy``; HTML responses get a Content-Security-Policy without inline script.

Pure ASGI (no BaseHTTPMiddleware): nothing is buffered, the cost is a few dict operations.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# no inline script or style anywhere; avatars and post images are remote https URLs. No
# form-action: the "reply from your server" form redirects (303) to the reader's own server.
CSP = "default-src 'self'; img-src 'self' https: data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
HTML_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "strict-origin-when-cross-origin",
}
_ALL = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"strict-origin-when-cross-origin")]
_CSP = (b"content-security-policy", CSP.encode())

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_KEYS = 50_000  # counters kept per limiter; the least recently seen are dropped first
_KEY_ID = re.compile(r'keyid="https?://([^/":?#]{1,253})', re.IGNORECASE)  # draft-cavage and RFC 9421 params


class SlidingWindow:
    """At most ``limit`` hits per ``window`` seconds per key, estimated from two fixed windows
    (the previous one weighted by how much of it still overlaps the sliding window).

    Memory is bounded: at most ``max_keys`` keys, least recently used dropped first.
    """

    def __init__(self, limit: int, window: float, now: Callable[[], float], max_keys: int = MAX_KEYS) -> None:
        self.limit, self.window, self.now, self.max_keys = limit, window, now, max_keys
        self._counts: OrderedDict[str, list[int]] = OrderedDict()  # key -> [window index, previous, current]

    def __len__(self) -> int:
        return len(self._counts)

    def _entry(self, key: str, t: float) -> list[int] | None:
        entry = self._counts.get(key)
        if entry is None:
            return None
        index = int(t // self.window)
        if entry[0] != index:
            entry[1] = entry[2] if entry[0] == index - 1 else 0
            entry[0], entry[2] = index, 0
        return entry

    def retry_after(self, key: str) -> int | None:
        """Seconds until ``key`` may try again, or None if it is under the limit (nothing counted)."""
        t = self.now()
        entry = self._entry(key, t)
        if entry is None:
            return None
        _, previous, current = entry
        into = t % self.window
        if previous * (1 - into / self.window) + current < self.limit:
            return None
        if current >= self.limit or previous == 0:  # wait for this window to become the previous one
            wait = self.window - into + self.window * (1 - (self.limit - 0.5) / max(current, 1))
        else:  # the previous window's weight must fall until there is room
            wait = self.window * (1 - (self.limit - current - 0.5) / previous) - into
        return max(1, math.ceil(wait))

    def add(self, key: str) -> None:
        t = self.now()
        entry = self._entry(key, t)
        if entry is None:
            if len(self._counts) >= self.max_keys:
                self._counts.popitem(last=False)
            self._counts[key] = [int(t // self.window), 0, 1]
            return
        entry[2] += 1
        self._counts.move_to_end(key)

    def hit(self, key: str) -> int | None:
        """Count a hit unless over the limit; returns the ``Retry-After`` seconds when refused."""
        wait = self.retry_after(key)
        if wait is None:
            self.add(key)
        return wait


def _parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # [v6]:port
        value = value[1:value.index("]")]
    elif value.count(":") == 1:  # v4:port
        value = value.split(":", 1)[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


class ProxyHeaders:
    """Rewrite ``scope["client"]`` and ``scope["scheme"]`` from a trusted proxy's headers."""

    def __init__(self, app: ASGIApp, trusted: Iterable[Network]) -> None:
        self.app = app
        self.trusted = tuple(trusted)

    def is_trusted(self, value: str) -> bool:
        ip = _parse_ip(value)
        return ip is not None and any(ip in net for net in self.trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.trusted and scope.get("client") and self.is_trusted(scope["client"][0]):
            forwarded, proto = [], None
            for name, value in scope["headers"]:
                if name == b"x-forwarded-for":
                    forwarded += value.decode("latin-1").split(",")
                elif name == b"x-forwarded-proto":
                    proto = value.decode("latin-1").strip().lower()
            if forwarded:
                client = None
                for hop in reversed(forwarded):  # right-most first: each proxy appends its peer
                    if not self.is_trusted(hop):
                        ip = _parse_ip(hop)
                        client = str(ip) if ip is not None else None
                        break
                if client is not None:
                    scope = {**scope, "client": (client, 0)}
            if proto in ("http", "https"):
                scope = {**scope, "scheme": proto}
        await self.app(scope, receive, send)


def is_inbox(path: str) -> bool:
    return path == "/inbox" or (path.startswith("/users/") and path.endswith("/inbox"))


def signing_host(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The host of the request's keyId, unverified: only used to look up, not to charge, a counter."""
    for name, value in headers:
        if name in (b"signature", b"signature-input"):
            m = _KEY_ID.search(value.decode("latin-1"))
            if m:
                return m.group(1).lower().rstrip(".")
    return None


class InboxRateLimit:
    """429 for inbox POSTs over the per-IP or per-signing-host budget.

    Per IP, every POST counts. Per host, only POSTs the inbox accepted (2xx, so the signature
    verified) are counted: a forged keyId cannot spend another server's budget.
    """

    def __init__(self, app: ASGIApp, *, per_ip: int, per_host: int, window: float, now: Callable[[], float]) -> None:
        self.app = app
        self.ips = SlidingWindow(per_ip, window, now) if per_ip else None
        self.hosts = SlidingWindow(per_host, window, now) if per_host else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not is_inbox(scope["path"]):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        ip = client[0] if client else "unknown"
        host = signing_host(scope["headers"]) if self.hosts is not None else None
        if self.hosts is not None and host is not None and (wait := self.hosts.retry_after(host)) is not None:
            await _too_many(send, wait, f"Too many requests from {host}")
            return
        if self.ips is not None and (wait := self.ips.hit(ip)) is not None:
            await _too_many(send, wait, "Too many requests from your address")
            return
        if self.hosts is None or host is None:
            await self.app(scope, receive, send)
            return
        hosts = self.hosts

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start" and 200 <= message["status"] < 300:
                hosts.add(host)
            await send(message)

        await self.app(scope, receive, counting_send)


async def _too_many(send: Send, wait: int, what: str) -> None:
    body = f"{what}; retry in {wait} s.".encode()
    await send({"type": "http.response.start", "status": 429, "headers": [
        (b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(wait).encode()),
    ]})
    await send({"type": "http.response.body", "body": body})


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[Any] = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers += [h for h in _ALL if h[0] not in names]
                is_html = any(n.lower() == b"content-type" and v.startswith(b"text/html") for n, v in headers)
                if is_html and _CSP[0] not in names:
                    headers.append(_CSP)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
