"""Replies, edits, deletes, likes and boosts from the fediverse: AS -> interactions.

A reply is recognised by ``inReplyTo`` pointing at one of our posts or at any comment of one of
our threads, never by addressing (Misskey does not address us). Every mutation is authorised
against the stored owner, never the one the payload names (docs/security.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import bindparam
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from fedblog.activitypub.context import is_public
from fedblog.blog import interactions as recorder
from fedblog.blog.markup import sanitize_remote_html
from fedblog.clock import utc
from fedblog.federation import outbox
from fedblog.federation.actor_store import public_keys, upsert_actor
from fedblog.federation.actors import ActorError, ensure_actor, fetch_exact, host_of, same_id
from fedblog.federation.cache import ActorSnapshot
from fedblog.federation.contract import PROCESSED, Delivery, Ignored, Outcome, Refused, Steps, Tx, id_of
from fedblog.federation.markers import mark
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


def find_target(session: Session, services: Services, url: str | None,
                known: dict[str, int | None] | None = None) -> Target | None:
    """What ``url`` (an inReplyTo or an object) names in our threads: a live post or a comment.

    ``known`` (Tx.live_posts) remembers post ids for one transaction: a batch replies to few posts."""
    if not url:
        return None
    ap_path = services.urls.match_post(url)  # the post's stored id: a reply to a deleted id finds nothing
    if ap_path is not None:
        known = {} if known is None else known
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


def _author(actor: Actor | ActorSnapshot) -> recorder.Author:
    return recorder.Author(
        name=actor.name or actor.preferred_username or actor.ap_id,
        url=actor.url or actor.ap_id,
        handle=actor.handle,
        avatar=actor.icon_url,
        actor_id=actor.id,
    )


# -- Create ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NewReply:
    """What ``prepare_create`` learned: the note (fetched when the activity named it by id), what it
    replies to, and its author."""

    obj: dict[str, Any]
    in_reply_to: str | None
    actor: ActorSnapshot


async def prepare_create(services: Services, d: Delivery) -> NewReply | Ignored:
    obj = d.activity.get("object")
    if isinstance(obj, str):  # a bare id: fetch it from its origin (signed)
        obj = await fetch_exact(services, obj)
    if not isinstance(obj, dict) or obj.get("type") not in REPLY_TYPES:
        return Ignored("not a reply-like object")
    if not same_id(id_of(obj.get("attributedTo")) or "", d.actor):
        raise Refused(400, "Refused: the object is attributed to someone other than the actor.")
    in_reply_to = id_of(
        obj.get("inReplyTo") if not isinstance(obj.get("inReplyTo"), list) else (obj["inReplyTo"] or [None])[0]
    )
    author = services.remote.actor(d.actor)
    if author is None:  # else nothing to fetch: the target is looked up inside the transaction
        found = await _author_if_ours(services, d, in_reply_to, "not a reply to this blog")
        if isinstance(found, Ignored):
            return found
        author = found
    return NewReply(obj, in_reply_to, author)


def _in_our_threads(services: Services, url: str | None) -> bool:
    with Session(services.engine) as session:
        return find_target(session, services, url) is not None


async def _author_if_ours(services: Services, d: Delivery, target_url: str | None,
                          otherwise: str) -> ActorSnapshot | Ignored:
    """Fetch (or recall) the actor, but only when ``target_url`` is in one of our threads."""
    # look before fetching the actor; concurrent activities naming one target share the lookup
    ours = await services.remote.single_flight(
        "ours? " + (target_url or ""), lambda: services.run_db(_in_our_threads, services, target_url))
    if not ours:
        return Ignored(otherwise)
    try:
        return await ensure_actor(services, d.actor, services.remote)
    except ActorError as exc:
        raise Refused(400, f"Refused: cannot fetch the actor: {exc.reason}") from None


def apply_create(tx: Tx, d: Delivery, reply: NewReply) -> Outcome:
    session, services, obj = tx.session, tx.services, reply.obj
    target = find_target(session, services, reply.in_reply_to, tx.live_posts)
    if target is None:
        return Ignored("not a reply to this blog")
    if not (
        is_public(obj.get("to"))
        or is_public(obj.get("cc"))
        or is_public(d.activity.get("to"))
        or is_public(d.activity.get("cc"))
    ):
        return Ignored("not a public reply")
    now = services.clock.now()
    # a second copy of the same note (under another activity id) fails the unique ap_id when the
    # batch's replies are inserted, and the inbox then answers "Already received"
    status = recorder.record_fediverse_reply(
        session, services.site.current().moderation, actor_ap_id=d.actor, author=_author(reply.actor),
        post_id=target.post_id, parent_id=target.comment_id, ap_id=obj["id"], activity_ap_id=d.activity["id"],
        in_reply_to=reply.in_reply_to, content_html=_content_of(obj), source_url=_html_url(obj),
        published_at=min(parse_time(obj.get("published"), now), now), remote_updated_at=_sender_time(obj),
        raw=d.raw.decode("utf-8", "replace")[:200_000], evidence=_evidence(d),
    )
    if status is recorder.Status.VISIBLE:
        _forward_if_signed(session, services, d)
    return PROCESSED


def _evidence(d: Delivery) -> str:
    """The verification evidence stored with a reply (JSON): what the HTTP signature covered, as the
    inbox verified it; a dead letter applied again knows only the key id and scheme."""
    found = d.evidence if d.evidence is not None else {"type": "http-signature", "scheme": d.scheme, "keyId": d.key_id}
    return json.dumps({**found, "signer": d.actor}, separators=(",", ":"), sort_keys=True)


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
    """Forward LD-signed public replies, byte for byte, to our followers (ActivityPub §7.1.2, inbox
    forwarding: https://www.w3.org/TR/activitypub/#inbox-forwarding)."""
    if not isinstance(d.activity.get("signature"), dict):
        return
    origin = host_of(d.actor)
    inboxes = [i for i in outbox.follower_inboxes(session) if host_of(i) != origin]
    if inboxes:
        outbox.enqueue_raw(session, d.raw, d.activity, inboxes, now=services.clock.now())


# -- Update ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UpdateOf:
    """What an Update changes: the sender's own actor document, or one of its notes."""

    doc: dict[str, Any]
    is_actor: bool


async def prepare_update(services: Services, d: Delivery) -> UpdateOf | Ignored:
    obj = d.activity.get("object")
    if id_of(obj) == d.actor and isinstance(obj, dict):
        return UpdateOf(obj, is_actor=True)
    if not isinstance(obj, dict) or obj.get("type") not in REPLY_TYPES:
        return Ignored("nothing of ours to update")
    return UpdateOf(obj, is_actor=False)


def apply_update(tx: Tx, d: Delivery, update: UpdateOf) -> Outcome:
    session, services, obj = tx.session, tx.services, update.doc
    if update.is_actor:
        return _update_actor(session, services, d, obj)
    item = session.exec(select(Interaction).where(Interaction.ap_id == obj["id"])).first()
    if item is None:
        return Ignored("unknown object")
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
        return Ignored("not newer than what we have")
    item.content_html, item.updated_at = _content_of(obj), min(new_time, now)
    item.remote_updated_at = new_time
    item.raw = json.dumps(obj)[:200_000]
    session.add(item)
    return PROCESSED


def _update_actor(session: Session, services: Services, d: Delivery, doc: dict[str, Any]) -> Outcome:
    key = next((k for k in public_keys(doc) if k.get("id") == d.key_id), None)
    actor = upsert_actor(session, doc, key, services.clock.now())
    services.remote.forget_actor(actor.ap_id)
    fields = _author(actor).columns()
    fields.pop("actor_id")
    for item in session.exec(select(Interaction).where(Interaction.actor_id == actor.id)).all():
        for k, v in fields.items():
            setattr(item, k, v)
        session.add(item)
    return PROCESSED


# -- Delete ---------------------------------------------------------------------------------------
def apply_delete_object(tx: Tx, d: Delivery) -> Outcome:
    session = tx.session
    target = id_of(d.activity.get("object"))
    if not target:
        return Ignored("nothing named")
    item = session.exec(select(Interaction).where(Interaction.ap_id == target)).first()
    if item is None:
        mark(tx, target, d.actor, "deleted")
        return Ignored("unknown object (marker kept)")
    owner = session.get(Actor, item.actor_id) if item.actor_id else None
    if owner is None or owner.ap_id != d.actor:
        raise Refused(403, "Refused: only the author of a comment can delete it.")
    recorder.change_status(item, recorder.Status.DELETED)
    session.add(item)
    return PROCESSED


# -- Like / Announce / Undo -----------------------------------------------------------------------
async def prepare_reaction(services: Services, d: Delivery) -> ActorSnapshot | Ignored:
    return await _author_if_ours(services, d, id_of(d.activity.get("object")), "not about this blog")


def apply_reaction(tx: Tx, d: Delivery, actor: ActorSnapshot) -> Outcome:
    session, services = tx.session, tx.services
    kind: Literal["like", "repost"] = "like" if d.activity["type"] == "Like" else "repost"
    target = find_target(session, services, id_of(d.activity.get("object")), tx.live_posts)
    if target is None:
        return Ignored("the post is gone")
    if target.comment_id is not None:
        return Ignored("reactions to comments are not shown")
    existing = session.exec(select(Interaction.id).where(
        Interaction.post_id == target.post_id, Interaction.kind == kind, Interaction.actor_id == actor.id,
        col(Interaction.status) != recorder.Status.DELETED.value)).first()
    if existing is not None:
        return Ignored("already counted")
    now = services.clock.now()
    recorder.record_reaction(
        session, kind=kind, author=_author(actor), post_id=target.post_id, activity_ap_id=d.activity["id"],
        published_at=min(parse_time(d.activity.get("published"), now), now), raw=json.dumps(d.activity)[:20_000],
    )
    return PROCESSED


def apply_undo_reaction(tx: Tx, d: Delivery) -> Outcome:
    session, services = tx.session, tx.services
    inner = d.activity.get("object")
    inner_id = id_of(inner)
    item = session.exec(select(Interaction).where(Interaction.activity_ap_id == inner_id)).first() if inner_id else None
    if item is None and isinstance(inner, dict):  # fall back to (actor, object)
        target = find_target(session, services, id_of(inner.get("object")), tx.live_posts)
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
            mark(tx, inner_id, d.actor, "undone")
        return Ignored("unknown reaction (marker kept)")
    owner = session.get(Actor, item.actor_id) if item.actor_id else None
    if owner is None or owner.ap_id != d.actor:
        raise Refused(403, "Refused: only the actor can undo their reaction.")
    session.delete(item)
    return PROCESSED


CREATE = Steps(prepare_create, apply_create, flush_first=False)  # find_target flushes when it must
UPDATE = Steps(prepare_update, apply_update)
REACTION = Steps(prepare_reaction, apply_reaction)
