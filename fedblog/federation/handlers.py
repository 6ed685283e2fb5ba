"""The dispatch table: activity type -> Handler. Unknown types are stored as "ignored"."""

from __future__ import annotations

from sqlmodel import Session

from fedblog.federation import follows
from fedblog.federation.inbox import Delivery, Handler, id_of
from fedblog.services import Services


async def _nothing(services: Services, d: Delivery) -> None:
    return None


def _ignore(reason: str):  # type: ignore[no-untyped-def]
    def apply(session: Session, services: Services, d: Delivery) -> str:
        return "ignored: " + reason

    return apply


def _inner_type(d: Delivery) -> str | None:
    inner = d.activity.get("object")
    return inner.get("type") if isinstance(inner, dict) and isinstance(inner.get("type"), str) else None


def apply_undo(session: Session, services: Services, d: Delivery) -> str:
    return follows.apply_undo_follow(session, services, d)


def apply_delete(session: Session, services: Services, d: Delivery) -> str:
    if id_of(d.activity.get("object")) == d.actor:
        return follows.apply_delete_actor(session, services, d)
    return "ignored: nothing of ours to delete"


def build_handlers() -> dict[str, Handler]:
    return {
        "Follow": follows.FOLLOW,
        "Undo": Handler(_nothing, apply_undo),
        "Delete": Handler(_nothing, apply_delete),
        "Accept": Handler(_nothing, _ignore("this blog follows no one")),
        "Reject": Handler(_nothing, _ignore("this blog follows no one")),
    }
