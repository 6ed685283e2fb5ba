"""The admin's moderation actions: approve, reject, block (first-contact moderation).

The rules themselves live in blog/rules.py and the statuses and their transitions in
blog/interactions.py, shared by every channel; these functions keep their names and signatures
for the command line and the admin pages. Blocks are checked before any key is fetched.

Given the services, every change of status is passed on to ``local_comments.on_status_changed``: an
approved web comment or linkback is published, a published one that is hidden gets its ``Delete``.
A rule about a comment's author names its actor: a fediverse actor, or the guest a web comment is
moderated as (the form checks that id, so "always approve" and "block" follow the person). A
*domain* rule about a guest's or site's comment names the author's own site (``author_domain``),
never the blog's domain, which every guest id is on.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from fedblog.activitypub.origin import host_of
from fedblog.blog.interactions import Status, change_status
from fedblog.blog.rules import add_rule, block_targets, is_approved, normalise_target, targets
from fedblog.federation import local_comments
from fedblog.services import Services
from fedblog.store.tables import Actor, Interaction, ModerationRule

__all__ = ["add_rule", "approve", "block", "block_targets", "is_approved", "list_pending", "normalise_target",
           "reject", "rule_subject", "author_domain", "set_status"]


def rule_subject(session: Session, item: Interaction) -> str | None:
    """Who a rule about ``item``'s author names: its actor (fediverse, or local guest or site), else
    its author's URL."""
    actor = session.get(Actor, item.actor_id) if item.actor_id else None
    return actor.ap_id if actor is not None else item.author_url


def author_domain(session: Session, item: Interaction) -> str | None:
    """The domain a domain rule about ``item``'s author names: a fediverse actor's host; for a local
    guest or site (whose id is on the blog's own domain) the host of the author's site or the
    linking page; None when there is none."""
    actor = session.get(Actor, item.actor_id) if item.actor_id else None
    if actor is not None and not actor.is_local:
        return host_of(actor.ap_id)
    return host_of(item.author_url or item.source_url or "")


def _subjects(session: Session, item: Interaction) -> list[str]:
    """What a block may name for ``item``: its actor, and for a local guest or site its author's URL."""
    actor = session.get(Actor, item.actor_id) if item.actor_id else None
    if actor is None:
        return [item.author_url] if item.author_url else []
    return [actor.ap_id, *([item.author_url] if actor.is_local and item.author_url else [])]


def set_status(session: Session, item: Interaction, to: Status, services: Services | None) -> None:
    """``change_status`` and, with the services, publish or withdraw the local comment it concerns."""
    before = item.status
    change_status(item, to)
    session.add(item)
    if services is not None:
        local_comments.on_status_changed(session, services, item, before)


def list_pending(session: Session) -> list[Interaction]:
    stmt = select(Interaction).where(Interaction.status == Status.PENDING.value).order_by(
        col(Interaction.published_at))
    return list(session.exec(stmt).all())


def approve(session: Session, interaction_id: int, now: datetime, services: Services | None = None) -> Interaction:
    """Show the comment and trust its author from now on (their next replies are not held)."""
    item = _get(session, interaction_id)
    set_status(session, item, Status.VISIBLE, services)
    actor = session.get(Actor, item.actor_id) if item.actor_id else None
    if actor is not None:
        add_rule(session, "approve", actor.ap_id, now)
    return item


def reject(session: Session, interaction_id: int, services: Services | None = None) -> Interaction:
    item = _get(session, interaction_id)
    set_status(session, item, Status.HIDDEN, services)
    return item


def block(session: Session, target: str, now: datetime, services: Services | None = None) -> tuple[ModerationRule, int]:
    """Block an actor or a domain: future activities are refused, existing ones hidden."""
    rule = add_rule(session, "block", target, now)
    hidden = 0
    shown = (Status.VISIBLE.value, Status.PENDING.value)
    for item in session.exec(select(Interaction).where(col(Interaction.status).in_(shown))).all():
        if any(t == rule.target for subject in _subjects(session, item) for t in targets(subject)):
            set_status(session, item, Status.HIDDEN, services)
            hidden += 1
    return rule, hidden


def _get(session: Session, interaction_id: int) -> Interaction:
    item = session.get(Interaction, interaction_id)
    if item is None:
        raise LookupError(f"no comment with id {interaction_id}: see 'fedblog moderation list'")
    return item
