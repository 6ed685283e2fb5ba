"""Follow, Undo(Follow), and Delete of an actor: the follower list."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import col, delete, select

from fedblog.federation import outbox, serialize
from fedblog.federation.actors import ensure_actor
from fedblog.federation.contract import PROCESSED, Delivery, Ignored, Outcome, Steps, Tx, id_of
from fedblog.federation.guests import find_local
from fedblog.federation.markers import mark
from fedblog.services import Services
from fedblog.store.tables import Actor, Follower, Interaction
from fedblog.urls import guest_ref


@dataclass(frozen=True)
class FollowerInboxes:
    """Where the new follower receives our activities."""

    inbox: str | None
    shared_inbox: str | None
    guest: int | None = None  # the Follow is of this guest or site actor (its row id): it is rejected


async def prepare_follow(services: Services, d: Delivery) -> FollowerInboxes | Ignored:
    target = id_of(d.activity.get("object"))
    guest = services.urls.match_guest(target) if target is not None and "#" not in target else None
    if target != services.urls.actor() and guest is None:
        return Ignored("the Follow is not for this blog")
    actor = await ensure_actor(services, d.actor, services.remote)
    return FollowerInboxes(actor.inbox, actor.shared_inbox, guest)


def apply_follow(tx: Tx, d: Delivery, to: FollowerInboxes) -> Outcome:
    if not to.inbox:
        return Ignored("the follower has no inbox")
    if to.guest is not None:
        return _reject_guest_follow(tx, d, to.inbox, to.guest)
    session, services = tx.session, tx.services
    now = services.clock.now()
    row = session.exec(select(Follower).where(Follower.actor_ap_id == d.actor)).first()
    if row is None:
        row = Follower(actor_ap_id=d.actor, inbox=to.inbox, created_at=now)
    row.inbox, row.shared_inbox, row.follow_ap_id = to.inbox, to.shared_inbox, d.activity["id"]
    session.add(row)
    # Accept every Follow, including repeats: Mastodon re-sends Follows and waits for an Accept.
    accept = serialize.accept_follow(d.activity, services.urls)
    outbox.enqueue(session, accept, [to.inbox], now=now, object_ap_id=d.activity["id"])
    return PROCESSED


def _reject_guest_follow(tx: Tx, d: Delivery, inbox: str, guest: int) -> Outcome:
    """A guest or site actor cannot be followed (it posts only its comments, into the blog's threads):
    it answers with a Reject (ActivityPub §7.7) embedding the Follow, sent and signed as itself, and
    nothing is stored as a follower. Mastodon then drops its pending follow request."""
    if find_local(tx.session, guest) is None:
        return Ignored("no such guest or site actor here")
    ref = guest_ref(guest)
    reject = serialize.reject_follow(d.activity, tx.services.urls, ref)
    outbox.enqueue(tx.session, reject, [inbox], now=tx.services.clock.now(), object_ap_id=d.activity["id"], actor=ref)
    return PROCESSED


def apply_undo_follow(tx: Tx, d: Delivery) -> Outcome:
    """Undo(Follow): remove the follower; unknown Follow ids leave a marker for late arrivals."""
    inner = d.activity.get("object")
    follow_id = id_of(inner)
    session = tx.session
    if isinstance(inner, dict) and tx.services.urls.match_guest(id_of(inner.get("object")) or "") is not None:
        return Ignored("the Follow was of a guest or site actor, which keeps no followers")
    row = session.exec(select(Follower).where(Follower.actor_ap_id == d.actor)).first()
    if row is not None and (row.follow_ap_id in (None, follow_id) or isinstance(inner, dict)):
        session.delete(row)
        return PROCESSED
    if follow_id:
        mark(tx, follow_id, d.actor, "undone")
    return Ignored("no such follow (marker kept)")


def apply_delete_actor(tx: Tx, d: Delivery) -> Outcome:
    """The actor deleted their account: drop them as follower, their comments and reactions."""
    session, services = tx.session, tx.services
    session.exec(delete(Follower).where(col(Follower.actor_ap_id) == d.actor))
    services.remote.forget_actor(d.actor)
    services.remote.forget_key(d.key_id)
    actor = session.exec(select(Actor).where(Actor.ap_id == d.actor)).first()
    if actor is not None:
        session.exec(delete(Interaction).where(col(Interaction.actor_id) == actor.id))
        session.delete(actor)
    return PROCESSED


FOLLOW = Steps(prepare_follow, apply_follow)
