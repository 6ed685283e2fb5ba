"""The one shared outbound ``httpx.AsyncClient`` and the transports that guard it.

``build_http_client`` is called once per process (from the Services container) and every
server-side request goes through the client it returns: fetches, WebFinger, NodeInfo,
Webmention/pingback sources and delivery POSTs (docs/security.md §4, No SSRF).

Transport stack in production::

    SafeTransport                 UrlPolicy.check_url on every request (scheme, userinfo, host)
    └── GuardedHTTPTransport      httpx.AsyncHTTPTransport whose httpcore pool dials through
        └── GuardedNetworkBackend resolve, refuse non-global addresses, connect to the vetted IP

When a ``transport`` is injected (tests use an in-process fake fediverse), it replaces the
lower two layers: ``SafeTransport`` still checks every URL, but no socket is opened, so there is
no address to check and the connect-time IP guard does not apply. Nothing else can bypass it:
there is no DEBUG flag, and proxy variables such as ``HTTP_PROXY`` are ignored (httpx mounts
environment proxies only when no transport is passed, and we always pass one; ``trust_env=False``
says so explicitly), since a proxy would route requests around the guarded pool.
"""

from __future__ import annotations

import ssl
from types import TracebackType

import certifi
import httpcore
import httpx

from fedblog.net.safety import (
    AddressRefused,
    BlockedAddress,
    GuardedNetworkBackend,
    Resolver,
    UrlPolicy,
)

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 10.0
KEEPALIVE_EXPIRY = 5.0
# Delivery POSTs (background work): connect 5 s, a wall-clock deadline of 30 s for the whole
# exchange (connect, send, wait, read), and at most 1 MiB of response read. Mastodon's ``Request``
# uses 5 s connect / 10 s read and write timeouts; GoToSocial 10 s per request; the total deadline
# is what stops an inbox that accepts the connection and then trickles or never answers.
DELIVERY_CONNECT_TIMEOUT = 5.0
DELIVERY_DEADLINE = 30.0
DELIVERY_RESPONSE_CAP = 1 << 20


def delivery_timeout(deadline: float = DELIVERY_DEADLINE) -> httpx.Timeout:
    """Per-operation timeouts of one delivery POST; the whole-exchange ``deadline`` is the caller's
    (``asyncio.timeout``), since httpx's timeouts are per read/write, not per request."""
    return httpx.Timeout(deadline, connect=min(DELIVERY_CONNECT_TIMEOUT, deadline))


def make_user_agent(version: str, site_url: str) -> str:
    """``fedblog/0.1.0 (+https://blog.example/)``: who we are and where to complain."""
    return f"fedblog/{version} (+{site_url})"


def make_ssl_context(ssl_cert_file: str | None = None) -> ssl.SSLContext:
    """Verify certificates against ``ssl_cert_file`` if given, else against certifi's bundle.

    Settings pass ``SSL_CERT_FILE`` through here; nothing in this package reads the environment.
    """
    return ssl.create_default_context(cafile=ssl_cert_file or certifi.where())


def _limits(max_connections: int) -> httpx.Limits:
    return httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=min(20, max_connections),
        keepalive_expiry=KEEPALIVE_EXPIRY,
    )


class GuardedHTTPTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` whose connection pool dials through ``GuardedNetworkBackend``.

    httpx does not expose ``network_backend``, so the pool built by the parent constructor
    (never used, holds no sockets) is replaced by one with the guarded backend. Everything else,
    notably httpcore→httpx exception mapping, is the parent's code. A connect-time refusal
    surfaces as ``BlockedAddress`` (an ``httpx.ConnectError``) instead of a bare ConnectError.

    Parameters:
        policy: the ``UrlPolicy`` whose ``allow_private_hosts`` the backend honours.
        resolver: ``async (host, port) -> [ip, ...]``; default: the system resolver.
        ssl_context: certificate verification; default ``make_ssl_context()``.
        limits: pool size and keep-alive.
        inner_backend: the backend that opens sockets (tests may fake "the internet" here).
    """

    def __init__(
        self,
        policy: UrlPolicy,
        *,
        resolver: Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
        limits: httpx.Limits | None = None,
        inner_backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        ssl_context = ssl_context or make_ssl_context()
        limits = limits or _limits(100)
        super().__init__(verify=ssl_context, trust_env=False, http2=False, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=GuardedNetworkBackend(policy, resolver=resolver, inner=inner_backend),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except httpx.ConnectError as exc:
            refused = exc.__cause__
            if isinstance(refused, AddressRefused):
                raise BlockedAddress(
                    host=refused.host,
                    ip=refused.ip,
                    reason=refused.reason,
                    url=str(request.url),
                    request=request,
                ) from refused
            raise


class SafeTransport(httpx.AsyncBaseTransport):
    """Apply ``UrlPolicy.check_url`` to every request, then hand it to ``inner``.

    Raises ``BlockedURL`` before anything is sent. Wraps ``GuardedHTTPTransport`` in production
    and an injected (socket-free) transport in tests.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport, policy: UrlPolicy) -> None:
        self._inner = inner
        self.policy = policy

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.policy.check_url(request.url)
        return await self._inner.handle_async_request(request)

    async def __aenter__(self) -> SafeTransport:
        await self._inner.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self._inner.__aexit__(exc_type, exc_value, traceback)

    async def aclose(self) -> None:
        await self._inner.aclose()


def build_http_client(
    *,
    user_agent: str,
    allow_private_hosts: frozenset[str],
    ssl_cert_file: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    resolver: Resolver | None = None,
    max_connections: int = 100,
    connect_timeout: float = CONNECT_TIMEOUT,
    read_timeout: float = READ_TIMEOUT,
) -> httpx.AsyncClient:
    """Build the shared outbound client. Close it with ``await client.aclose()`` at shutdown.

    Parameters:
        user_agent: see ``make_user_agent``.
        allow_private_hosts: hostnames allowed to resolve to non-global addresses (tests only).
        ssl_cert_file: CA bundle to trust instead of certifi's (settings' ``SSL_CERT_FILE``).
        ssl_context: a ready context to share between clients (building one costs ~20 ms of CPU);
            overrides ``ssl_cert_file``.
        transport: replaces the socket layer (tests); URL checks still apply, IP checks cannot.
        resolver: DNS resolver for the guarded backend; ignored when ``transport`` is given.
        max_connections: pool size across all hosts.
        connect_timeout / read_timeout: per-operation timeouts (DNS counts towards connect).
            Whole-request wall-clock deadlines are enforced by ``fedblog.net.fetch``.

    Redirects are not followed here (``follow_redirects=False``): ``fetch.py`` follows them one
    hop at a time so every hop is re-checked.
    """
    policy = UrlPolicy(allow_private_hosts=allow_private_hosts)
    if transport is None:
        transport = GuardedHTTPTransport(
            policy,
            resolver=resolver,
            ssl_context=ssl_context or make_ssl_context(ssl_cert_file),
            limits=_limits(max_connections),
        )
    return httpx.AsyncClient(
        transport=SafeTransport(transport, policy),
        headers={"User-Agent": user_agent},
        timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
        follow_redirects=False,
        trust_env=False,
    )
