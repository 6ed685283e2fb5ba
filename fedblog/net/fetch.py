"""Bounded GETs over the shared client: ActivityPub/JSON documents and text pages.

Every fetch (docs/security.md §4 and §5: no SSRF, bounded work):

* checks each URL, including every redirect hop, with ``UrlPolicy`` *before* requesting it;
  connect-time address checks happen underneath, in the client's transport;
* follows at most ``max_redirects`` redirects, never loops, never downgrades https → http,
  and with ``same_origin=True`` never leaves the URL's origin (other schemes fail the policy);
* streams the body and stops as soon as it passes ``max_bytes`` (or when Content-Length already
  says it will);
* runs under one wall-clock ``deadline`` covering DNS, connects, redirects and the body;
* for JSON: requires a media type named in ``accept``, a JSON object, nesting ≤ ``max_depth``.

Failures raise one of (all carry ``reason``, the ``url`` that failed and ``temporary``: True for
a failure worth retrying soon, a timeout, an unreachable server, a 5xx other than 501, a 408 or 429)::

    FetchError
    ├── Blocked           the policy refused the URL, a redirect hop or the resolved address
    ├── Unreachable       DNS failure, connection refused/reset, TLS or protocol error
    ├── Timeout           no complete response within the deadline (or a read timed out)
    ├── TooManyRedirects  more than max_redirects hops, or a redirect loop
    ├── BadStatus         a final status outside 2xx (``.status``; e.g. 410 for a gone page)
    ├── BadContentType    the response's media type is not one we asked for
    ├── TooLarge          the body is larger than max_bytes
    ├── NotJSON           the body is not a JSON object
    └── TooDeep           the JSON nests deeper than max_depth
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any

import anyio
import httpx

from fedblog.activitypub import origin
from fedblog.net.hostgate import HostGate
from fedblog.net.safety import BlockedURL, UrlPolicy

AP_ACCEPT = (
    "application/activity+json, "
    'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'
)
MAX_BYTES = 1_048_576
MAX_JSON_DEPTH = 32
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class FetchError(Exception):
    """A fetch failed; ``reason`` says why and ``url`` is the URL (or redirect hop) that failed."""

    temporary = False

    def __init__(self, reason: str, url: str) -> None:
        self.reason = reason
        self.url = url
        super().__init__(f"{reason} (fetching {url})")


class Blocked(FetchError):
    """The outbound policy refused the URL, a redirect hop or the address it resolved to."""


class Unreachable(FetchError):
    """The server could not be reached or spoke broken HTTP; worth retrying later."""

    temporary = True


class Timeout(FetchError):
    """No complete response within the deadline."""

    temporary = True


class Queued(Timeout):
    """The deadline passed while the request waited for a slot to its host (``gate``): it never
    left, so it says nothing about the host."""


class TooManyRedirects(FetchError):
    """The redirect chain was longer than allowed, or looped."""


class BadStatus(FetchError):
    """The final response was not 2xx; ``status`` is its code."""

    def __init__(self, status: int, url: str, reason: str | None = None) -> None:
        self.status = status
        self.temporary = status in (408, 429) or (status >= 500 and status != 501)
        super().__init__(reason or f"HTTP {status}", url)


class BadContentType(FetchError):
    """The response's media type is not one of those requested."""


class TooLarge(FetchError):
    """The response body is larger than the cap."""


class NotJSON(FetchError):
    """The response body is not a JSON object."""


class TooDeep(FetchError):
    """The JSON document nests deeper than the cap."""


@dataclass(frozen=True)
class FetchedDocument:
    """A fetched JSON object and where it finally came from (after redirects)."""

    url_final: str
    status: int
    content_type: str
    data: dict[str, Any]


@dataclass(frozen=True)
class FetchedPage:
    """A fetched text page (HTML for Webmention/pingback verification)."""

    url_final: str
    status: int
    content_type: str
    text: str
    headers: tuple[tuple[str, str], ...] = ()  # the final response's, in order (Link, X-Pingback...)


@dataclass(frozen=True)
class _Body:
    url: str
    status: int
    content_type: str
    charset: str | None
    content: bytes
    headers: tuple[tuple[str, str], ...] = ()


async def fetch_json(
    client: httpx.AsyncClient,
    url: str,
    *,
    policy: UrlPolicy,
    accept: str = AP_ACCEPT,
    max_bytes: int = MAX_BYTES,
    deadline: float = 10.0,
    max_redirects: int = 3,
    auth: httpx.Auth | None = None,
    max_depth: int = MAX_JSON_DEPTH,
    same_origin: bool = False,
    gate: HostGate | None = None,
) -> FetchedDocument:
    """GET a JSON object (ActivityStreams by default) within the caps; raise ``FetchError``.

    The response's media type must be one of those listed in ``accept`` (parameters such as
    ``profile`` are not compared), unless ``accept`` contains ``*/*``. ``auth`` is a per-request
    ``httpx.Auth`` (e.g. signing for authorized fetch); None means the client's default. Use
    ``deadline=10`` on a request path and ``30`` in background jobs. ``same_origin=True``
    refuses a redirect to another origin (keys and ActivityPub documents must come from theirs).
    ``gate``: at most so many requests to ``url``'s host at once (net/hostgate.py); the wait counts
    against ``deadline``.
    """
    body = await _fetch_within_deadline(
        client,
        url,
        policy=policy,
        accept=accept,
        allowed_types=_media_types(accept),
        max_bytes=max_bytes,
        deadline=deadline,
        max_redirects=max_redirects,
        auth=auth,
        same_origin=same_origin,
        gate=gate,
    )
    return FetchedDocument(
        url_final=body.url,
        status=body.status,
        content_type=body.content_type,
        data=parse_json_object(body.content, body.url, max_depth=max_depth),
    )


async def fetch_text(
    client: httpx.AsyncClient,
    url: str,
    *,
    policy: UrlPolicy,
    max_bytes: int = MAX_BYTES,
    deadline: float = 10.0,
    max_redirects: int = 5,
    accept: str = "text/html",
    auth: httpx.Auth | None = None,
) -> FetchedPage:
    """GET a page as text within the caps; raise ``FetchError``.

    Any media type is accepted (Webmention sources may be HTML, text or JSON); the caller
    decides what to do with ``content_type``. The body is decoded with the declared charset,
    else UTF-8, replacing undecodable bytes. A 410 arrives as ``BadStatus`` with ``status=410``.
    """
    body = await _fetch_within_deadline(
        client,
        url,
        policy=policy,
        accept=accept,
        allowed_types=None,
        max_bytes=max_bytes,
        deadline=deadline,
        max_redirects=max_redirects,
        auth=auth,
    )
    return FetchedPage(
        url_final=body.url,
        status=body.status,
        content_type=body.content_type,
        text=_decode_text(body.content, body.charset),
        headers=body.headers,
    )


def parse_json_object(
    content: bytes, url: str, *, max_depth: int = MAX_JSON_DEPTH
) -> dict[str, Any]:
    """Parse ``content`` as a JSON object no deeper than ``max_depth``; raise NotJSON/TooDeep."""
    try:
        data = json.loads(content, parse_constant=_reject_constant)
    except RecursionError:
        raise TooDeep(f"JSON nests deeper than {max_depth} levels", url) from None
    except ValueError as exc:  # includes JSONDecodeError and UnicodeDecodeError
        raise NotJSON(f"body is not valid JSON ({exc})", url) from None
    if not isinstance(data, dict):
        raise NotJSON(f"expected a JSON object, got {type(data).__name__}", url)
    if not json_depth_ok(data, max_depth):
        raise TooDeep(f"JSON nests deeper than {max_depth} levels", url)
    return data


def json_depth_ok(obj: object, limit: int) -> bool:
    """True if ``obj`` nests at most ``limit`` containers deep (``{}`` is 1, a scalar 0).

    Iterative, so a hostile document cannot exhaust the Python stack here.
    """
    stack: list[tuple[object, int]] = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return True


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


async def _fetch_within_deadline(
    client: httpx.AsyncClient,
    url: str,
    *,
    policy: UrlPolicy,
    accept: str,
    allowed_types: frozenset[str] | None,
    max_bytes: int,
    deadline: float,
    max_redirects: int,
    auth: httpx.Auth | None,
    same_origin: bool = False,
    gate: HostGate | None = None,
) -> _Body:
    sent = False
    try:
        with anyio.fail_after(deadline):
            async with gate.slot(origin.host_of(url)) if gate is not None else contextlib.nullcontext():
                sent = True
                return await _follow_redirects(
                    client, url, policy=policy, accept=accept, allowed_types=allowed_types, max_bytes=max_bytes,
                    max_redirects=max_redirects, auth=auth, same_origin=same_origin,
                )
    except TimeoutError:
        if not sent and gate is not None:
            raise Queued(f"{gate.per_host} requests to its host were under way for the whole "
                         f"{deadline:g} s deadline", url) from None
        raise Timeout(f"no complete response within the {deadline:g} s deadline", url) from None


async def _follow_redirects(
    client: httpx.AsyncClient,
    url: str,
    *,
    policy: UrlPolicy,
    accept: str,
    allowed_types: frozenset[str] | None,
    max_bytes: int,
    max_redirects: int,
    auth: httpx.Auth | None,
    same_origin: bool = False,
) -> _Body:
    current = url
    seen = {url}
    for _hop in range(max_redirects + 1):
        try:
            policy.check_url(current)
        except BlockedURL as exc:
            raise Blocked(str(exc), current) from exc
        if same_origin and not origin.same_origin(current, url):
            raise Blocked(f"redirected to another origin ({current[:200]}), refused", current)
        outcome = await _get_once(
            client,
            current,
            accept=accept,
            allowed_types=allowed_types,
            max_bytes=max_bytes,
            auth=auth,
        )
        if isinstance(outcome, _Body):
            return outcome
        current = str(outcome)
        if current in seen:
            raise TooManyRedirects(f"redirect loop back to {current}", url)
        seen.add(current)
    raise TooManyRedirects(f"more than {max_redirects} redirects (last: {current})", url)


async def _get_once(
    client: httpx.AsyncClient,
    url: str,
    *,
    accept: str,
    allowed_types: frozenset[str] | None,
    max_bytes: int,
    auth: httpx.Auth | None,
) -> _Body | httpx.URL:
    """One request: the redirect target, or the capped body of a 2xx response."""
    try:
        async with client.stream(
            "GET",
            url,
            headers={"Accept": accept},
            auth=httpx.USE_CLIENT_DEFAULT if auth is None else auth,
        ) as response:
            if response.status_code in REDIRECT_STATUSES:
                return _redirect_target(response, url)
            if not 200 <= response.status_code < 300:
                raise BadStatus(response.status_code, url)
            content_type = response.headers.get("content-type", "")
            if allowed_types is not None and _media_type(content_type) not in allowed_types:
                wanted = ", ".join(sorted(allowed_types))
                raise BadContentType(
                    f"served as {content_type or 'no Content-Type'!r}, expected one of {wanted}",
                    url,
                )
            content = await _read_capped(response, max_bytes, url)
            return _Body(
                str(response.url),
                response.status_code,
                content_type,
                response.charset_encoding,
                content,
                tuple(response.headers.multi_items()),
            )
    except BlockedURL as exc:  # includes BlockedAddress from the connect-time guard
        raise Blocked(str(exc), url) from exc
    except httpx.InvalidURL as exc:  # httpx parses a redirect's Location even when not following it
        raise Blocked(f"redirect to a Location that is not a URL we follow ({exc})", url) from None
    except httpx.RemoteProtocolError as exc:
        if str(exc).startswith("Invalid URL in location header"):  # httpx's wording (_client.py): permanent
            raise Blocked(f"redirect to an invalid URL ({exc})", url) from None
        raise Unreachable(f"{type(exc).__name__}: {exc}", url) from exc
    except httpx.TimeoutException as exc:
        raise Timeout(f"timed out: {type(exc).__name__} {exc}".strip(), url) from exc
    except httpx.HTTPError as exc:
        raise Unreachable(f"{type(exc).__name__}: {exc}", url) from exc


def _redirect_target(response: httpx.Response, url: str) -> httpx.URL:
    location = response.headers.get("location")
    if not location:
        raise BadStatus(response.status_code, url, "redirect without a Location header")
    try:
        target = response.url.join(location).copy_with(fragment=None)
    except (httpx.InvalidURL, ValueError, TypeError):
        raise Blocked(f"redirect to an invalid URL {location[:200]!r}", url) from None
    if response.url.scheme == "https" and target.scheme == "http":
        raise Blocked(f"redirect from https to http ({target}) refused", url)
    return target


async def _read_capped(response: httpx.Response, max_bytes: int, url: str) -> bytes:
    """Read the (decoded) body, aborting as soon as it would exceed ``max_bytes``."""
    declared = response.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
        raise TooLarge(f"Content-Length {declared} exceeds the {max_bytes}-byte limit", url)
    chunks: list[bytes] = []
    received = 0
    async for chunk in response.aiter_bytes():
        received += len(chunk)
        if received > max_bytes:
            raise TooLarge(f"body exceeds the {max_bytes}-byte limit", url)
        chunks.append(chunk)
    return b"".join(chunks)


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _media_types(accept: str) -> frozenset[str] | None:
    """The media types named in an Accept header; None if it accepts anything."""
    types = frozenset(_media_type(part) for part in accept.split(",")) - {""}
    return None if "*/*" in types else types


def _decode_text(content: bytes, charset: str | None) -> str:
    if charset:
        try:
            return content.decode(charset, errors="replace")
        except LookupError:
            pass  # unknown charset label: fall back to UTF-8
    return content.decode("utf-8", errors="replace")
