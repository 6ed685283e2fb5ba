"""Replies, edits, deletes, likes and boosts from the fediverse: AS -> interactions.

A reply is recognised by ``inReplyTo`` pointing at one of our posts or at any comment of one of
our threads, never by addressing (Misskey does not address us). Every mutation is authorised
against the stored owner (SECURITY.md invariant 4).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from fedblog.activitypub.context import is_public
from fedblog.blog.markup import sanitize_remote_html
from fedblog.clock import utc
from fedblog.federation import moderation, outbox
from fedblog.federation.actors import (
    ActorError,
    ensure_actor,
    fetch_exact,
    host_of,
    public_keys,
    same_id,
    upsert_actor,
)
from fedblog.federation.cache import ActorSnapshot
from fedblog.federation.inbox import Delivery, Handler, Refused, id_of, mark
from fedblog.services import Services
from fedblog.store import deferred
from fedblog.store.tables import Actor, Interaction, Post

REPLY_TYPES = frozenset({"Note", "Article", "Page", "Question"})


def parse_time(value: Any, fallback: datetime) -> datetime:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return utc(parsed)
        except ValueError:
            pass
    return fallback


@dataclass(frozen=True)
class Target:
    post_id: int
    comment_id: int | None  # None: the post itself


# light lookups (ids and flags only), built once: they run for every incoming reply
_LIVE_POST_BY_AP_PATH = sa_select(col(Post.id)).where(
    col(Post.ap_path) == bindparam("ap_path"), col(Post.deleted_at).is_(None), col(Post.draft).is_(False))
_COMMENT = (
    sa_select(col(Interaction.id), col(Interaction.post_id))
    .join(Post, col(Post.id) == col(Interaction.post_id))
    .where(col(Interaction.status) != "deleted", col(Post.deleted_at).is_(None))
)
_COMMENT_BY_ID = _COMMENT.where(col(Interaction.id) == bindparam("id"))
_COMMENT_BY_AP_ID = _COMMENT.where(col(Interaction.ap_id) == bindparam("ap_id"))
_INSERT_INTERACTION = insert(Interaction)
_POST_IDS = "fedblog.live_post_ids"  # session.info key: id path -> live post id, for one transaction


def find_target(session: Session, services: Services, url: str | None) -> Target | None:
    """What ``url`` (an inReplyTo or an object) names in our threads: a live post or a comment."""
    if not url:
        return None
    ap_path = services.urls.match_post(url)  # the post's stored id: a reply to a deleted id finds nothing
    if ap_path is not None:
        known: dict[str, int | None] = session.info.setdefault(_POST_IDS, {})  # a batch replies to few posts
        if ap_path not in known:  # the inbox changes no post: the answer holds for the whole transaction
            known[ap_path] = session.connection().execute(_LIVE_POST_BY_AP_PATH, {"ap_path": ap_path}).scalar()
        post_id = known[ap_path]
        return Target(post_id, None) if post_id is not None else None
    # the parent may be a reply of this same batch (deferred), or changed by an earlier activity of
    # the batch through the ORM (a Delete): the lookup below is Core, which does not autoflush
    session.flush()
    deferred.flush(session)
    comment_id = services.urls.match_comment(url)
    conn = session.connection()  # Core: skips the ORM layer, 4x cheaper for these one-row reads
    row = (conn.execute(_COMMENT_BY_ID, {"id": comment_id}) if comment_id is not None
           else conn.execute(_COMMENT_BY_AP_ID, {"ap_id": url})).first()
    return Target(row.post_id, row.id) if row is not None else None


def _content_of(obj: dict[str, Any]) -> str:
    content = obj.get("content")
    if not isinstance(content, str) and isinstance(obj.get("contentMap"), dict):
        content = next((v for v in obj["contentMap"].values() if isinstance(v, str)), "")
    html = sanitize_remote_html(content if isinstance(content, str) else "")
    name = obj.get("name")
    if obj.get("type") in ("Article", "Page") and isinstance(name, str) and name.strip():
        html = f"<p><strong>{sanitize_remote_html(name)}</strong></p>" + html
    return html


def _author_fields(actor: Actor | ActorSnapshot) -> dict[str, Any]:
    return {
        "actor_id": actor.id,
        "author_name": actor.name or actor.preferred_username or actor.ap_id,
        "author_url": actor.url or actor.ap_id,
        "author_handle": actor.handle,
        "author_avatar": actor.icon_url,
    }


def initial_status(session: Session, services: Services, actor_ap_id: str) -> str:
    mode = services.site.current().moderation  # the admin's choice, else FEDBLOG_MODERATION
    if mode == "approve-all":
        return "visible"
    if mode == "hold-all":
        return "pending"
    return "visible" if moderation.is_approved(session, actor_ap_id) else "pending"


# -- Create ---------------------------------------------------------------------------------------
async def prepare_create(services: Services, d: Delivery) -> None:
    obj = d.activity.get("object")
    if isinstance(obj, str):  # a bare id: fetch it from its origin (signed)
        obj = await fetch_exact(services, obj)
        d.activity = {**d.activity, "object": obj}
    if not isinstance(obj, dict) or obj.get("type") not in REPLY_TYPES:
        d.notes["ignore"] = "not a reply-like object"
        return
    if not same_id(id_of(obj.get("attributedTo")) or "", d.actor):
        raise Refused(400, "Refused: the object is attributed to someone other than the actor.")
    in_reply_to = id_of(
        obj.get("inReplyTo") if not isinstance(obj.get("inReplyTo"), list) else (obj["inReplyTo"] or [None])[0]
    )
    d.notes["in_reply_to"] = in_reply_to
    cached = services.remote.actor(d.actor)
    if cached is not None:  # nothing to fetch: the target is looked up inside the transaction
        d.notes["actor"] = cached
        return
    await _author_if_ours(services, d, in_reply_to, "not a reply to this blog")


def _in_our_threads(services: Services, url: str | None) -> bool:
    with Session(services.engine) as session:
        return find_target(session, services, url) is not None


async def _author_if_ours(services: Services, d: Delivery, target_url: str | None, otherwise: str) -> None:
    """Fetch (or recall) the actor, but only when ``target_url`` is in one of our threads."""
    if not await services.run_db(_in_our_threads, services, target_url):  # look before fetching the actor
        d.notes["ignore"] = otherwise
        return
    try:
        d.notes["actor"] = await ensure_actor(services, d.actor, services.remote)
    except ActorError as exc:
        raise Refused(400, f"Refused: cannot fetch the actor: {exc.reason}") from None


def apply_create(session: Session, services: Services, d: Delivery) -> str:
    obj = d.activity["object"]
    target = find_target(session, services, d.notes["in_reply_to"])
    if target is None:
        return "ignored: not a reply to this blog"
    if not (
        is_public(obj.get("to"))
        or is_public(obj.get("cc"))
        or is_public(d.activity.get("to"))
        or is_public(d.activity.get("cc"))
    ):
        return "ignored: not a public reply"
    actor: ActorSnapshot = d.notes["actor"]
    now = services.clock.now()
    # a second copy of the same note (under another activity id) fails the unique ap_id: 202, no effect
    status = initial_status(session, services, d.actor)
    # a plain INSERT (the hot path of the inbox), deferred so a batch inserts its replies at once;
    # the unique ap_id makes a second copy fail, and the inbox then answers "Already received"
    deferred.defer(session, _INSERT_INTERACTION, dict(
        post_id=target.post_id,
        parent_id=target.comment_id,
        kind="reply",
        via="activitypub",
        status=status,
        ap_id=obj["id"],
        activity_ap_id=d.activity["id"],
        in_reply_to_ap_id=d.notes["in_reply_to"],
        content_html=_content_of(obj),
        source_url=_html_url(obj),
        published_at=min(parse_time(obj.get("published"), now), now),
        updated_at=None,
        remote_updated_at=_sender_time(obj),
        raw=d.raw.decode("utf-8", "replace")[:200_000],
        **_author_fields(actor),
    ))
    if status == "visible":
        _forward_if_signed(session, services, d)
    return "processed"


def _sender_time(obj: dict[str, Any]) -> datetime | None:
    """The note's last edit (or creation) time on the sender's clock, as sent."""
    for key in ("updated", "published"):
        value = obj.get(key)
        if isinstance(value, str):
            try:
                return utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
            except ValueError:
                continue
    return None


def _html_url(obj: dict[str, Any]) -> str | None:
    url = obj.get("url")
    if isinstance(url, list):
        url = next(
            (
                u.get("href") if isinstance(u, dict) else u
                for u in url
                if isinstance(u, str) or (isinstance(u, dict) and u.get("mediaType", "text/html") == "text/html")
            ),
            None,
        )
    elif isinstance(url, dict):
        url = url.get("href")
    return url if isinstance(url, str) and host_of(url) == host_of(obj["id"]) else None


def _forward_if_signed(session: Session, services: Services, d: Delivery) -> None:
    """Forward LD-signed public replies, byte for byte, to our followers (INTEROP.md §5.4)."""
    if not isinstance(d.activity.get("signature"), dict):
        return
    origin = host_of(d.actor)
    inboxes = [i for i in outbox.follower_inboxes(session) if host_of(i) != origin]
    if inboxes:
        outbox.enqueue_raw(session, d.raw, d.activity, inboxes, now=services.clock.now())


# -- Update ---------------------------------------------------------------------------------------
async def prepare_update(services: Services, d: Delivery) -> None:
    obj = d.activity.get("object")
    if id_of(obj) == d.actor and isinstance(obj, dict):
        d.notes["actor_doc"] = obj
        return
    if not isinstance(obj, dict) or obj.get("type") not in REPLY_TYPES:
        d.notes["ignore"] = "nothing of ours to update"


def apply_update(session: Session, services: Services, d: Delivery) -> str:
    if "actor_doc" in d.notes:
        return _update_actor(session, services, d)
    obj = d.activity["object"]
    item = session.exec(select(Interaction).where(Interaction.ap_id == obj["id"])).first()
    if item is None:
        return "ignored: unknown object"
    owner = session.get(Actor, item.actor_id) if item.actor_id else None
    if owner is None or owner.ap_id != d.actor:
        raise Refused(403, "Refused: only the author of a comment can edit it.")
    now = services.clock.now()
    new_time = parse_time(obj.get("updated"), now)
    # Order edits by the sender's own clock, as sent; only the time shown is clamped to ours. A
    # sender whose clock runs ahead would otherwise see its older edit win once we clamp the newer
    # one. Mastodon does the same: ProcessStatusUpdateService#already_updated_more_recently?
    # compares the stored `edited_at` (the sender's `updated`, unclamped) with the incoming one.
    known = item.remote_updated_at or item.updated_at or item.published_at
    if new_time <= utc(known):
        return "ignored: not newer than what we have"
    item.content_html, item.updated_at = _content_of(obj), min(new_time, now)
    item.remote_updated_at = new_time
    item.raw = json.dumps(obj)[:200_000]
    session.add(item)
    return "processed"


def _update_actor(session: Session, services: Services, d: Delivery) -> str:
    doc = d.notes["actor_doc"]
    key = next((k for k in public_keys(doc) if k.get("id") == d.key_id), None)
    actor = upsert_actor(session, doc, key, services.clock.now())
    services.remote.forget_actor(actor.ap_id)
    fields = _author_fields(actor)
    fields.pop("actor_id")
    for item in session.exec(select(Interaction).where(Interaction.actor_id == actor.id)).all():
        for k, v in fields.items():
            setattr(item, k, v)
        session.add(item)
    return "processed"


# -- Delete ---------------------------------------------------------------------------------------
def apply_delete_object(session: Session, services: Services, d: Delivery) -> str:
    target = id_of(d.activity.get("object"))
    if not target:
        return "ignored: nothing named"
    item = session.exec(select(Interaction).where(Interaction.ap_id == target)).first()
    if item is None:
        mark(session, services, target, d.actor, "deleted")
        return "ignored: unknown object (marker kept)"
    owner = session.get(Actor, item.actor_id) if item.actor_id else None
    if owner is None or owner.ap_id != d.actor:
        raise Refused(403, "Refused: only the author of a comment can delete it.")
    item.status = "deleted"
    item.content_html = ""
    session.add(item)
    return "processed"


# -- Like / Announce / Undo -----------------------------------------------------------------------
async def prepare_reaction(services: Services, d: Delivery) -> None:
    await _author_if_ours(services, d, id_of(d.activity.get("object")), "not about this blog")


def apply_reaction(session: Session, services: Services, d: Delivery) -> str:
    kind = "like" if d.activity["type"] == "Like" else "repost"
    target = find_target(session, services, id_of(d.activity.get("object")))
    if target is None:
        return "ignored: the post is gone"
    if target.comment_id is not None:
        return "ignored: reactions to comments are not shown"
    actor: ActorSnapshot = d.notes["actor"]
    existing = session.exec(select(Interaction.id).where(
        Interaction.post_id == target.post_id, Interaction.kind == kind, Interaction.actor_id == actor.id,
        col(Interaction.status) != "deleted")).first()
    if existing is not None:
        return "ignored: already counted"
    now = services.clock.now()
    session.add(Interaction(
        post_id=target.post_id, kind=kind, via="activitypub", status="visible", ap_id=d.activity["id"],
        activity_ap_id=d.activity["id"], published_at=min(parse_time(d.activity.get("published"), now), now),
        raw=json.dumps(d.activity)[:20_000], **_author_fields(actor),
    ))
    return "processed"


def apply_undo_reaction(session: Session, services: Services, d: Delivery) -> str:
    inner = d.activity.get("object")
    inner_id = id_of(inner)
    item = session.exec(select(Interaction).where(Interaction.activity_ap_id == inner_id)).first() if inner_id else None
    if item is None and isinstance(inner, dict):  # fall back to (actor, object)
        target = find_target(session, services, id_of(inner.get("object")))
        actor = session.exec(select(Actor).where(Actor.ap_id == d.actor)).first()
        kind = "like" if inner.get("type") == "Like" else "repost"
        if target is not None and actor is not None:
            item = session.exec(
                select(Interaction).where(
                    Interaction.post_id == target.post_id, Interaction.kind == kind, Interaction.actor_id == actor.id
                )
            ).first()
    if item is None:
        if inner_id:
            mark(session, services, inner_id, d.actor, "undone")
        return "ignored: unknown reaction (marker kept)"
    owner = session.get(Actor, item.actor_id) if item.actor_id else None
    if owner is None or owner.ap_id != d.actor:
        raise Refused(403, "Refused: only the actor can undo their reaction.")
    session.delete(item)
    return "processed"


CREATE = Handler(prepare_create, apply_create, flush_first=False)  # find_target flushes when it must
UPDATE = Handler(prepare_update, apply_update)
REACTION = Handler(prepare_reaction, apply_reaction)
