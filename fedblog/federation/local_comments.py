"""Local comments as activities: web comments, pingbacks, Webmentions and imported comments become
activities of local guest and site actors, signed with FEP-8b32 integrity proofs.

Interface shared by every channel (the web form, the linkback verifier, imports, the admin queue):
the channel records the interaction with ``fedblog.blog.interactions`` and then, in the same
transaction, calls ``publish``. Moderation decides *when* it goes out: an item recorded as pending
is published when the admin approves it (``on_status_changed``). docs/comments-as-activities.md
describes the model; ``comment_docs`` builds the documents.

What is stored, on the ``interaction`` row of a published item:

* ``actor_id``: its guest (``Person``) or site (``Service``) actor (``federation/guests.py``);
* ``ap_id`` = ``/comments/{id}``, the id of its Note (or Like/Announce): replies thread under it;
* ``raw``: the signed Note (or Like/Announce) exactly as served at that id;
* ``evidence``: its proof, as JSON (the same field holds a fediverse reply's evidence);
* ``activity_ap_id``: its ``Create`` (or the Like/Announce itself), stored in ``activity`` with
  the guest as ``actor``, so ``/activities/...`` serves it and the worker signs as the guest.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, insert, or_
from sqlmodel import Session, col, select

from fedblog.activitypub import keys as keylib
from fedblog.activitypub import vocab
from fedblog.blog import demo
from fedblog.clock import utc
from fedblog.federation import comment_docs as docs
from fedblog.federation import guests, outbox
from fedblog.federation.keys import UnknownActorKeys
from fedblog.services import Services
from fedblog.store import interactions as interaction_store
from fedblog.store.db import session_scope
from fedblog.store.tables import Activity, Actor, Delivery, ImportItem, Interaction, LocalKey, Post
from fedblog.urls import guest_ref

VISIBLE = "visible"
REMOVED = ("hidden", "spam", "deleted")
GUEST_KINDS = ("comment",)  # by a person: a guest actor (web form, imports)


def create_id(services: Services, item_id: int) -> str:
    """The id of a comment's Create: stable, so publishing twice stores one activity."""
    return services.urls.activity(f"comment-{item_id}")


def delete_id(services: Services, item_id: int) -> str:
    return services.urls.activity(f"comment-{item_id}-delete")  # never removed by ``_forget``


def is_published(services: Services, item: Interaction) -> bool:
    return item.id is not None and item.ap_id == services.urls.comment(item.id) and item.via != "activitypub"


@dataclass
class _Memo:
    """What one ``publish`` call, or a whole batch of imports, looks up once: posts, actors, keys.
    ``activities``: for a quiet batch, the activity rows to insert at once at its end."""

    posts: dict[int, Post | None] = field(default_factory=dict)
    actors: dict[tuple[str | None, ...], Actor] = field(default_factory=dict)
    keys: dict[str, Ed25519PrivateKey] = field(default_factory=dict)
    activities: list[dict[str, Any]] | None = None


def _ed25519(session: Session, services: Services, ref: str, memo: _Memo | None = None) -> Ed25519PrivateKey:
    """The actor's Ed25519 key, read in this session: a guest made in this transaction has its key
    here only (the key ring reads through its own connection)."""
    if memo is not None and ref in memo.keys:
        return memo.keys[ref]
    cached = services.keys.cached_for(ref)
    if cached is not None:
        return cached.ed25519
    row = session.exec(select(LocalKey).where(LocalKey.owner == ref)).first()
    if row is None:
        raise UnknownActorKeys(ref)
    key = keylib.load_private_key(row.ed25519_private_pem)
    assert isinstance(key, Ed25519PrivateKey)
    if memo is not None:
        memo.keys[ref] = key
    return key


def attach_actor(session: Session, services: Services, item: Interaction, *, email: str | None = None,
                 memo: _Memo | None = None, again: bool = False) -> Actor | None:
    """The local actor of ``item`` (made on first use) and set as its ``actor_id``; None for what has
    none (a fediverse item, a linkback without a source URL).

    A web or imported comment is its commenter's guest (name + email, else name + website); a
    Webmention whose page gives an h-card author is that author's guest (``guests.author_actor``:
    name, url, photo); a pingback, trackback or Webmention without one is the site of its source
    page, named as the page names its site. ``again``: a Webmention sent again is attributed anew."""
    if item.via == "activitypub":
        return None
    if item.actor_id is not None and not (again and item.via == "webmention"):
        known = session.get(Actor, item.actor_id)
        return known if known is not None and known.is_local else None
    now, memo = services.clock.now(), memo or _Memo()
    if item.kind in GUEST_KINDS and item.via in ("form", "import"):
        name, mail = item.author_name or "Anonymous", email or item.author_email
        found = memo.actors.get(("guest", name, mail, item.author_url))
        actor = found or guests.guest_actor(session, services, name=name, email=mail, website=item.author_url,
                                            now=now)
        memo.actors[("guest", name, mail, item.author_url)] = actor
    elif item.source_url and (author := _evidence_field(item, "author") if item.via == "webmention" else None):
        actor = guests.author_actor(session, services, name=_text(author.get("name")), url=_text(author.get("url")),
                                    photo=_text(author.get("photo")), source_url=item.source_url, now=now)
    elif item.source_url and (item.kind in docs.LINKBACK_KINDS or item.via == "webmention"):
        origin = guests.site_origin(item.source_url)
        site_name = item.author_name if item.kind in docs.LINKBACK_KINDS else _text(_evidence_field(item, "site_name"))
        actor = memo.actors.get(("site", origin)) or guests.site_actor(
            session, services, source_url=item.source_url, name=site_name or None, now=now)
        memo.actors[("site", origin)] = actor
    else:
        return None
    item.actor_id = actor.id
    session.add(item)
    return actor


def _remote_author(session: Session, services: Services, parent: Interaction) -> tuple[str, str | None, str | None]:
    """(actor id, handle, inbox) of a fediverse author of ``parent``, or ('', None, None)."""
    actor = session.get(Actor, parent.actor_id) if parent.actor_id is not None else None
    if actor is None or actor.is_local or parent.via != "activitypub":
        return "", None, None
    inbox = actor.shared_inbox or actor.inbox
    if not inbox:
        snapshot = services.remote.actor(actor.ap_id)
        inbox = (snapshot.shared_inbox or snapshot.inbox) if snapshot is not None else None
    return actor.ap_id, actor.handle, inbox


def publish(session: Session, services: Services, item: Interaction, *, quiet: bool = False,
            email: str | None = None) -> None:
    """Give the recorded ``item`` (a web comment, pingback, Webmention or import, already flushed:
    it has an id) its local actor and, when it is visible and ``item.federated``, its activity:
    ``Create(Note)``, ``Like`` or ``Announce`` with an integrity proof, served at its permalink and
    listed in the post's ``replies`` and ``context``. ``quiet``: never delivered (imports, the demo);
    otherwise it is delivered only to the fediverse authors of what it answers, never to followers.
    ``email``: the commenter's email when it is not on the row (a WordPress import keeps it apart).
    """
    _publish(session, services, item, quiet=quiet, email=email, memo=_Memo())
    session.flush()


def refresh(session: Session, services: Services, item: Interaction) -> None:
    """What a published item says changed (a Webmention sent again, W3C Webmention §3.2.4): its
    object is signed again and served, and an ``Update`` of the Note is stored (never delivered: a
    linkback goes to no one). An item not published yet is published, as ``publish`` would."""
    _publish(session, services, item, quiet=True, email=None, memo=_Memo(), again=True)
    session.flush()


def _evidence_with(item: Interaction, proof: dict[str, Any]) -> str:
    """The item's evidence with its integrity proof added: a linkback's verification record stays."""
    try:
        known = json.loads(item.evidence) if item.evidence else {}
    except ValueError:
        known = {"received": item.evidence}
    if not isinstance(known, dict):
        known = {"received": known}
    return json.dumps({**known, "integrity_proof": proof}, ensure_ascii=False, separators=(",", ":"))


def _evidence_field(item: Interaction, name: str) -> Any:
    """What a linkback's verifier kept in ``evidence`` (``excerpt``, ``site_name``, the h-card ``author``)."""
    try:
        known = json.loads(item.evidence) if item.evidence else None
    except ValueError:
        return None
    return known.get(name) if isinstance(known, dict) else None


def _text(value: Any) -> str | None:
    return value or None if isinstance(value, str) else None


def _excerpt(item: Interaction) -> str:
    """A linkback's excerpt as its verifier kept it (``evidence.excerpt``), for a Note with no text."""
    return (_text(_evidence_field(item, "excerpt")) or "")[:600]


def _answered(session: Session, services: Services, item: Interaction) -> Interaction | None:
    """The nearest ancestor of ``item`` that ActivityPub clients can fetch (a visible fediverse reply
    or a visible published comment), else None: the Note answers the post."""
    parent, hops = session.get(Interaction, item.parent_id) if item.parent_id is not None else None, 0
    while parent is not None and hops < 1000:
        if parent.status == VISIBLE and ((parent.via == "activitypub" and parent.ap_id) or (
                is_published(services, parent) and parent.raw)):
            return parent
        parent, hops = session.get(Interaction, parent.parent_id) if parent.parent_id is not None else None, hops + 1
    return None


def _forget(session: Session, services: Services, item_id: int, *, updates_only: bool) -> None:
    """Stop serving what an item's activities said: its earlier ``Update``s, or (its kind or author
    changed) every ``Create``, ``Update``, ``Like`` or ``Announce`` of it. Never delivered (a linkback
    goes to no one), so nothing else refers to them."""
    object_id, created = services.urls.comment(item_id), create_id(services, item_id)
    updates = col(Activity.ap_id).startswith(f"{created}-update-", autoescape=True)
    which = updates if updates_only else or_(updates, col(Activity.ap_id).in_((created, object_id)))
    session.execute(delete(Activity).where(col(Activity.object_ap_id) == object_id, which))


def _publish(session: Session, services: Services, item: Interaction, *, quiet: bool, email: str | None,
             memo: _Memo, again: bool = False) -> None:
    if not item.federated or item.id is None or item.via == "activitypub":
        return
    before = item.actor_id
    actor = attach_actor(session, services, item, email=email, memo=memo, again=again)
    if actor is None or actor.id is None or item.status != VISIBLE:
        return
    was_published = is_published(services, item)
    if was_published and not again:
        return
    shape = docs.shape_of(item.kind, item.via)
    if was_published and item.id is not None and (
            before != actor.id or (item.activity_ap_id == services.urls.comment(item.id)) != (shape != "note")):
        _forget(session, services, item.id, updates_only=False)  # kind or author changed: published anew
        was_published, item.ap_id, item.activity_ap_id = False, None, None
    if item.post_id not in memo.posts:
        memo.posts[item.post_id] = session.get(Post, item.post_id)
    post = memo.posts[item.post_id]
    if post is None or post.draft or post.deleted_at is not None:
        return  # a draft's comments stay private; published with the post's thread never
    urls, now, ref = services.urls, services.clock.now(), guest_ref(actor.id)
    parent = _answered(session, services, item)  # a hidden or unpublished comment is 404 to the fediverse
    post_ap_id = urls.post_id(post.ap_path)
    in_reply_to, mentions, inbox, cc = post_ap_id, [], None, [urls.actor()]
    if parent is not None and parent.id is not None:
        in_reply_to = parent.ap_id if parent.via == "activitypub" and parent.ap_id else urls.comment(parent.id)
        author_id, handle, inbox = _remote_author(session, services, parent)
        mentions = [docs.Mention(author_id, handle)] if author_id else []
        local = session.get(Actor, parent.actor_id) if parent.actor_id is not None and not author_id else None
        cc = [local.ap_id] if local is not None and local.is_local and local.type == "Person" else []
    object_id = urls.comment(item.id)
    linkback = item.kind in docs.LINKBACK_KINDS or item.via == "webmention"
    facts = docs.CommentFacts(
        id=object_id, actor=actor.ap_id, kind=item.kind, via=item.via, in_reply_to=in_reply_to, post_id=post_ap_id,
        context=urls.context(post_ap_id), replies=urls.replies(object_id),
        url=item.source_url if linkback and item.source_url else urls.comment_anchor(post.slug, item.id),
        published=item.published_at, content_html=item.content_html, title=item.title, source_url=item.source_url,
        author_name=item.author_name, author_url=item.author_url, mentions=mentions, blog_actor=urls.actor(),
        excerpt=_excerpt(item) if linkback else "", cc=cc)
    key, key_id = _ed25519(session, services, ref, memo), urls.ed25519_key_id_of(ref)
    if shape == "note":
        obj = docs.sign(docs.note(facts), key, key_id, now)
        activity_id = services.urls.activity(f"comment-{item.id}-update-{secrets.token_urlsafe(8)}") \
            if was_published else create_id(services, item.id)
        activity = docs.sign(docs.create(activity_id, obj, "Update" if was_published else "Create"), key, key_id, now)
    else:
        obj = activity = docs.sign(docs.reaction(facts, shape), key, key_id, now)
    if was_published and shape != "note":  # a Like or Announce is its own activity: its stored body follows
        stored = session.exec(select(Activity).where(Activity.ap_id == object_id)).first()
        if stored is not None:
            stored.body, stored.type = vocab.dumps(activity).decode(), activity["type"]
            session.add(stored)
    if not was_published:
        item.ap_id, item.activity_ap_id = object_id, activity["id"]
    item.raw = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    item.evidence = _evidence_with(item, {"scheme": "eddsa-jcs-2022", "object": object_id, "activity": activity["id"],
                                          "verificationMethod": key_id, "proof": obj["proof"]})
    session.add(item)
    if was_published and shape != "note":
        return
    if was_published:
        _forget(session, services, item.id, updates_only=True)  # only the newest Update is served
    # only a web comment answering a fediverse author goes out, to that author alone (never followers)
    deliver = not quiet and shape == "note" and item.via == "form" and inbox is not None
    if memo.activities is not None and not deliver:  # a quiet batch: one insert at its end
        memo.activities.append(dict(ap_id=activity["id"], type=activity["type"], object_ap_id=object_id,
                                    body=vocab.dumps(activity).decode(), created_at=now, actor=ref))
        return
    outbox.enqueue(session, activity, [inbox] if deliver and inbox else [], now=now, object_ap_id=object_id,
                   actor=ref)


def on_status_changed(session: Session, services: Services, item: Interaction, before: str) -> None:
    """After the admin moved ``item`` from ``before`` to its current status: publish it when it
    became visible for the first time, send a ``Delete`` when a published item is removed."""
    if item.status == before or item.via == "activitypub":
        return
    if item.status == VISIBLE:
        publish(session, services, item)
    elif item.status in REMOVED:
        withdraw(session, services, item)


def withdraw(session: Session, services: Services, item: Interaction) -> None:
    """A published item was hidden, marked as spam or deleted: its Create deliveries not yet tried
    are cancelled, and a ``Delete`` goes to every inbox that was (or may have been) sent it. Its
    permalink stops serving it; a deleted one loses its stored text."""
    if not is_published(services, item):
        return
    assert item.id is not None
    if item.status == "deleted":
        item.raw = None
        session.add(item)
    created = session.exec(select(Activity).where(Activity.ap_id == item.activity_ap_id)).first()
    if created is None:
        return
    now = services.clock.now()
    reached: list[str] = []
    for row in session.exec(select(Delivery).where(Delivery.activity_id == created.id)).all():
        idle = row.lease_until is None or utc(row.lease_until) < now
        if row.state == "pending" and idle:
            row.state, row.finished_at = "cancelled", now
            session.add(row)
        if row.attempts > 0 or row.state not in ("pending", "cancelled") or not idle:
            reached.append(row.inbox)
    if not reached or session.exec(select(Activity.id).where(Activity.ap_id == delete_id(services, item.id))).first():
        return
    number = created.actor.removeprefix("guest:")
    actor = session.get(Actor, int(number)) if created.actor.startswith("guest:") and number.isdigit() else None
    if actor is None or actor.id is None or item.ap_id is None:
        return
    ref = guest_ref(actor.id)
    body: dict[str, Any] = json.loads(created.body)
    doc = docs.delete(delete_id(services, item.id), actor.ap_id, item.ap_id, now, to=body.get("cc", []))
    signed = docs.sign(doc, _ed25519(session, services, ref), services.urls.ed25519_key_id_of(ref), now)
    outbox.enqueue(session, signed, sorted(set(reached)), now=now, object_ap_id=item.ap_id, actor=ref)


def object_json(services: Services, comment_id: int) -> tuple[int, dict[str, Any] | None]:
    """What ``/comments/{id}`` answers to ActivityPub clients: (200, the signed Note or activity)
    of a visible published comment (or an owner's reply) on a live post, (410, None) of one deleted
    after it was published or whose post was deleted, else (404, None). Blocking: run it through
    ``services.run_db``."""
    with Session(services.engine) as session:
        item = session.get(Interaction, comment_id)
        if item is None or item.ap_id != services.urls.comment(comment_id):
            return 404, None
        post = session.get(Post, item.post_id)
        if post is None or post.draft:
            return 404, None
        if post.deleted_at is not None:  # its thread went with it
            return 410, None
        if item.status == VISIBLE and item.raw:
            doc: dict[str, Any] = json.loads(item.raw)
            return 200, doc
        return (410, None) if item.status == "deleted" else (404, None)


def publish_imported(session: Session, services: Services, ids: Sequence[int]) -> int:
    """Publish imported interactions (the demo's, a WordPress import's) quietly: each becomes an
    activity of its guest or site actor, served and listed, never delivered. A WordPress
    commenter's email (kept apart, in ``import_item``) makes their guest. Returns how many were
    published. The caller commits."""
    if not ids:
        return 0
    emails = dict(session.exec(select(ImportItem.interaction_id, ImportItem.author_email).where(
        col(ImportItem.interaction_id).in_(ids), col(ImportItem.author_email).is_not(None))).all())
    published, memo = 0, _Memo(activities=[])
    items = session.exec(select(Interaction).where(col(Interaction.id).in_(ids)).order_by(
        col(Interaction.id))).all()  # parents (older, inserted first) before their replies
    with session.no_autoflush:  # the rows change together, flushed once
        for item in items:
            if item.via == "activitypub":
                continue
            before, item.federated = item.federated, True
            _publish(session, services, item, quiet=True, email=emails.get(item.id), memo=memo)
            if is_published(services, item):
                published += 1
            else:  # a draft's comment, a linkback without a source URL: it stays off the fediverse
                item.federated = before
    session.flush()
    if memo.activities:
        session.execute(insert(Activity), memo.activities)
    return published


def load_demo(session: Session, services: Services) -> Post | None:
    """The demo post (``blog.demo``) with its 43 comments and its pingback published quietly as
    guest and site activities; None if it was there already. The caller commits."""
    post = demo.load_demo(session, default_language=services.settings.language)
    if post is not None and post.id is not None:
        publish_imported(session, services, interaction_store.local_ids_for_post(session, post.id))
    return post


def publish_import_run(services: Services, imported_at: datetime, *, batch: int = 500) -> int:
    """After a WordPress import (``WpImporter`` started at ``imported_at``) has committed: publish the
    comments and linkbacks it brought, quietly, ``batch`` per transaction. Returns how many."""
    with Session(services.engine) as session:
        ids = interaction_store.imported_ids(session, imported_at)
    done = 0
    for start in range(0, len(ids), batch):
        with session_scope(services.engine) as session:
            done += publish_imported(session, services, ids[start:start + batch])
    return done
