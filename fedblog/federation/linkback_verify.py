"""Verifying a received pingback or Webmention: the logic of the ``linkback.verify`` job.

The worker (``fedblog.jobs.handlers``) runs ``verify`` for each queued check, with its guarded
client (SSRF guard at every redirect hop and at connect time). W3C Webmention §3.2.2 and §4.2,
Pingback 1.0 (and its errata on the size and rate of the source fetch):

1. GET the source once: at most ``MAX_REDIRECTS`` redirects, ``MAX_SOURCE_BYTES`` of body (larger
   is refused, not truncated), ``FETCH_DEADLINE`` seconds for all of it. A temporary failure
   (timeout, unreachable, 5xx, 429) is tried again with the queue's backoff, at most ``MAX_TRIES``
   times in all; anything else is final.
2. Does it link to the target? HTML by its links (``linkback.analyse``, in a small thread pool:
   reading microformats takes up to about a second), JSON by exact values, text by search
   (``linkcheck.links_to``).
3. In one transaction: a new source is recorded (``record_pingback`` / ``record_webmention``) and
   published (``local_comments.publish``); a Webmention sent again updates what its source said
   (§3.2.4); a source that answers 410 Gone or no longer links deletes what it had made
   (``change_status``, then ``local_comments.on_status_changed``); otherwise the request is refused
   with its reason, and nothing shows.
"""

from __future__ import annotations

import asyncio
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from html.parser import HTMLParser
from typing import Literal

import httpx
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from fedblog.activitypub.linkback import SourceEvidence, analyse
from fedblog.activitypub.linkcheck import links_to
from fedblog.activitypub.origin import host_of
from fedblog.blog import interactions as recorder
from fedblog.blog.markup import html_to_text, plain_text_to_html, sanitize_remote_html
from fedblog.blog.wp_html import linkback_parts
from fedblog.clock import utc
from fedblog.federation import local_comments
from fedblog.federation.guests import site_origin
from fedblog.federation.linkback_jobs import VerifyLinkback
from fedblog.federation.linkback_receive import ACCEPTED, DELETED, PENDING, REFUSED, recorded
from fedblog.net.fetch import BadStatus, Blocked, FetchedPage, FetchError, fetch_text
from fedblog.net.safety import ALLOW_SETTING
from fedblog.services import Services
from fedblog.store.db import session_scope
from fedblog.store.tables import Interaction, LinkbackRequest, Post

FETCH_DEADLINE = 5.0  # W3C Webmention §4.2: "if a source URL doesn't respond within 5 seconds"
MAX_SOURCE_BYTES = 1 << 20  # §4.2: "fetch only the first 1mb of the page"
MAX_REDIRECTS = 5
MAX_TRIES = 5  # fetches of one source for one request, temporary failures included
MAX_CONTENT_CHARS = 20_000  # a longer reply is shown as the start of its text
ACCEPT = "text/html, application/xhtml+xml;q=0.9, application/json;q=0.8, text/plain;q=0.5"
_ANALYSIS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="fedblog-linkback")  # CPU-bound, bounded
NOT_ALLOWED = "the source's address is not allowed"
log = logging.getLogger(__name__)


def _public_reason(exc: FetchError) -> str:
    """Why the source could not be fetched, as the public status page may say it: a refusal of
    the outbound policy names no address and no setting (the detail is logged for the operator)."""
    if isinstance(exc, Blocked) or ALLOW_SETTING in exc.reason:
        log.warning("linkback source refused by the outbound policy: %s", exc)
        return NOT_ALLOWED
    return exc.reason


@dataclass(frozen=True)
class Verdict:
    """How the job ended, for the queue: done, try again later, or never again."""

    kind: Literal["sent", "retry", "give_up"]
    error: str = ""


@dataclass(frozen=True)
class Found:
    """What the source said. ``links`` False: refuse (or delete, when ``removes``)."""

    links: bool
    reason: str = ""
    removes: bool = False  # 410 Gone, or fetched and no link: an earlier mention goes (§3.2.4)
    evidence: SourceEvidence | None = None
    site_name: str | None = None
    url: str = ""
    media_type: str = ""


class _SiteName(HTMLParser):
    """``<meta property="og:site_name">`` (or ``application-name``) of a page: a pingback's site."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.name: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "meta" or self.name:
            return
        values = {k: (v or "") for k, v in attrs}
        if values.get("property") == "og:site_name" or values.get("name") == "application-name":
            self.name = " ".join(values.get("content", "").split())[:200] or None


def site_name_of(html: str) -> str | None:
    parser = _SiteName()
    parser.feed(html[:200_000])  # the head is near the top
    return parser.name


def _read(page: FetchedPage, target: str) -> Found:
    media_type = page.content_type.split(";", 1)[0].strip().lower()
    if media_type in ("text/html", "application/xhtml+xml"):
        evidence = analyse(page.text, page.url_final, target)
        reason = "" if evidence.links_to_target else "the source does not link to the target"
        return Found(evidence.links_to_target, reason, removes=True, evidence=evidence,
                     site_name=site_name_of(page.text), url=page.url_final, media_type=media_type)
    if links_to(page.text, page.url_final, target, media_type):
        return Found(True, url=page.url_final, media_type=media_type)
    return Found(False, f"the source ({media_type or 'no media type'}) does not link to the target", removes=True)


async def verify(services: Services, client: httpx.AsyncClient, payload: dict[str, object], *,
                 attempts: int) -> Verdict:
    """Run one check (``attempts``: failed tries so far)."""
    try:
        check = VerifyLinkback.from_payload(payload)
    except ValueError as exc:
        return Verdict("give_up", str(exc))
    if check.request is None:
        return Verdict("give_up", "the job names no linkback request")
    if await services.run_db(_state_of, services, check.request) != PENDING:
        return Verdict("sent", "the request was already settled")
    try:
        page = await fetch_text(client, check.source, policy=services.policy, max_bytes=MAX_SOURCE_BYTES,
                                deadline=FETCH_DEADLINE, max_redirects=MAX_REDIRECTS, accept=ACCEPT)
    except BadStatus as exc:
        if exc.status == 410:
            found = Found(False, "the source is gone (HTTP 410)", removes=True)
        elif exc.temporary and attempts + 1 < MAX_TRIES:
            return await _later(services, check.request, f"the source answered HTTP {exc.status}")
        else:
            found = Found(False, f"the source could not be fetched: HTTP {exc.status}")
    except FetchError as exc:
        reason = _public_reason(exc)
        if exc.temporary and attempts + 1 < MAX_TRIES:
            return await _later(services, check.request, f"the source could not be fetched: {reason}")
        found = Found(False, f"the source could not be fetched: {reason}"[:500])
    else:
        found = await asyncio.get_running_loop().run_in_executor(_ANALYSIS, _read, page, check.target)
    return await services.run_db(settle, services, check.request, found)


async def _later(services: Services, request_id: int, reason: str) -> Verdict:
    await services.run_db(_note, services, request_id, reason)
    return Verdict("retry", reason)


def _state_of(services: Services, request_id: int) -> str | None:
    with Session(services.engine) as session:
        request = session.get(LinkbackRequest, request_id)
        return request.state if request else None


def _note(services: Services, request_id: int, reason: str) -> None:
    with session_scope(services.engine) as session:
        request = session.get(LinkbackRequest, request_id)
        if request is not None and request.state == PENDING:
            request.last_error, request.updated_at = reason[:500], services.clock.now()
            session.add(request)


def settle(services: Services, request_id: int, found: Found) -> Verdict:
    """Apply what the source said, in one transaction (again once if a concurrent check of the same
    source recorded it first: then it is an update)."""
    for attempt in (1, 2):
        try:
            with session_scope(services.engine) as session:
                return _apply(session, services, request_id, found)
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _close(session: Session, request: LinkbackRequest, state: str, reason: str | None, item: Interaction | None,
           now: datetime) -> Verdict:
    request.state, request.last_error, request.updated_at = state, (reason or None) and reason[:500], now
    if item is not None:
        request.interaction_id = item.id
    session.add(request)
    return Verdict("sent", reason or "")


def _apply(session: Session, services: Services, request_id: int, found: Found) -> Verdict:
    request = session.get(LinkbackRequest, request_id)
    if request is None or request.state != PENDING:
        return Verdict("sent", "the request was already settled")
    now = services.clock.now()
    item = recorded(session, request.post_id, request.source)
    ours = item if item is not None and item.via in ("webmention", "pingback") else None
    if not found.links:
        if (found.removes and request.protocol == "webmention" and ours is not None
                and ours.status != recorder.Status.DELETED.value):
            before = ours.status
            recorder.change_status(ours, recorder.Status.DELETED)
            session.add(ours)
            local_comments.on_status_changed(session, services, ours, before)
            return _close(session, request, DELETED, found.reason, ours, now)
        return _close(session, request, REFUSED, found.reason, None, now)
    if item is not None:
        if ours is None:
            return _close(session, request, REFUSED, "this source is already shown here as a fediverse reply",
                          None, now)
        if request.protocol == "pingback":
            return _close(session, request, REFUSED, "this source is already registered for this post", None, now)
        fields = _webmention_fields(request.source, found)
        try:
            recorder.update_webmention(ours, kind=fields.kind, author=fields.author, title=fields.title,
                                       content_html=fields.content_html, evidence=_evidence(request, found, now),
                                       updated_at=now)
        except recorder.IllegalTransition:
            return _close(session, request, REFUSED, "this source's earlier mention was deleted; it stays deleted",
                          None, now)
        session.add(ours)
        local_comments.refresh(session, services, ours)  # its Note says what the source says now
        return _close(session, request, ACCEPTED, None, ours, now)
    post = session.get(Post, request.post_id)
    if post is None or post.draft or post.deleted_at is not None:
        return _close(session, request, REFUSED, "the post is no longer there", None, now)
    mode = services.site.refresh(services.engine).moderation  # the admin's choice, as the inbox reads it
    if request.protocol == "pingback":
        site, title = _pingback_names(request.source, found)
        made = recorder.record_pingback(session, mode, post_id=request.post_id, source_url=request.source,
                                        site_name=site, title=title, published_at=now,
                                        evidence=_evidence(request, found, now))
    else:
        fields = _webmention_fields(request.source, found)
        published = found.evidence.published if found.evidence else None
        made = recorder.record_webmention(
            session, mode, post_id=request.post_id, source_url=request.source, kind=fields.kind,
            author=fields.author, title=fields.title, content_html=fields.content_html,
            published_at=min(utc(published), now) if published else now, evidence=_evidence(request, found, now))
    local_comments.publish(session, services, made)
    return _close(session, request, ACCEPTED, None, made, now)


def _pingback_names(source: str, found: Found) -> tuple[str, str | None]:
    """(site name, title) of a pingback: the page's ``og:site_name``, else the end of a "Post · Site"
    title, else the host, as the WordPress importer reads them (``wp_html.linkback_parts``)."""
    title = found.evidence.title if found.evidence else None
    if not title:
        return found.site_name or linkback_parts("", source)[0], None
    site, short = linkback_parts(title, source)
    if found.site_name is None:
        return site, short
    return found.site_name, short if site == found.site_name else title


@dataclass(frozen=True)
class _Fields:
    kind: recorder.WebmentionKind
    author: recorder.Author
    title: str | None
    content_html: str


def _webmention_fields(source: str, found: Found) -> _Fields:
    """The recorder's arguments for what the source says: kind, author (h-card), title, sanitised content."""
    ev = found.evidence
    if ev is None:  # JSON or text: a plain mention by the site
        return _Fields("mention", recorder.Author(host_of(source), url=site_origin(source)), None, "")
    author = recorder.Author((ev.author.name or host_of(source))[:500], url=ev.author.url or site_origin(source),
                             avatar=ev.author.photo)
    if ev.kind == "reply":
        html = sanitize_remote_html(ev.content_html) if ev.content_html else plain_text_to_html(ev.content_text)
        if len(html) > MAX_CONTENT_CHARS:
            html = plain_text_to_html(html_to_text(html)[:2000].rsplit(" ", 1)[0] + " …")
        content = html or plain_text_to_html(ev.excerpt)
    else:
        content = plain_text_to_html(ev.excerpt)
    kind: recorder.WebmentionKind = ev.kind if ev.kind in ("reply", "like", "repost") else "mention"  # type: ignore[assignment]
    return _Fields(kind, author, ev.title, content)


def _evidence(request: LinkbackRequest, found: Found, now: datetime) -> str:
    """How the linkback was checked, kept with it (``interaction.evidence``), with the site's name
    (``og:site_name``) and the h-card author the page gives: who its activity is attributed to
    (``local_comments.attach_actor``)."""
    hcard = found.evidence.author if found.evidence else None  # named after the host: the page names no one
    named = hcard is not None and (hcard.name or hcard.url) and (hcard.photo or hcard.name != host_of(request.source))
    author = {"name": (hcard.name or "")[:500], "url": hcard.url, "photo": hcard.photo} if hcard and named else None
    return json.dumps({
        "type": "linkback", "protocol": request.protocol, "source": request.source, "target": request.target,
        "fetched_url": found.url, "media_type": found.media_type, "verified_at": now.isoformat(),
        "excerpt": found.evidence.excerpt[:600] if found.evidence else "",
        "site_name": found.site_name, "author": author,
    }, separators=(",", ":"))
