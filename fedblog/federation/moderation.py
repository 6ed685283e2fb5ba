"""Blocks and approvals, for actors and whole domains (SECURITY.md §5.2 "first-contact").

A rule's target is an actor id (``https://host/users/x``) or a domain (``host``; it also covers
subdomains). Blocks are checked before any key is fetched.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

from sqlmodel import Session, col, select

from fedblog.store.tables import ModerationRule


def _domains(host: str) -> list[str]:
    parts = host.lower().rstrip(".").split(".")
    return [".".join(parts[i:]) for i in range(len(parts) - 1)] or [host]


def _targets(actor_or_url: str) -> list[str]:
    base = actor_or_url.split("#", 1)[0]
    host = (urlsplit(base).hostname or "").lower()
    return [base, *_domains(host)] if host else [base]


def _matches(session: Session, action: str, actor_or_url: str) -> bool:
    stmt = select(ModerationRule.id).where(
        ModerationRule.action == action, col(ModerationRule.target).in_(_targets(actor_or_url))
    )
    return session.exec(stmt).first() is not None


def is_blocked(session: Session, actor_or_url: str) -> bool:
    return _matches(session, "block", actor_or_url)


def is_approved(session: Session, actor_or_url: str) -> bool:
    return _matches(session, "approve", actor_or_url)


def normalise_target(value: str) -> str:
    """An actor URL stays as is (without fragment); anything else is a domain, lowercased."""
    value = value.strip()
    if value.startswith(("https://", "http://")):
        return value.split("#", 1)[0]
    return value.lower().lstrip("@").rstrip(".").split("@")[-1]


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
