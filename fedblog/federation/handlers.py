"""The dispatch table: activity type -> Handler. Unknown types are stored as "ignored"."""

from __future__ import annotations

from sqlmodel import Session

from fedblog.federation import conversations, follows
from fedblog.federation.inbox import Apply, Delivery, Handler, id_of, no_preparation
from fedblog.services import Services
from fedblog.store import interactions as interaction_store


def _ignore(reason: str) -> Apply:
    def apply(session: Session, services: Services, d: Delivery) -> str:
        return "ignored: " + reason

    return apply


def _inner_type(d: Delivery) -> str | None:
    inner = d.activity.get("object")
    return inner.get("type") if isinstance(inner, dict) and isinstance(inner.get("type"), str) else None


def apply_undo(session: Session, services: Services, d: Delivery) -> str:
    """Undo names its target embedded (typed) or by id; an id is looked up among reactions first."""
    inner_type = _inner_type(d)
    if inner_type in ("Like", "Announce"):
        return conversations.apply_undo_reaction(session, services, d)
    if (
        inner_type is None
        and interaction_store.get_by_activity_id(session, id_of(d.activity.get("object")) or "") is not None
    ):
        return conversations.apply_undo_reaction(session, services, d)
    return follows.apply_undo_follow(session, services, d)


def apply_delete(session: Session, services: Services, d: Delivery) -> str:
    if id_of(d.activity.get("object")) == d.actor:
        return follows.apply_delete_actor(session, services, d)
    return conversations.apply_delete_object(session, services, d)


def build_handlers() -> dict[str, Handler]:
    return {
        "Follow": follows.FOLLOW,
        "Undo": Handler(no_preparation, apply_undo),
        "Delete": Handler(no_preparation, apply_delete),
        "Create": conversations.CREATE,
        "Update": conversations.UPDATE,
        "Like": conversations.REACTION,
        "Announce": conversations.REACTION,
        "Accept": Handler(no_preparation, _ignore("this blog follows no one")),
        "Reject": Handler(no_preparation, _ignore("this blog follows no one")),
    }
