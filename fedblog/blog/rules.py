"""Moderation rules: blocks and approvals, for actors (or web authors) and whole domains.

A rule's target is an actor id or author URL (``https://host/users/x``) or a domain (``host``; it
also covers subdomains). Hosts compare normalised (activitypub/origin.py: lower case, IDNA, no trailing dot,
RFC 3986 §6.2.2). Every channel asks the same rules: the fediverse inbox, web comments, linkbacks.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlmodel import Session, col, select

from fedblog.activitypub.origin import canonical_url, host_of, normalise_host
from fedblog.store.tables import ModerationRule


def _domains(host: str) -> list[str]:
    parts = normalise_host(host).split(".")
    return [".".join(parts[i:]) for i in range(len(parts) - 1)] or [host]


def targets(actor_or_url: str) -> list[str]:
    """The rule targets that cover ``actor_or_url``: itself without fragment, its host and parent domains."""
    base = canonical_url(actor_or_url.split("#", 1)[0])
    host = host_of(base)
    return [base, *_domains(host)] if host else [base]


def matches(session: Session, action: str, actor_or_url: str) -> bool:
    stmt = select(ModerationRule.id).where(
        ModerationRule.action == action, col(ModerationRule.target).in_(targets(actor_or_url))
    )
    return session.exec(stmt).first() is not None


def block_targets(urls: Iterable[str]) -> list[str]:
    """The rule targets that would block any of ``urls``: each URL without fragment, its host and parents."""
    return sorted({t for u in urls for t in targets(u)})


def is_approved(session: Session, actor_or_url: str) -> bool:
    return matches(session, "approve", actor_or_url)


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
