"""The blog owner's reply to a comment: a Note by the blog actor, stored in the thread, delivered.

- ``inReplyTo`` is the comment's ActivityPub id: a fediverse reply's own id; for a comment that
  has none (imported, web, linkback) its permalink, ``/comments/{id}``.
- The Note's id is ``/comments/{id}`` of the stored row: the same URL answers the Note as
  ``application/activity+json`` and redirects browsers to the comment's anchor on the post page.
- Addressing: ``to`` Public, ``cc`` the fediverse participants of the thread (never the
  followers collection), with a ``Mention`` of the comment's author so their server notifies them
  (Mastodon notifies on mentions: ``ActivityPub::Activity::Create#process_tags``). A reply to
  someone your followers do not follow is only shown to them as part of a thread, so pushing it to
  every follower is noise (Mastodon's ``FeedManager#filter_from_home?`` drops replies to accounts
  the reader does not follow); it is delivered to the people in the conversation only.
- Delivery goes through the transactional outbox, one row per distinct (shared) inbox.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html import escape
from typing import Any

from sqlmodel import Session, col, select

from fedblog.activitypub import vocab
from fedblog.activitypub.context import PUBLIC
from fedblog.blog.markup import plain_text_to_html
from fedblog.federation import local_comments, outbox, serialize
from fedblog.services import Services
from fedblog.store.db import session_scope
from fedblog.store.tables import Actor, Interaction, Post

MAX_REPLY_CHARS = 5000


@dataclass(frozen=True)
class ReplyTarget:
    id: int
    author_name: str
    author_handle: str | None
    content_html: str
    status: str
    post_title: str
    post_slug: str


def load_target(services: Services, comment_id: int) -> ReplyTarget | None:
    with Session(services.engine) as session:
        item = session.get(Interaction, comment_id)
        post = session.get(Post, item.post_id) if item is not None else None
        if item is None or post is None or item.status == "deleted" or post.deleted_at is not None or post.draft:
            return None
        assert item.id is not None
        return ReplyTarget(item.id, item.author_name, item.author_handle, item.content_html, item.status,
                           post.title, post.slug)


def _participants(session: Session, post_id: int) -> list[Actor]:
    """The remote fediverse actors who replied visibly in this post's thread."""
    stmt = (select(Actor).where(col(Actor.id).in_(
        select(Interaction.actor_id).where(Interaction.post_id == post_id, Interaction.via == "activitypub",
                                           Interaction.status == "visible", col(Interaction.actor_id).is_not(None))
    ), col(Actor.is_local).is_(False)).order_by(col(Actor.id)))
    return list(session.exec(stmt).all())


def _mention_html(actor: Actor) -> str:
    user = actor.preferred_username or (actor.handle or "").split("@")[0] or "someone"
    href = escape(actor.url or actor.ap_id, quote=True)
    return (f'<span class="h-card"><a href="{href}" class="u-url mention" rel="nofollow noopener">'
            f"@<span>{escape(user)}</span></a></span> ")


def post_reply(services: Services, comment_id: int, text: str) -> tuple[int, int]:
    """Store the owner's reply and enqueue its Create; (the new comment's id, inboxes queued)."""
    text = text.strip()
    if not text:
        raise ValueError("Write something first.")
    if len(text) > MAX_REPLY_CHARS:
        raise ValueError(f"A reply is at most {MAX_REPLY_CHARS} characters; this one has {len(text)}.")
    urls, settings, now = services.urls, services.settings, services.clock.now()
    with session_scope(services.engine) as session:
        parent = session.get(Interaction, comment_id)
        post = session.get(Post, parent.post_id) if parent is not None else None
        if parent is None or post is None or parent.status == "deleted" or post.deleted_at is not None:
            raise LookupError("There is no such comment (it may have been deleted).")
        assert parent.id is not None and post.id is not None
        if parent.status == "pending":  # answering a held comment shows it: the reply would dangle
            parent.status = "visible"
            session.add(parent)
            session.flush()
            local_comments.on_status_changed(session, services, parent, "pending")  # a web comment: published
        author = session.get(Actor, parent.actor_id) if parent.actor_id and parent.via == "activitypub" else None
        if author is not None and author.is_local:
            author = None
        in_reply_to = parent.ap_id if parent.via == "activitypub" and parent.ap_id else urls.comment(parent.id)
        people = _participants(session, post.id)
        if author is not None and all(p.id != author.id for p in people):
            people.insert(0, author)
        html = (_mention_html(author) if author is not None else "") + plain_text_to_html(text)
        if author is not None:  # the mention goes inside the first paragraph, as Mastodon writes it
            html = "<p>" + html.replace("<p>", "", 1) if html.count("<p>") else html
        item = Interaction(
            post_id=post.id, parent_id=parent.id, kind="reply", via="activitypub", status="visible",
            in_reply_to_ap_id=in_reply_to, author_name=settings.author, author_url=urls.actor(),
            author_handle=f"{settings.handle}@{settings.domain}", author_avatar=urls.avatar(),
            content_html=html, published_at=now,
        )
        session.add(item)
        session.flush()
        assert item.id is not None
        note_id = urls.comment(item.id)
        note: dict[str, Any] = {
            "id": note_id, "type": "Note", "attributedTo": urls.actor(), "inReplyTo": in_reply_to,
            "content": html, "published": serialize.iso(now), "url": urls.comment_anchor(post.slug, item.id),
            "to": [PUBLIC], "cc": [p.ap_id for p in people],
            "context": urls.context(urls.post_id(post.ap_path)),
        }
        if author is not None:
            note["tag"] = [{"type": "Mention", "href": author.ap_id,
                            "name": f"@{author.handle}" if author.handle else author.ap_id}]
        item.ap_id = note_id
        item.raw = json.dumps(vocab.with_context(note))
        item.activity_ap_id = serialize.new_activity_id(urls)
        session.add(item)
        create = vocab.wrap("Create", id=item.activity_ap_id, actor=urls.actor(), obj=note,
                            published=note["published"], to=note["to"], cc=note["cc"])
        inboxes = sorted({i for i in (p.shared_inbox or p.inbox for p in people) if i})
        outbox.enqueue(session, create, inboxes, now=now, object_ap_id=note_id)
        return item.id, len(inboxes)
