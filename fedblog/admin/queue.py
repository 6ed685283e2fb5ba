"""The moderation queue of the admin area: pending items of every channel, actions, rules.

Channel-agnostic on purpose: every Interaction row with status ``pending`` is listed, whatever its
``kind`` and ``via`` (fediverse replies today; web comments, pingbacks and Webmentions when they
arrive), so a new channel shows up here without a change.

Plain synchronous functions: the web layer runs them through ``services.run_db``. Every status
change is passed on to ``federation.local_comments`` (through ``moderation.set_status``): approving
a web comment or linkback publishes it, hiding, spamming or deleting a published one sends its
``Delete``. Rules about an author name their actor (a web commenter's guest included); a domain
block of a web comment or linkback names the author's own site, never the blog's domain.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from fedblog.activitypub.origin import host_of, normalise_host
from fedblog.blog.interactions import Status
from fedblog.blog.markup import html_to_text
from fedblog.federation import moderation
from fedblog.services import Services
from fedblog.store.db import session_scope
from fedblog.store.tables import Actor, Interaction, ModerationRule, Post

PER_PAGE = 50
ACTIONS = ("approve", "spam", "delete")
MAX_CSV_ROWS = 20_000  # Mastodon's own limit for this file (Admin::Import::ROWS_PROCESSING_LIMIT)


@dataclass(frozen=True)
class QueueItem:
    id: int
    kind: str
    via: str
    author_name: str
    author_url: str | None
    author_handle: str | None
    actor_ap_id: str | None
    where_from: str
    post_title: str
    post_slug: str
    excerpt: str
    published_at: datetime


@dataclass(frozen=True)
class QueuePage:
    total: int
    items: list[QueueItem]
    page: int
    last_page: int
    rules: list[ModerationRule]


_QUEUE = (
    sa_select(col(Interaction.id), col(Interaction.kind), col(Interaction.via), col(Interaction.author_name),
              col(Interaction.author_url), col(Interaction.author_handle), col(Interaction.content_html),
              col(Interaction.title), col(Interaction.source_url), col(Interaction.published_at),
              col(Post.title).label("post_title"), col(Post.slug), col(Actor.ap_id).label("actor_ap_id"),
              col(Actor.is_local).label("actor_is_local"))
    .join(Post, col(Post.id) == col(Interaction.post_id))
    .outerjoin(Actor, col(Actor.id) == col(Interaction.actor_id))
    .where(col(Interaction.status) == "pending")
    .order_by(col(Interaction.published_at).desc(), col(Interaction.id).desc())
)


def _excerpt(row: Any) -> str:
    text = html_to_text(row.content_html or "") or (row.title or "") or (row.source_url or "")
    return text if len(text) <= 280 else text[:279] + "…"


def load_queue(services: Services, page: int) -> QueuePage:
    """One page of pending items, newest first, with the rules: three queries whatever the page size."""
    with Session(services.engine) as session:
        total = session.exec(select(func.count()).select_from(Interaction).where(Interaction.status == "pending")).one()
        last_page = max(1, -(-total // PER_PAGE))
        rows = session.connection().execute(_QUEUE.offset((page - 1) * PER_PAGE).limit(PER_PAGE)).all()
        rules = list(session.exec(select(ModerationRule).order_by(col(ModerationRule.action),
                                                                  col(ModerationRule.target))).all())
    items = [
        QueueItem(
            id=r.id, kind=r.kind, via=r.via, author_name=r.author_name, author_url=r.author_url,
            author_handle=r.author_handle, actor_ap_id=r.actor_ap_id,
            where_from=host_of((None if r.actor_is_local else r.actor_ap_id) or r.author_url or r.source_url or "")
            or r.via,
            post_title=r.post_title, post_slug=r.slug, excerpt=_excerpt(r), published_at=r.published_at,
        )
        for r in rows
    ]
    return QueuePage(total, items, page, last_page, rules)


def _author_of(session: Session, item: Interaction) -> str | None:
    """Who a rule about this item's author names: its fediverse actor, else its author's URL."""
    return moderation.rule_subject(session, item)


def act(services: Services, action: str, ids: list[int]) -> int:
    """Approve, spam or delete these items, in one transaction; the number changed.

    approve: shown, and its author trusted from now on (the same as ``fedblog moderation approve``).
    spam: status ``spam`` (never shown) and its fediverse author blocked: their other items are
    hidden and their next activities refused before any key fetch.
    delete: status ``deleted`` and its text dropped, like a Delete from its author.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}: use one of {', '.join(ACTIONS)}")
    now = services.clock.now()
    changed = 0
    with session_scope(services.engine) as session:
        for item in session.exec(select(Interaction).where(col(Interaction.id).in_(ids))).all():
            assert item.id is not None
            if action == "approve":
                moderation.approve(session, item.id, now, services)
            elif action == "delete":
                moderation.set_status(session, item, Status.DELETED, services)  # drops the text too
            else:
                author = _author_of(session, item) if item.actor_id else None
                if author:
                    _drop_rule(session, "approve", author)
                    moderation.block(session, author, now, services)
                moderation.set_status(session, item, Status.SPAM, services)
            changed += 1
    return changed


def _drop_rule(session: Session, action: str, target: str) -> None:
    for rule in session.exec(select(ModerationRule).where(
            ModerationRule.action == action, ModerationRule.target == moderation.normalise_target(target))).all():
        session.delete(rule)
    session.flush()


def _item_and_author(session: Session, item_id: int, verb: str) -> tuple[Interaction, str]:
    """The queue item and who a rule about its author names, or LookupError saying why not."""
    item = session.get(Interaction, item_id)
    if item is None:
        raise LookupError("There is no such item (it may have been handled already).")
    author = _author_of(session, item)
    if not author:
        raise LookupError(f"This item has no author address to {verb}.")
    return item, author


def always_approve(services: Services, item_id: int) -> tuple[str, int]:
    """An approve rule for this item's author, then every pending item of theirs is shown."""
    now = services.clock.now()
    with session_scope(services.engine) as session:
        item, author = _item_and_author(session, item_id, "trust")
        rule = moderation.add_rule(session, "approve", author, now)
        stmt = select(Interaction).where(Interaction.status == "pending")
        stmt = stmt.where(Interaction.actor_id == item.actor_id) if item.actor_id else stmt.where(
            Interaction.author_url == item.author_url)
        shown = 0
        for other in session.exec(stmt).all():
            moderation.set_status(session, other, Status.VISIBLE, services)
            shown += 1
        return rule.target, shown


def block_author(services: Services, item_id: int, scope: str) -> tuple[str, int]:
    """Block this item's author (``actor``) or their whole domain (``domain``), as the CLI does."""
    now = services.clock.now()
    with session_scope(services.engine) as session:
        item, author = _item_and_author(session, item_id, "block")
        # a guest's or site's domain is its author's site, not the blog's (every guest id is on it)
        target = author if scope == "actor" else moderation.author_domain(session, item)
        if not target:
            raise LookupError("This item's author has no domain to block.")
        _drop_rule(session, "approve", author)
        rule, hidden = moderation.block(session, target, now, services)
        return rule.target, hidden


def block_target(services: Services, target: str) -> tuple[str, int]:
    with session_scope(services.engine) as session:
        rule, hidden = moderation.block(session, target, services.clock.now(), services)
        return rule.target, hidden


def remove_rule(services: Services, rule_id: int) -> str | None:
    """Delete one rule; its target, or None if there was none. Hidden items stay hidden."""
    with session_scope(services.engine) as session:
        rule = session.get(ModerationRule, rule_id)
        if rule is None:
            return None
        session.delete(rule)
        return f"{rule.action} {rule.target}"


@dataclass
class CsvReport:
    added: int = 0
    skipped: int = 0  # already blocked
    invalid: int = 0
    examples: list[str] | None = None


def parse_domain_blocks(data: bytes) -> tuple[list[str], list[str]]:
    """Domains from a Mastodon domain-block export, and the lines that are not domains.

    Two formats, as Mastodon reads them (app/controllers/admin/export_domain_blocks_controller.rb
    and app/models/admin/import.rb): a CSV whose first row is the header
    ``#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate`` (only
    ``#domain`` is used here: every severity becomes a block, since a blog has no "limit"), or the
    older plain list, one domain per line, no header.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError("The file is not UTF-8 text: export it again from Mastodon "
                         "(Moderation → Federation).") from None
    rows = list(csv.reader(io.StringIO(text)))
    if len(rows) > MAX_CSV_ROWS + 1:
        raise ValueError(f"The file has more than {MAX_CSV_ROWS} rows: split it.")
    column = 0
    if rows and rows[0] and rows[0][0].strip().startswith("#"):
        header = [h.strip() for h in rows[0]]
        if "#domain" not in header:
            raise ValueError("The CSV header has no #domain column: this is not a Mastodon domain-block export.")
        column, rows = header.index("#domain"), rows[1:]
    domains, invalid = [], []
    for row in rows:
        raw = row[column].strip() if len(row) > column else ""
        if not raw and not any(c.strip() for c in row):
            continue  # blank line
        domain = valid_domain(raw)
        if domain is None:
            invalid.append(",".join(row)[:100])
        else:
            domains.append(domain)
    return domains, invalid


def valid_domain(raw: str) -> str | None:
    if not raw or "/" in raw or " " in raw or "*" in raw or len(raw) > 253:
        return None  # Mastodon's obfuscated entries ("exa*ple.com") cannot be matched: invalid here
    try:
        host = normalise_host(raw)
    except (ValueError, UnicodeError):
        return None
    labels = host.split(".")
    if len(labels) < 2 or not all(labels) or not all(
            lab.replace("-", "").isalnum() and not lab.startswith("-") and not lab.endswith("-") for lab in labels):
        return None
    return host


def import_domain_blocks(services: Services, data: bytes) -> CsvReport:
    domains, invalid = parse_domain_blocks(data)
    report = CsvReport(invalid=len(invalid), examples=invalid[:5])
    now = services.clock.now()
    added: set[str] = set()
    with session_scope(services.engine) as session:
        existing = set(session.exec(select(ModerationRule.target).where(ModerationRule.action == "block")).all())
        for domain in dict.fromkeys(domains):
            if domain in existing:
                report.skipped += 1
                continue
            moderation.add_rule(session, "block", domain, now)
            existing.add(domain)
            added.add(domain)
            report.added += 1
        report.skipped += len(domains) - len(dict.fromkeys(domains))
        if added:
            _hide_blocked(session, services, added)
    return report


def _hide_blocked(session: Session, services: Services, targets: set[str]) -> None:
    """Hide what the newly blocked domains' actors left here: one pass, not one per domain."""
    rows = session.exec(select(Interaction, Actor.ap_id, Actor.is_local)
                        .outerjoin(Actor, col(Actor.id) == col(Interaction.actor_id))
                        .where(col(Interaction.status).in_(("visible", "pending")))).all()
    for item, actor_ap_id, is_local in rows:
        author = (None if is_local else actor_ap_id) or item.author_url
        if author and targets.intersection(moderation.block_targets([author])):
            moderation.set_status(session, item, Status.HIDDEN, services)
