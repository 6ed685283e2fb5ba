"""The interaction recorder: the one place where a comment, reaction or linkback is stored.

Every channel records through one function here: a fediverse reply or reaction (the inbox), a web
comment (the form), a pingback, a Webmention, an import (WordPress, the demo). Each decides the
first status the same way (``initial_status``), and every later change goes through
``change_status``, which refuses a transition the life cycle does not allow.

Statuses (stored as these strings in ``interaction.status``):

    pending --approve--> visible --reject/block--> hidden --approve--> visible
       |                    |                        |
       +--------------------+---- author deletes ----+--> deleted (final; content erased)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

import sqlalchemy as sa
from sqlmodel import Session, col, select

from fedblog.blog import rules
from fedblog.store import deferred
from fedblog.store.tables import Interaction, ModerationRule


class Status(StrEnum):
    PENDING = "pending"  # held until the admin approves it
    VISIBLE = "visible"  # shown (and counted, and served to the fediverse)
    HIDDEN = "hidden"  # rejected by the admin, or its author or domain blocked
    SPAM = "spam"  # marked as spam in the admin queue (its author is blocked too)
    DELETED = "deleted"  # withdrawn by its author: kept as a tombstone, content erased


_ALLOWED: dict[Status, frozenset[Status]] = {
    Status.PENDING: frozenset({Status.VISIBLE, Status.HIDDEN, Status.SPAM, Status.DELETED}),
    Status.VISIBLE: frozenset({Status.HIDDEN, Status.SPAM, Status.DELETED}),
    Status.HIDDEN: frozenset({Status.VISIBLE, Status.SPAM, Status.DELETED}),
    Status.SPAM: frozenset({Status.VISIBLE, Status.DELETED}),  # "not spam" after all, or removed
    Status.DELETED: frozenset(),
}
REACTION_KINDS = ("like", "repost")
ModerationMode = Literal["first-contact", "approve-all", "hold-all"]


class IllegalTransition(ValueError):
    """A status change the life cycle does not allow (say, showing a comment its author deleted)."""


def change_status(item: Interaction, to: Status) -> None:
    """Move ``item`` to ``to``, or raise IllegalTransition. Staying where it is is allowed (a repeated
    approval, a second Delete). A deleted interaction loses its content."""
    now = Status(item.status)
    if to != now and to not in _ALLOWED[now]:
        raise IllegalTransition(f"comment {item.id} is {now.value}; it cannot become {to.value}")
    item.status = to.value
    if to is Status.DELETED:
        item.content_html = ""


def initial_status(session: Session, mode: str, author: str | None) -> Status:
    """The first status of a new comment from ``author`` (an actor id or a web author's URL), by the
    moderation mode: shown at once, held, or held only until the admin approved its author once."""
    if mode == "approve-all":
        return Status.VISIBLE
    if mode == "hold-all" or not author:
        return Status.PENDING
    return Status.VISIBLE if rules.is_approved(session, author) else Status.PENDING


@dataclass(frozen=True)
class Author:
    """Who wrote it, as shown next to it."""

    name: str
    url: str | None = None
    handle: str | None = None
    avatar: str | None = None
    actor_id: int | None = None  # a known fediverse actor

    def columns(self) -> dict[str, Any]:
        return {"author_name": self.name[:500], "author_url": self.url, "author_handle": self.handle,
                "author_avatar": self.avatar, "actor_id": self.actor_id}


_INSERT = sa.insert(Interaction)
_TABLE = Interaction.__table__  # type: ignore[attr-defined]  # sqlmodel does not declare __table__


# -- the fediverse --------------------------------------------------------------------------------
def record_fediverse_reply(session: Session, mode: str, *, actor_ap_id: str, author: Author, post_id: int,
                           parent_id: int | None, ap_id: str, activity_ap_id: str, in_reply_to: str | None,
                           content_html: str, source_url: str | None, published_at: datetime,
                           remote_updated_at: datetime | None, raw: str, evidence: str | None = None) -> Status:
    """A reply from the fediverse (ActivityPub Create of a Note): returns the status it got.
    ``evidence`` is how it was authenticated, as JSON (the HTTP signature's scheme, key and coverage).

    A plain INSERT (the hot path of the inbox), deferred so a batch inserts its replies at once
    (store/deferred.py); the unique ``ap_id`` makes a second copy fail at the flush."""
    status = initial_status(session, mode, actor_ap_id)
    deferred.defer(session, _INSERT, dict(
        post_id=post_id, parent_id=parent_id, kind="reply", via="activitypub", status=status.value,
        ap_id=ap_id, activity_ap_id=activity_ap_id, in_reply_to_ap_id=in_reply_to, content_html=content_html,
        source_url=source_url, published_at=published_at, updated_at=None, remote_updated_at=remote_updated_at,
        raw=raw, evidence=evidence, **author.columns(),
    ))
    return status


def record_reaction(session: Session, *, kind: Literal["like", "repost"], author: Author, post_id: int,
                    activity_ap_id: str, published_at: datetime, raw: str) -> Interaction:
    """A Like or an Announce of a post: shown (counted) at once, as it carries no text."""
    item = Interaction(post_id=post_id, kind=kind, via="activitypub", status=Status.VISIBLE.value,
                       ap_id=activity_ap_id, activity_ap_id=activity_ap_id, published_at=published_at, raw=raw,
                       **author.columns())
    session.add(item)
    return item


# -- the web --------------------------------------------------------------------------------------
def record_web_comment(session: Session, mode: str, *, author: Author, post_id: int, parent_id: int | None,
                       content_html: str, published_at: datetime, email: str | None = None,
                       federated: bool = False, moderated_as: str | None = None, hold: bool = False) -> Interaction:
    """A comment sent with the post page's form.

    Moderated as ``moderated_as`` (the guest actor id of a commenter who gave an email, so the admin's
    "always approve this author" covers their next comments), else as a first contact every time: a
    name and a website are public, anyone may type them, so they earn no trust. ``hold`` holds it
    whatever the mode (say, too many links); a blocked author or website stores it hidden.
    ``email`` is kept for the owner only; ``federated`` is the commenter's consent to publish it
    to the fediverse."""
    who = moderated_as
    status = initial_status(session, mode, who)
    if hold and status is Status.VISIBLE:
        status = Status.PENDING
    if _blocked(session, [u for u in (who, author.url) if u]):
        status = Status.HIDDEN
    item = Interaction(post_id=post_id, parent_id=parent_id, kind="comment", via="form", status=status.value,
                       content_html=content_html, published_at=published_at, author_email=email or None,
                       federated=federated, **author.columns())
    session.add(item)
    session.flush()
    return item


def _blocked(session: Session, urls: list[str]) -> bool:
    """Whether a block rule covers any of ``urls`` (each, its host or a parent domain): one query."""
    if not urls:
        return False
    stmt = select(ModerationRule.id).where(
        ModerationRule.action == "block", col(ModerationRule.target).in_(rules.block_targets(urls))).limit(1)
    return session.exec(stmt).first() is not None


def record_pingback(session: Session, mode: str, *, post_id: int, source_url: str, site_name: str,
                    title: str | None, published_at: datetime, evidence: str | None = None) -> Interaction:
    """A Pingback (pingback 1.0): another page links here; moderated by that page's URL."""
    return _linkback(session, mode, "pingback", "pingback", post_id=post_id, source_url=source_url,
                     author=Author(site_name, url=source_url), title=title, content_html="",
                     published_at=published_at, evidence=evidence)


WebmentionKind = Literal["reply", "like", "repost", "mention"]
# what a verified Webmention is stored as: a reply is a comment ("webmention"), a like or repost a
# reaction (counted with the fediverse's), a mention a comment holding the excerpt around the link
WEBMENTION_KINDS: dict[str, str] = {"reply": "webmention", "like": "like", "repost": "repost", "mention": "mention"}


def record_webmention(session: Session, mode: str, *, post_id: int, source_url: str, author: Author,
                      title: str | None, content_html: str, published_at: datetime,
                      kind: WebmentionKind = "reply", evidence: str | None = None) -> Interaction:
    """A Webmention (W3C Recommendation, 2017): its verified source links here; moderated by the source URL.
    ``content_html`` must already be sanitised (``fedblog.blog.markup.sanitize_remote_html``)."""
    return _linkback(session, mode, WEBMENTION_KINDS[kind], "webmention", post_id=post_id, source_url=source_url,
                     author=author, title=title, content_html="" if kind in REACTION_KINDS else content_html,
                     published_at=published_at, evidence=evidence)


def update_webmention(item: Interaction, *, author: Author, title: str | None, content_html: str,
                      kind: WebmentionKind, updated_at: datetime, evidence: str | None = None) -> None:
    """A Webmention sent again for a source already recorded (W3C Webmention §3.2.4): what the source
    says now replaces what it said, the status stays (a held mention stays held, a hidden one hidden).
    A deleted one cannot come back (``change_status``'s rule): raises IllegalTransition."""
    if Status(item.status) is Status.DELETED:
        raise IllegalTransition(f"comment {item.id} was deleted; a Webmention cannot show it again")
    for name, value in author.columns().items():
        if name != "actor_id":
            setattr(item, name, value)
    item.kind, item.via, item.title = WEBMENTION_KINDS[kind], "webmention", title
    item.content_html = "" if kind in REACTION_KINDS else content_html
    item.updated_at = updated_at
    if evidence is not None:
        item.evidence = evidence


def _linkback(session: Session, mode: str, kind: str, via: str, *, post_id: int, source_url: str, author: Author,
              title: str | None, content_html: str, published_at: datetime,
              evidence: str | None = None) -> Interaction:
    item = Interaction(post_id=post_id, kind=kind, via=via, status=initial_status(session, mode, source_url).value,
                       title=title, content_html=content_html, source_url=source_url, published_at=published_at,
                       evidence=evidence, federated=True, **author.columns())  # a public page: goes to the fediverse
    session.add(item)
    session.flush()
    return item


# -- imports --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Imported:
    """One interaction brought from elsewhere (a WordPress export, the demo): shown at once, as its
    source had already approved it."""

    post_id: int
    kind: str  # comment | pingback | trackback
    via: str  # import, or the linkback protocol it came by
    author_name: str
    published_at: datetime
    author_url: str | None = None
    title: str | None = None
    content_html: str = ""
    source_url: str | None = None
    parent_id: int | None = None


def record_imports(session: Session, items: Sequence[Imported]) -> list[int]:
    """Insert imported interactions in one statement; returns their ids, in order."""
    if not items:
        return []
    rows = [{**asdict(i), "author_name": i.author_name[:500], "status": Status.VISIBLE.value} for i in items]
    stmt = sa.insert(_TABLE).returning(_TABLE.c.id, sort_by_parameter_order=True)
    return [r[0] for r in session.execute(stmt, rows).all()]
