"""The dispatch table: activity type -> Handler. Unknown types are stored as "ignored"."""

from __future__ import annotations

from typing import Any

from fedblog.federation import conversations, follows
from fedblog.federation.contract import Delivery, Handler, Ignored, Outcome, Steps, Tx, id_of, no_preparation
from fedblog.store import interactions as interaction_store


def _ignore(reason: str) -> Steps[None]:
    def apply(tx: Tx, d: Delivery, prepared: None) -> Outcome:
        return Ignored(reason)

    return Steps(no_preparation, apply)


def _inner_type(d: Delivery) -> str | None:
    inner = d.activity.get("object")
    return inner.get("type") if isinstance(inner, dict) and isinstance(inner.get("type"), str) else None


def apply_undo(tx: Tx, d: Delivery, prepared: None) -> Outcome:
    """Undo names its target embedded (typed) or by id; an id is looked up among reactions first."""
    inner_type = _inner_type(d)
    if inner_type in ("Like", "Announce"):
        return conversations.apply_undo_reaction(tx, d)
    if (
        inner_type is None
        and interaction_store.get_by_activity_id(tx.session, id_of(d.activity.get("object")) or "") is not None
    ):
        return conversations.apply_undo_reaction(tx, d)
    return follows.apply_undo_follow(tx, d)


def apply_delete(tx: Tx, d: Delivery, prepared: None) -> Outcome:
    if id_of(d.activity.get("object")) == d.actor:
        return follows.apply_delete_actor(tx, d)
    return conversations.apply_delete_object(tx, d)


def build_handlers() -> dict[str, Handler[Any]]:
    return {
        "Follow": follows.FOLLOW,
        "Undo": Steps(no_preparation, apply_undo),
        "Delete": Steps(no_preparation, apply_delete),
        "Create": conversations.CREATE,
        "Update": conversations.UPDATE,
        "Like": conversations.REACTION,
        "Announce": conversations.REACTION,
        "Accept": _ignore("this blog follows no one"),
        "Reject": _ignore("this blog follows no one"),
    }
