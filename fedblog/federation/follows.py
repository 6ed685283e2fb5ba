"""Follow, Undo(Follow), and Delete of an actor: the follower list."""

from __future__ import annotations

from sqlmodel import Session, col, delete, select

from fedblog.federation import outbox, serialize
from fedblog.federation.actors import ensure_actor
from fedblog.federation.inbox import Delivery, Handler, id_of, mark
from fedblog.services import Services
from fedblog.store.tables import Actor, Follower, Interaction


async def prepare_follow(services: Services, d: Delivery) -> None:
    if id_of(d.activity.get("object")) != services.urls.actor():
        d.notes["ignore"] = "the Follow is not for this blog"
        return
    actor = await ensure_actor(services, d.actor, services.remote)
    d.notes["inbox"] = actor.inbox
    d.notes["shared_inbox"] = actor.shared_inbox


def apply_follow(session: Session, services: Services, d: Delivery) -> str:
    if not d.notes.get("inbox"):
        return "ignored: the follower has no inbox"
    now = services.clock.now()
    row = session.exec(select(Follower).where(Follower.actor_ap_id == d.actor)).first()
    if row is None:
        row = Follower(actor_ap_id=d.actor, inbox=d.notes["inbox"], created_at=now)
    row.inbox, row.shared_inbox, row.follow_ap_id = d.notes["inbox"], d.notes["shared_inbox"], d.activity["id"]
    session.add(row)
    # Accept every Follow, including repeats: Mastodon re-sends Follows and waits for an Accept.
    accept = serialize.accept_follow(d.activity, services.urls)
    outbox.enqueue(session, accept, [d.notes["inbox"]], now=now, object_ap_id=d.activity["id"])
    return "processed"


def apply_undo_follow(session: Session, services: Services, d: Delivery) -> str:
    """Undo(Follow): remove the follower; unknown Follow ids leave a marker for late arrivals."""
    inner = d.activity.get("object")
    follow_id = id_of(inner)
    row = session.exec(select(Follower).where(Follower.actor_ap_id == d.actor)).first()
    if row is not None and (row.follow_ap_id in (None, follow_id) or isinstance(inner, dict)):
        session.delete(row)
        return "processed"
    if follow_id:
        mark(session, services, follow_id, d.actor, "undone")
    return "ignored: no such follow (marker kept)"


def apply_delete_actor(session: Session, services: Services, d: Delivery) -> str:
    """The actor deleted their account: drop them as follower, their comments and reactions."""
    session.exec(delete(Follower).where(col(Follower.actor_ap_id) == d.actor))
    services.remote.forget_actor(d.actor)
    services.remote.forget_key(d.key_id)
    actor = session.exec(select(Actor).where(Actor.ap_id == d.actor)).first()
    if actor is not None:
        session.exec(delete(Interaction).where(col(Interaction.actor_id) == actor.id))
        session.delete(actor)
    return "processed"


FOLLOW = Handler(prepare_follow, apply_follow)
