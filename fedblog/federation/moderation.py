"""Blocks and approvals, for actors and whole domains (SECURITY.md §5.2 "first-contact").

A rule's target is an actor id (``https://host/users/x``) or a domain (``host``; it also covers
subdomains). Blocks are checked before any key is fetched.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlmodel import Session, col, select

from fedblog.net.origin import canonical_url, host_of, normalise_host
from fedblog.store.tables import Actor, Interaction, ModerationRule


def _domains(host: str) -> list[str]:
    parts = normalise_host(host).split(".")
    return [".".join(parts[i:]) for i in range(len(parts) - 1)] or [host]


def _targets(actor_or_url: str) -> list[str]:
    base = canonical_url(actor_or_url.split("#", 1)[0])  # hosts compare normalised (net/origin.py)
    host = host_of(base)
    return [base, *_domains(host)] if host else [base]


def _matches(session: Session, action: str, actor_or_url: str) -> bool:
    stmt = select(ModerationRule.id).where(
        ModerationRule.action == action, col(ModerationRule.target).in_(_targets(actor_or_url))
    )
    return session.exec(stmt).first() is not None


def block_targets(urls: Iterable[str]) -> list[str]:
    """The rule targets that would block any of ``urls``: each URL without fragment, its host and parents."""
    return sorted({t for u in urls for t in _targets(u)})


def is_approved(session: Session, actor_or_url: str) -> bool:
    return _matches(session, "approve", actor_or_url)


def normalise_target(value: str) -> str:
    """An actor URL without fragment, its host normalised; anything else is a domain, normalised
    (lower case, IDNA, no trailing dot)."""
    value = value.strip()
    if value.startswith(("https://", "http://")):
        return canonical_url(value.split("#", 1)[0])
    return normalise_host(value.lstrip("@").split("@")[-1])


def add_rule(session: Session, action: str, target: str, now: datetime) -> ModerationRule:
    target = normalise_target(target)
    existing = session.exec(
        select(ModerationRule).where(ModerationRule.action == action, ModerationRule.target == target)
    ).first()
    if existing is not None:
        return existing
    rule = ModerationRule(action=action, target=target, created_at=now)
    session.add(rule)
    session.flush()
    return rule


def list_pending(session: Session) -> list[Interaction]:
    stmt = select(Interaction).where(Interaction.status == "pending").order_by(col(Interaction.published_at))
    return list(session.exec(stmt).all())


def approve(session: Session, interaction_id: int, now: datetime) -> Interaction:
    """Show the comment and trust its author from now on (their next replies are not held)."""
    item = _get(session, interaction_id)
    item.status = "visible"
    session.add(item)
    actor = session.get(Actor, item.actor_id) if item.actor_id else None
    if actor is not None:
        add_rule(session, "approve", actor.ap_id, now)
    return item


def reject(session: Session, interaction_id: int) -> Interaction:
    item = _get(session, interaction_id)
    item.status = "hidden"
    session.add(item)
    return item


def block(session: Session, target: str, now: datetime) -> tuple[ModerationRule, int]:
    """Block an actor or a domain: future activities are refused, existing ones hidden."""
    rule = add_rule(session, "block", target, now)
    hidden = 0
    for item in session.exec(select(Interaction).where(col(Interaction.status).in_(("visible", "pending")))).all():
        author = item.author_url or ""
        actor = session.get(Actor, item.actor_id) if item.actor_id else None
        if any(t == rule.target for t in _targets(actor.ap_id if actor else author)) if (actor or author) else False:
            item.status = "hidden"
            session.add(item)
            hidden += 1
    return rule, hidden


def _get(session: Session, interaction_id: int) -> Interaction:
    item = session.get(Interaction, interaction_id)
    if item is None:
        raise LookupError(f"no comment with id {interaction_id}: see 'fedblog moderation list'")
    return item
