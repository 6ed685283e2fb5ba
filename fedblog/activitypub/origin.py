"""Origins and ids compared the way URLs mean them: one normalising function for every check.

A URL's host is case-insensitive and an internationalised host has two spellings, Unicode and
IDNA ("punycode"); a trailing dot names the same DNS name, and an explicit default port is the
same port (WHATWG URL Standard, "host parsing" and "origin"; RFC 3986 §6.2.2.1 and §6.2.3;
RFC 5891 for IDNA). So ``https://GOOD.example/u`` and ``https://good.example:443/u`` share an
origin and name the same resource, and so do ``https://bücher.example`` and
``https://xn--bcher-kva.example``. Every origin or host comparison in fedblog goes through
``normalise_host`` (via ``origin_of``, ``host_of``, ``same_origin`` or ``same_id``).

Paths, queries and fragments are compared exactly: they are case-sensitive.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import idna

DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int | None]


def normalise_host(host: str) -> str:
    """Lower-case, IDNA (A-label) form, no trailing dot; what a resolver and httpx dial."""
    host = host.strip().lower()
    if host.endswith("."):
        host = host[:-1]
    if host.isascii():
        return host
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except idna.IDNAError:
        try:
            return host.encode("idna").decode("ascii")
        except UnicodeError:
            return host  # not a valid name: it matches nothing but itself


def origin_of(url: str) -> Origin:
    """(scheme, normalised host, port with the scheme's default filled in); ("", "", None) if unparsable."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return ("", "", None)
    scheme = parts.scheme.lower()
    return (scheme, normalise_host(parts.hostname or ""), port if port is not None else DEFAULT_PORTS.get(scheme))


def host_of(url: str) -> str:
    """The URL's normalised host ("" if it has none)."""
    return origin_of(url)[1]


def same_origin(a: str, b: str) -> bool:
    """Same scheme, host and port after normalisation (and both have a host)."""
    oa = origin_of(a)
    return bool(oa[1]) and oa == origin_of(b)


def canonical_url(url: str) -> str:
    """``url`` with its scheme and host normalised and a default port dropped; the rest as is."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    if not parts.hostname:
        return url
    scheme = parts.scheme.lower()
    netloc = normalise_host(parts.hostname)
    if ":" in netloc:  # an IPv6 literal
        netloc = f"[{netloc}]"
    if port is not None and port != DEFAULT_PORTS.get(scheme):
        netloc += f":{port}"
    if parts.username is not None or parts.password is not None:
        return url  # credentials: never an id we accept; compare as written
    out = f"{scheme}://{netloc}{parts.path}"
    if parts.query:
        out += "?" + parts.query
    if parts.fragment:
        out += "#" + parts.fragment
    return out


def same_id(a: str, b: str) -> bool:
    """Do two ids name the same resource (origin normalised, path/query/fragment exact)?"""
    return a == b or canonical_url(a) == canonical_url(b)
