"""Sending linkbacks: which pages to notify when a post is published, edited or deleted, and the
record of what each notification gave (table ``linkback_sent``). The sending itself is the
``linkback.send`` job (``fedblog.jobs.linkback_send``), queued here in the publishing transaction.

Rules (docs/linkbacks-and-proofs.md, "Sending"; W3C Webmention §3.1, Pingback 1.0):

- A post becoming public (not quietly) notifies every page it links to (``outbound_links``).
- An edit of a public post notifies, per W3C Webmention §3.1.4 "Sending Webmentions for updated
  posts": the pages it links to for the first time; the pages it still links to if the post's
  title or HTML changed (the receiver refreshes its copy), or if the last send failed; and the
  pages it no longer links to (the receiver finds the link gone and removes its mention). A page
  the post linked to before anything was sent for it (an imported or quietly published post) is
  history: it is not notified by an edit that keeps the link.
- A deletion notifies the pages the post linked to (the source now answers 410 Gone): §3.1.5
  "Sending Webmentions for deleted posts".
- Removals and deletions are announced by Webmention only (Pingback 1.0 has no way to withdraw a
  ping): only to targets whose endpoint was a Webmention endpoint, or whose send is still under way.
- A queued job not yet started is reused instead of queueing another one: it sends only the
  source and target URLs, and the receiver fetches the post as it is then.
- Drafts, quiet publications and imports send nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from fedblog.activitypub.outbound_links import outbound_links
from fedblog.federation.linkback_jobs import SendLinkback
from fedblog.services import Services
from fedblog.store.tables import Delivery, LinkbackSent, Post

QUEUED, SENT, NO_ENDPOINT, SKIPPED = "queued", "sent", "no_endpoint", "skipped"
RETRYING, GAVE_UP = "retrying", "gave_up"
SUCCEEDED = frozenset({SENT, NO_ENDPOINT})
UNDER_WAY = frozenset({QUEUED, RETRYING})
# What a job sends, decided when it runs: LINK (the post links to the target: Webmention, else
# pingback) or UPDATE (the link was removed or the post deleted: Webmention only).
LINK, UPDATE = "link", "update"


def fingerprint(post: Post) -> str:
    """What a receiver shows of the post: its title and HTML."""
    return hashlib.sha256(f"{post.title}\x00{post.content_html}".encode()).hexdigest()


def links_of(services: Services, post: Post, html: str | None = None) -> list[str]:
    return outbound_links(post.content_html if html is None else html, services.urls.post(post.slug),
                          services.settings.base_url)


def _rows(session: Session, post_id: int) -> dict[str, LinkbackSent]:
    rows = session.exec(select(LinkbackSent).where(col(LinkbackSent.post_id) == post_id)).all()
    return {row.target: row for row in rows}


def _queue(session: Session, row: LinkbackSent, *, now: datetime) -> None:
    """Have ``row``'s target notified: reuse its queued job if that has not started, else queue one."""
    job = session.get(Delivery, row.job_id) if row.job_id is not None else None
    if job is None or job.state != "pending" or job.leased_by is not None:
        job = SendLinkback(row.source, row.target).queue(session, now=now)
        row.job_id = job.id
    row.state, row.queued_at, row.updated_at = QUEUED, now, now
    session.add(row)


def _told(session: Session, row: LinkbackSent) -> bool:
    """Did the last send succeed, or is it still queued (not given up by the queue)?"""
    if row.state in SUCCEEDED:
        return True
    job = session.get(Delivery, row.job_id) if row.state in UNDER_WAY and row.job_id is not None else None
    return job is not None and job.state == "pending"


def _worth_an_update(row: LinkbackSent) -> bool:
    """Can the target learn of a removed link or a deleted post? Only a Webmention receiver can."""
    return row.endpoint_kind == "webmention" or row.state in UNDER_WAY


def after_publish(session: Session, services: Services, post: Post, previous_html: str | None, *,
                  now: datetime) -> int:
    """Queue the notifications of a post that is public after this save (in its transaction).

    ``previous_html``: the post's HTML before this save if it was already public (an edit), else
    None. Returns how many targets were queued.
    """
    assert post.id is not None
    links = links_of(services, post)
    before = set(links_of(services, post, previous_html)) if previous_html is not None else set()
    rows = _rows(session, post.id)
    source, mark, queued = services.urls.post(post.slug), fingerprint(post), 0
    for target in links:
        row = rows.get(target)
        if row is None:
            if target in before:
                continue  # linked before anything was sent for it: history (an import, a quiet post)
            row = LinkbackSent(post_id=post.id, source=source, target=target, fingerprint=mark,
                               queued_at=now, updated_at=now)
        elif row.linked and row.fingerprint == mark and _told(session, row):
            continue  # unchanged, and told (or being told) already
        row.linked, row.fingerprint, row.source = True, mark, source
        _queue(session, row, now=now)
        queued += 1
    kept = set(links)
    for target, row in rows.items():
        if row.linked and target not in kept:
            row.linked, row.fingerprint, row.updated_at = False, mark, now
            session.add(row)
            if _worth_an_update(row):
                _queue(session, row, now=now)
                queued += 1
    return queued


def after_delete(session: Session, post: Post, *, now: datetime) -> int:
    """Queue the Webmentions announcing that ``post`` is gone (in the deleting transaction)."""
    assert post.id is not None
    queued = 0
    for row in _rows(session, post.id).values():
        if row.linked and _worth_an_update(row):
            _queue(session, row, now=now)
            queued += 1
    return queued


# -- the job's side: what to send, and what it gave -------------------------------------------------


def job_mode(services: Services, job_id: int) -> str:
    """LINK if a live post links to the job's target (or the job has no record), else UPDATE."""
    with Session(services.engine) as session:
        rows = session.exec(select(LinkbackSent, Post).join(Post, col(Post.id) == col(LinkbackSent.post_id))
                            .where(col(LinkbackSent.job_id) == job_id)).all()
    if not rows:
        return LINK
    return LINK if any(row.linked and post.deleted_at is None and not post.draft for row, post in rows) else UPDATE


@dataclass(frozen=True)
class Result:
    """What one run of a ``linkback.send`` job gave, for the record."""

    state: str  # sent | no_endpoint | retrying | gave_up | skipped
    endpoint_kind: str | None = None  # webmention | pingback | none (None: not discovered)
    endpoint: str | None = None
    status: int | None = None
    error: str | None = None


def record(services: Services, job_id: int, result: Result) -> None:
    """Write ``result`` on the rows the job was queued for (a later job of the same row has its own id)."""
    now = services.clock.now()
    with Session(services.engine) as session:
        for row in session.exec(select(LinkbackSent).where(col(LinkbackSent.job_id) == job_id)).all():
            row.state, row.last_status, row.last_error, row.updated_at = (
                result.state, result.status, (result.error or None) and result.error[:1000], now)
            if result.endpoint_kind is not None:
                row.endpoint_kind, row.endpoint = result.endpoint_kind, result.endpoint
            if result.state in SUCCEEDED:
                row.sent_at = now
            session.add(row)
        session.commit()


@dataclass(frozen=True)
class SentLinkback:
    """One row as the admin would show it."""

    target: str
    linked: bool
    state: str  # as recorded, or gave_up once the queue gave up retrying
    endpoint_kind: str | None
    last_status: int | None
    last_error: str | None
    sent_at: datetime | None


def sent_for_post(session: Session, post_id: int) -> list[SentLinkback]:
    """The linkbacks of a post, in the order they were first queued."""
    stmt = (select(LinkbackSent, Delivery.state)
            .join(Delivery, col(Delivery.id) == col(LinkbackSent.job_id), isouter=True)
            .where(col(LinkbackSent.post_id) == post_id).order_by(col(LinkbackSent.id)))
    out = []
    for row, job_state in session.exec(stmt).all():
        state = GAVE_UP if row.state in UNDER_WAY and job_state == "gave_up" else row.state
        out.append(SentLinkback(row.target, row.linked, state, row.endpoint_kind, row.last_status, row.last_error,
                                row.sent_at))
    return out
