"""The admin's moderation actions: approve, reject, block (first-contact moderation).

The rules themselves live in blog/rules.py and the statuses and their transitions in
blog/interactions.py, shared by every channel; these functions keep their names and signatures
for the command line and the admin pages. Blocks are checked before any key is fetched.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from fedblog.blog.interactions import Status, change_status
from fedblog.blog.rules import add_rule, block_targets, is_approved, normalise_target, targets
from fedblog.store.tables import Actor, Interaction, ModerationRule

__all__ = ["add_rule", "approve", "block", "block_targets", "is_approved", "list_pending", "normalise_target",
           "reject"]


def list_pending(session: Session) -> list[Interaction]:
    stmt = select(Interaction).where(Interaction.status == Status.PENDING.value).order_by(
        col(Interaction.published_at))
    return list(session.exec(stmt).all())


def approve(session: Session, interaction_id: int, now: datetime) -> Interaction:
    """Show the comment and trust its author from now on (their next replies are not held)."""
    item = _get(session, interaction_id)
    change_status(item, Status.VISIBLE)
    session.add(item)
    actor = session.get(Actor, item.actor_id) if item.actor_id else None
    if actor is not None:
        add_rule(session, "approve", actor.ap_id, now)
    return item


def reject(session: Session, interaction_id: int) -> Interaction:
    item = _get(session, interaction_id)
    change_status(item, Status.HIDDEN)
    session.add(item)
    return item


def block(session: Session, target: str, now: datetime) -> tuple[ModerationRule, int]:
    """Block an actor or a domain: future activities are refused, existing ones hidden."""
    rule = add_rule(session, "block", target, now)
    hidden = 0
    shown = (Status.VISIBLE.value, Status.PENDING.value)
    for item in session.exec(select(Interaction).where(col(Interaction.status).in_(shown))).all():
        author = item.author_url or ""
        actor = session.get(Actor, item.actor_id) if item.actor_id else None
        if any(t == rule.target for t in targets(actor.ap_id if actor else author)) if (actor or author) else False:
            change_status(item, Status.HIDDEN)
            session.add(item)
            hidden += 1
    return rule, hidden


def _get(session: Session, interaction_id: int) -> Interaction:
    item = session.get(Interaction, interaction_id)
    if item is None:
        raise LookupError(f"no comment with id {interaction_id}: see 'fedblog moderation list'")
    return item
