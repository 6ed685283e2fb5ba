"""The ``linkback.send`` job: tell one page that our post links to it (or no longer does).

One run (docs/linkbacks-and-proofs.md, "Sending"):

1. GET the target through the worker's guarded client (``fetch_text``: redirects followed hop by
   hop, every URL checked by the URL policy, loopback and private addresses refused as W3C
   Webmention §4.3 "Avoid sending Webmentions to localhost" asks, at most 1 MiB read, §4.2) — §3.1.2
   "Sender discovers receiver Webmention endpoint" (again on every send, as §3.1.4 requires for
   updates), Pingback 1.0 "Autodiscovery". A 5xx, 408, 429 or timeout is retried by the queue; a
   404, 410 or other 4xx gives up.
2. ``discover``: the Webmention endpoint, else the pingback server. Neither: done, recorded as
   "no endpoint".
3. Webmention (§3.1.3 "Sender notifies receiver"): POST ``source`` and ``target`` form-encoded to
   the endpoint (its query string kept). Any 2xx is success (201 and 202 included); other statuses
   are classified by ``outcome_of`` (4xx gives up with the status and the start of the answer;
   5xx, 408 and 429 are retried, ``Retry-After`` honoured). A redirect is not followed: it gives up.
4. Pingback: POST the XML-RPC ``pingback.ping(source, target)`` call. A string answer is success,
   and so is fault 0x30 "already registered"; fault 0x32 (an upstream error) is retried; any other
   fault gives up with its code and text recorded.

A removed link or a deleted post (``job_mode`` says UPDATE) is announced by Webmention only:
Pingback 1.0 has no way to withdraw a ping, so a target that only offers pingback is skipped.
The outcome is written on the post's ``linkback_sent`` row for the admin.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import httpx

from fedblog.activitypub import pingback
from fedblog.activitypub.linkback_discovery import Endpoint, discover
from fedblog.federation import linkback_send
from fedblog.federation.linkback_jobs import SendLinkback
from fedblog.jobs.delivery import Outcome, outcome_of
from fedblog.net.client import delivery_timeout
from fedblog.net.fetch import BadStatus, Blocked, FetchError, fetch_text
from fedblog.net.safety import BlockedURL

if TYPE_CHECKING:
    from fedblog.jobs.handlers import Job, JobContext

PAGE_CAP = 1 << 20  # Webmention §4.2 "Limits on GET requests": 1 MB is the spec's example
ANSWER_CAP = pingback.MAX_BODY_BYTES  # an endpoint's answer: a status line, or a short XML-RPC response
FORM = "application/x-www-form-urlencoded"
_HTML_TYPES = ("text/html", "application/xhtml+xml")
Attempt = tuple[Outcome, linkback_send.Result]


def _printable(text: str, limit: int = 200) -> str:
    return " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())[:limit]


def _failed(outcome: Outcome, endpoint: Endpoint | None, error: str) -> Attempt:
    state = linkback_send.RETRYING if outcome.kind == "retry" else linkback_send.GAVE_UP
    result = linkback_send.Result(state, endpoint.protocol if endpoint else None, endpoint.url if endpoint else None,
                                  outcome.status, error)
    return Outcome(outcome.kind, outcome.status, error, outcome.retry_after), result


async def _post(client: httpx.AsyncClient, url: str, body: bytes, content_type: str,
                deadline: float) -> tuple[httpx.Response, bytes]:
    """POST ``body``; the response (closed) and at most ``ANSWER_CAP`` bytes of its body."""
    request = client.build_request("POST", url, content=body, timeout=delivery_timeout(deadline),
                                   headers={"Content-Type": content_type, "Accept": "*/*"})
    async with asyncio.timeout(deadline):
        response = await client.send(request, stream=True)
        try:
            chunks, read = [], 0
            async for chunk in response.aiter_bytes():
                chunks.append(chunk)
                read += len(chunk)
                if read > ANSWER_CAP:
                    break
        finally:
            await response.aclose()
    return response, b"".join(chunks)[:ANSWER_CAP]


async def _notify(ctx: JobContext, send: SendLinkback, endpoint: Endpoint, deadline: float) -> Attempt:
    now = ctx.services.clock.now
    if endpoint.protocol == "webmention":
        body, content_type = urlencode({"source": send.source, "target": send.target}).encode(), FORM
    else:
        body, content_type = pingback.ping_call(send.source, send.target), pingback.CONTENT_TYPE
    try:
        response, answer = await _post(ctx.client, endpoint.url, body, content_type, deadline)
    except BlockedURL as exc:
        return _failed(Outcome("give_up"), endpoint, f"blocked: {exc}")
    except (TimeoutError, httpx.TimeoutException):
        return _failed(Outcome("retry"), endpoint, f"{endpoint.protocol} endpoint timed out")
    except httpx.HTTPError as exc:
        return _failed(Outcome("retry"), endpoint, f"{type(exc).__name__}: {exc}"[:300])
    status = response.status_code
    if 300 <= status < 400:
        return _failed(Outcome("give_up", status), endpoint, f"HTTP {status}: the endpoint redirects (not followed)")
    if not 200 <= status < 300:
        outcome = outcome_of(response, now())
        said = _printable(answer.decode("utf-8", "replace"))
        return _failed(outcome, endpoint, f"HTTP {status}" + (f": {said}" if said else ""))
    if endpoint.protocol == "webmention":
        return Outcome("sent", status), linkback_send.Result(linkback_send.SENT, "webmention", endpoint.url, status)
    answered = pingback.parse_ping_response(answer)
    if isinstance(answered, str) or answered.code == pingback.ALREADY_REGISTERED:
        note = None if isinstance(answered, str) else f"fault {answered.code}: {answered.message}"
        return Outcome("sent", status), linkback_send.Result(linkback_send.SENT, "pingback", endpoint.url, status, note)
    kind = "retry" if answered.code == pingback.UPSTREAM_ERROR else "give_up"
    return _failed(Outcome(kind, status), endpoint, f"pingback fault {answered.code}: {answered.message}")


async def _attempt(ctx: JobContext, send: SendLinkback, mode: str) -> Attempt:
    services = ctx.services
    try:
        page = await fetch_text(ctx.client, send.target, policy=services.policy, max_bytes=PAGE_CAP,
                                deadline=ctx.deadline / 2, accept="text/html, */*;q=0.5")
    except BadStatus as exc:
        return _failed(Outcome("retry" if exc.temporary else "give_up", exc.status), None,
                       f"the target page answers HTTP {exc.status}")
    except FetchError as exc:
        what = "blocked" if isinstance(exc, Blocked) else "fetching the target"
        return _failed(Outcome("retry" if exc.temporary else "give_up"), None, f"{what}: {exc.reason}")
    media_type = page.content_type.split(";", 1)[0].strip().lower()
    html = page.text if media_type in _HTML_TYPES else None
    endpoint = await asyncio.to_thread(discover, page.url_final, page.headers, html)  # parsing: off the loop
    if endpoint is None:
        return Outcome("sent", page.status), linkback_send.Result(linkback_send.NO_ENDPOINT, "none", None, page.status)
    if mode == linkback_send.UPDATE and endpoint.protocol != "webmention":
        return Outcome("sent"), linkback_send.Result(
            linkback_send.SKIPPED, endpoint.protocol, endpoint.url, None,
            "pingback cannot announce a removed link or a deleted post")
    ctx.on_waiting()  # from here on the job only waits on the endpoint
    return await _notify(ctx, send, endpoint, ctx.deadline / 2)


async def send_linkback(ctx: JobContext, job: Job) -> Outcome:
    """The ``linkback.send`` handler (registered in ``fedblog.jobs.handlers.default_registry``)."""
    try:
        send = SendLinkback.from_payload(job.payload)
    except ValueError as exc:
        return Outcome("give_up", error=str(exc))
    services = ctx.services
    mode = await services.run_db(linkback_send.job_mode, services, job.id)
    outcome, result = await _attempt(ctx, send, mode)
    await services.run_db(linkback_send.record, services, job.id, result)
    return outcome
