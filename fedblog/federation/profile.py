"""Tell followers when the blog's profile changed: ``Update(Person)``.

The name, description and avatar come from settings (changed by a restart with new settings) or
from the admin's profile page (``announce_actor``, at once, in the save's transaction). Mastodon
refreshes a remote profile when it receives an ``Update`` whose object is the actor itself
(Mastodon app/lib/activitypub/activity/update.rb ``update_account``: the object id must equal the
signer's actor id); otherwise followers keep the old name until their server re-fetches the actor
on its own. ActivityPub §7.3 (Update Activity) is the spec side.

So at start-up (``fedblog serve`` and ``fedblog init``) the actor document is fingerprinted and
compared with the fingerprint stored when it was last announced. If it changed, one
``Update(Person)`` to every follower's (shared) inbox is queued in the transactional outbox, in
the same transaction that stores the new fingerprint; the first run only stores it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from fedblog.activitypub import vocab
from fedblog.activitypub.context import PUBLIC
from fedblog.federation import outbox, serialize
from fedblog.services import Services
from fedblog.store.tables import BlogState
from fedblog.urls import Urls

FINGERPRINT_KEY = "actor_fingerprint"


@dataclass(frozen=True)
class ProfileSync:
    outcome: str  # "first run" | "unchanged" | "announced"
    inboxes: int = 0


def fingerprint(actor: dict[str, Any]) -> str:
    """SHA-256 of the actor document in canonical JSON (sorted keys): any public change shows."""
    canonical = json.dumps(actor, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def update_actor_activity(actor: dict[str, Any], urls: Urls, now: datetime) -> dict[str, Any]:
    """``Update`` with the whole actor embedded (under the actor's own @context), addressed publicly."""
    obj = {k: v for k, v in actor.items() if k != "@context"}
    return vocab.wrap(
        "Update", id=serialize.new_activity_id(urls), actor=urls.actor(), obj=obj, published=serialize.iso(now),
        to=[PUBLIC], cc=[urls.followers()], context=actor["@context"],
    )


def announce_profile_change(session: Session, services: Services) -> ProfileSync:
    """Compare the actor document with the one last announced; queue ``Update`` if it changed.

    Does not commit: the new fingerprint and the Update with its deliveries commit together.
    Safe when several processes start at once: only the one that moves the stored fingerprint
    (a compare-and-swap UPDATE) queues the Update.
    """
    site = services.site.load(session)  # what the admin saved, over the settings
    urls = services.urls
    return announce_actor(session, services, serialize.blog_actor(site, urls, services.keys.get()), urls)


def announce_actor(session: Session, services: Services, actor: dict[str, Any], urls: Urls, *,
                   announce_first: bool = False) -> ProfileSync:
    """Store the fingerprint of ``actor`` and queue its ``Update`` if it differs from the last one
    announced (not committed). The admin's profile save calls it in its own transaction
    (``announce_first``: a save is a change even before any fingerprint was stored), so the
    start-up check afterwards finds the same fingerprint and sends nothing more."""
    now = services.clock.now()
    current = fingerprint(actor)
    row = session.get(BlogState, FINGERPRINT_KEY)
    if row is None:  # first run, or the first run of a version that stores it: nothing to tell
        try:
            with session.begin_nested():
                session.add(BlogState(key=FINGERPRINT_KEY, value=current, updated_at=now))
        except IntegrityError:  # another process stored it first
            return ProfileSync("unchanged")
        if not announce_first:
            return ProfileSync("first run")
        return _queue_update(session, actor, urls, now)
    if row.value == current:
        return ProfileSync("unchanged")
    swapped = session.connection().execute(
        update(BlogState)
        .where(col(BlogState.key) == FINGERPRINT_KEY, col(BlogState.value) == row.value)
        .values(value=current, updated_at=now)
    )
    if swapped.rowcount != 1:  # another process announced this change
        return ProfileSync("unchanged")
    return _queue_update(session, actor, urls, now)


def _queue_update(session: Session, actor: dict[str, Any], urls: Urls, now: datetime) -> ProfileSync:
    inboxes = outbox.follower_inboxes(session)  # one per server: shared inboxes deduplicated
    if inboxes:
        outbox.enqueue(session, update_actor_activity(actor, urls, now), inboxes, now=now, object_ap_id=urls.actor())
    return ProfileSync("announced", len(inboxes))
