"""The outbound-request guard: which URLs and which IP addresses fedblog may talk to.

docs/security.md §4 (no SSRF). Every server-side request goes through one
``httpx.AsyncClient`` (``fedblog.net.client.build_http_client``), and that client enforces two
things from this module:

* ``UrlPolicy.check_url`` runs on every request URL (and in ``fetch.py`` on every redirect hop):
  http/https only, no userinfo, a host, no odd numeric host spellings, no non-global IP literal.
* ``GuardedNetworkBackend`` is the httpcore network backend. Its ``connect_tcp`` resolves the
  host itself, refuses when *any* resolved address is non-global, then connects to the vetted IP.
  The check runs per TCP connection, at connect time, on the address actually dialled, so a DNS
  rebinding (public answer for the check, loopback for the connect) cannot slip through. This is
  GoToSocial's dialer-``Control`` design; Fedify CVE-2024-39687 shows the resolve-then-fetch gap.

A host listed in ``allow_private_hosts`` (exact hostname, case-insensitive, trailing dot ignored)
may resolve to private addresses. Tests and local development set it through the
``FEDBLOG_ALLOW_PRIVATE_HOSTS`` setting; there is no other bypass.

Exceptions::

    httpx.RequestError
    └── BlockedURL              the policy refused a URL (scheme, userinfo, host, IP literal)
        └── BlockedAddress      (also an httpx.ConnectError) a connect-time address refusal
    httpcore.ConnectError
    └── AddressRefused          raised inside httpcore by the backend; the transport turns it
                                into BlockedAddress
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import anyio
import httpcore
import httpx

from fedblog.activitypub.origin import normalise_host

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""``async (host, port) -> [ip, ...]``. Injected in tests; the default is ``system_resolver``."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOW_SETTING = "FEDBLOG_ALLOW_PRIVATE_HOSTS"

# Ordered: the first match names the reason. Python 3.11's ``is_global`` misses several of these
# (multicast, 192.0.0.0/24, 192.88.99.0/24 are "global" to it), so the table is explicit.
_V4_RANGES: tuple[tuple[ipaddress.IPv4Network, str], ...] = tuple(
    (ipaddress.IPv4Network(net), reason)
    for net, reason in (
        ("0.0.0.0/8", "unspecified"),
        ("127.0.0.0/8", "loopback"),
        ("10.0.0.0/8", "private"),
        ("172.16.0.0/12", "private"),
        ("192.168.0.0/16", "private"),
        ("169.254.0.0/16", "link-local"),
        ("100.64.0.0/10", "carrier-grade NAT"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("192.0.2.0/24", "documentation"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("192.88.99.0/24", "6to4 relay anycast"),
        ("198.18.0.0/15", "benchmarking"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),  # includes 255.255.255.255 (broadcast)
    )
)

# Python 3.11 calls fec0::1, ff02::1, ::7f00:1 and 64:ff9b:1::1 "global"; hence the table, and
# the final rule that only 2000::/3 (global unicast) is allowed at all.
_V6_RANGES: tuple[tuple[ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.IPv6Network(net), reason)
    for net, reason in (
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("::/96", "IPv4-compatible (deprecated)"),
        ("64:ff9b:1::/48", "local-use NAT64"),
        ("100::/64", "discard-only"),
        ("2001:db8::/32", "documentation"),
        ("3fff::/20", "documentation"),
        ("2001::/23", "IETF protocol assignments"),
        ("fc00::/7", "unique-local"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"),
        ("ff00::/8", "multicast"),
    )
)
_V6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")


def non_global_reason(ip: str | IPAddress) -> str | None:
    """Why ``ip`` must not be contacted (e.g. ``"loopback"``), or None if it is globally routable.

    Addresses that embed an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, NAT64
    ``64:ff9b::/96``, 6to4 ``2002::/16``) are judged by the embedded address, because that is
    where the packets end up. Teredo (``2001::/32``) is always refused: it is never a server's
    real address and its client address is obfuscated.
    """
    if not isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address):
        try:
            ip = ipaddress.ip_address(ip)
        except ValueError:
            return "not an IP address"
    if isinstance(ip, ipaddress.IPv4Address):
        return _v4_reason(ip)
    return _v6_reason(ip)


def is_global_ip(ip: str | IPAddress) -> bool:
    """True only for a globally routable unicast address (see ``non_global_reason``)."""
    return non_global_reason(ip) is None


def _v4_reason(ip: ipaddress.IPv4Address) -> str | None:
    for net, reason in _V4_RANGES:
        if ip in net:
            return reason
    return None if ip.is_global else "special-purpose"


def _v6_reason(ip: ipaddress.IPv6Address) -> str | None:
    embedded: ipaddress.IPv4Address | None = None
    form = ""
    if ip.ipv4_mapped is not None:
        embedded, form = ip.ipv4_mapped, "IPv4-mapped"
    elif ip in _NAT64_WELL_KNOWN:
        embedded, form = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), "NAT64"
    elif ip.sixtofour is not None:
        embedded, form = ip.sixtofour, "6to4"
    elif ip.teredo is not None:
        return "Teredo tunnel"
    if embedded is not None:
        inner = _v4_reason(embedded)
        return None if inner is None else f"{form} {embedded}, {inner}"
    for net, reason in _V6_RANGES:
        if ip in net:
            return reason
    if ip not in _V6_GLOBAL_UNICAST:
        return "reserved (outside 2000::/3)"
    return None if ip.is_global else "special-purpose"


class BlockedURL(httpx.RequestError):
    """The outbound policy refused a URL. Permanent: retrying the same URL will not help.

    ``reason`` is the short cause ("scheme 'file' is not allowed", "loopback"); ``url`` is what
    was refused.
    """

    def __init__(
        self,
        reason: str,
        url: str = "",
        *,
        message: str | None = None,
        request: httpx.Request | None = None,
    ) -> None:
        self.reason = reason
        self.url = url
        super().__init__(
            message or f"refused outbound request to {url!r}: {reason}", request=request
        )


class BlockedAddress(httpx.ConnectError, BlockedURL):
    """A host resolved to (or was) a non-global address; raised at connect time."""

    def __init__(
        self,
        *,
        host: str,
        ip: str,
        reason: str,
        url: str = "",
        request: httpx.Request | None = None,
    ) -> None:
        self.host = host
        self.ip = ip
        BlockedURL.__init__(
            self, reason, url, message=refusal_message(host, ip, reason), request=request
        )


class AddressRefused(httpcore.ConnectError):
    """httpcore-level refusal raised by ``GuardedNetworkBackend.connect_tcp``."""

    def __init__(self, *, host: str, ip: str, reason: str) -> None:
        self.host, self.ip, self.reason = host, ip, reason
        super().__init__(refusal_message(host, ip, reason))


def refusal_message(host: str, ip: str, reason: str) -> str:
    """The one wording for an address refusal, including how to allow it deliberately."""
    return (
        f"refused to connect to {ip} ({reason}) for host {host}: "
        f"set {ALLOW_SETTING}={host} to allow it in tests"
    )


def _normalise_host(host: str) -> str:
    """Lower-case, IDNA-encoded, without a trailing dot: the form httpcore hands the backend."""
    return normalise_host(host)


@dataclass(frozen=True)
class UrlPolicy:
    """What an outbound URL may look like.

    Parameters:
        allow_private_hosts: exact hostnames (or IP literals) that may resolve to or be
            non-global addresses; compared case-insensitively, trailing dot ignored.
            Meant for tests and local development only.
        allowed_schemes: URL schemes that may be requested.
    """

    allow_private_hosts: frozenset[str] = field(default_factory=frozenset)
    allowed_schemes: tuple[str, ...] = ("http", "https")

    def __post_init__(self) -> None:
        normalised = frozenset(_normalise_host(h) for h in self.allow_private_hosts if h)
        object.__setattr__(self, "allow_private_hosts", normalised)

    def allows_private(self, host: str) -> bool:
        """May ``host`` (as written in the URL) reach non-global addresses?"""
        return _normalise_host(host) in self.allow_private_hosts

    def check_url(self, url: str | httpx.URL) -> None:
        """Raise ``BlockedURL`` unless ``url`` is an acceptable outbound target.

        Only the URL's shape is checked here; DNS answers are checked at connect time.
        """
        text = str(url)
        try:
            parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise BlockedURL(f"not a valid URL ({exc})", text) from None
        if parsed.scheme not in self.allowed_schemes:
            allowed = ", ".join(self.allowed_schemes)
            raise BlockedURL(f"scheme {parsed.scheme!r} is not allowed (only {allowed})", text)
        if parsed.userinfo:
            raise BlockedURL("credentials in the URL (user:password@) are not allowed", text)
        host = parsed.raw_host.decode("ascii")  # IDNA-encoded, exactly what httpcore dials
        if not host:
            raise BlockedURL("the URL has no host", text)
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = None
        if ip is None:
            if not _HOSTNAME_CHARS.issuperset(host.lower()):
                raise BlockedURL(f"host {host!r} is not a valid hostname", text)
            if _looks_numeric(host):
                # "127.1", "2130706433", "0x7f000001": getaddrinfo turns these into IPs.
                raise BlockedURL(f"host {host!r} is a non-canonical numeric address", text)
            return
        reason = non_global_reason(ip)
        if reason is not None and not self.allows_private(host):
            raise BlockedURL(reason, text, message=refusal_message(host, str(ip), reason))


_HOSTNAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-_")


def _looks_numeric(host: str) -> bool:
    """A top-level label is never all-digits or hex, so such a host is an IP in disguise."""
    last = _normalise_host(host).rsplit(".", 1)[-1]
    return last.isdigit() or (last.startswith("0x") and last != "0x")


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve ``host`` with the event loop's ``getaddrinfo`` (no cache), unique IPs in order."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """An httpcore backend that vets every address before it dials it.

    ``connect_tcp(host, ...)`` resolves ``host`` with the injected resolver (IP literals are
    used as they are), raises ``AddressRefused`` if any answer is non-global and the host is not
    allow-listed, then connects to the vetted IPs in order through ``inner`` (default
    ``httpcore.AnyIOBackend``). TLS is unaffected: httpcore calls ``start_tls`` on the returned
    stream with ``server_hostname`` taken from the request URL, not from the IP we dialled.

    Parameters:
        policy: supplies ``allow_private_hosts``.
        resolver: ``async (host, port) -> [ip, ...]``; default ``system_resolver``.
        inner: the backend that actually opens sockets (tests fake "the internet" here).
    """

    def __init__(
        self,
        policy: UrlPolicy,
        *,
        resolver: Resolver | None = None,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._policy = policy
        self._resolver: Resolver = resolver or system_resolver
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        deadline = None if timeout is None else anyio.current_time() + timeout
        addresses = await self.vetted_addresses(host, port, timeout)
        last_error: Exception | None = None
        for ip in addresses:
            remaining = None if deadline is None else deadline - anyio.current_time()
            if remaining is not None and remaining <= 0:
                break
            try:
                return await self._inner.connect_tcp(
                    ip,
                    port,
                    timeout=remaining,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc  # try the next vetted address
        if isinstance(last_error, httpcore.ConnectError | httpcore.ConnectTimeout):
            raise last_error
        raise httpcore.ConnectTimeout(f"timed out connecting to {host}:{port}")

    async def vetted_addresses(self, host: str, port: int, timeout: float | None) -> list[str]:
        """Resolve ``host`` and return its addresses, or raise if any may not be contacted."""
        try:
            ipaddress.ip_address(host)
            addresses = [host]
        except ValueError:
            addresses = await self._resolve(host, port, timeout)
        if self._policy.allows_private(host):
            return addresses
        for ip in addresses:
            reason = non_global_reason(ip)
            if reason is not None:
                raise AddressRefused(host=host, ip=ip, reason=reason)
        return addresses

    async def _resolve(self, host: str, port: int, timeout: float | None) -> list[str]:
        try:
            with anyio.fail_after(timeout):
                addresses = await self._resolver(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"timed out resolving {host}") from None
        except OSError as exc:
            raise httpcore.ConnectError(f"could not resolve {host}: {exc}") from exc
        if not addresses:
            raise httpcore.ConnectError(f"could not resolve {host}: no addresses")
        return addresses

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Refused: outbound requests never use local sockets."""
        raise httpcore.ConnectError(f"refused to connect to unix socket {path}")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
