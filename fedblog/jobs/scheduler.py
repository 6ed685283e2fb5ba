"""Scheduled posts: every ``EVERY`` seconds, publish the drafts whose ``scheduled_at`` has come.

A scheduled post is a draft with ``scheduled_at`` set (the editor, docs/editor.md). The check is
one query on the index over ``post.scheduled_at``; each due post is claimed with a conditional
UPDATE (``SET scheduled_at = NULL WHERE id = ? AND scheduled_at = ?``) in the transaction that
publishes it, so with several worker processes on PostgreSQL only one publishes it, once. It then
goes out through the editor's publish path: the Create and its deliveries are written in that same
transaction, and the delivery worker sends them.
"""

from __future__ import annotations

import asyncio
import logging

from sqlmodel import Session

from fedblog.admin.editor import publish_scheduled
from fedblog.services import Services
from fedblog.store import media as media_store

log = logging.getLogger("fedblog.scheduler")
EVERY = 15.0  # seconds between checks: a scheduled post goes out at most this late
ERROR_BACKOFF = 30.0


def publish_due(services: Services) -> int:
    """Publish every due scheduled post (blocking: run it through services.run_db). Returns how many."""
    published = 0
    while True:
        with Session(services.engine) as session:
            due = media_store.due_scheduled(session, services.clock.now())
        if not due:
            return published
        for post_id, at in due:
            if publish_scheduled(services, post_id, at) is not None:
                published += 1
                log.info("published scheduled post %s", post_id)
        if len(due) < 20:
            return published


async def run_once(services: Services) -> int:
    """One check, off the event loop (what ``fedblog worker --once`` and the loop below call)."""
    return await services.run_db(publish_due, services)


async def run_forever(services: Services, stop: asyncio.Event, every: float = EVERY) -> None:
    while not stop.is_set():
        pause = every
        try:
            await run_once(services)
        except Exception:  # a DB outage must not end scheduling for good: log, wait, retry
            log.exception("scheduled publishing failed; retrying in %.0f s", ERROR_BACKOFF)
            pause = ERROR_BACKOFF
        try:
            await asyncio.wait_for(stop.wait(), timeout=pause)
        except TimeoutError:
            pass
