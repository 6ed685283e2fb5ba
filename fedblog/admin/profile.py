"""The owner's profile and settings, and pinned posts: saved from /admin/profile.

A save stores the values (``blog_state``), and in the same transaction fingerprints the new
actor document and queues ``Update(Person)`` to every follower (fedblog.federation.profile), so a
restart afterwards finds nothing new to announce. Pinning queues ``Add``/``Remove`` with the
``featured`` collection as ``target``, which is what Mastodon sends for its own pins and applies
on receipt (Mastodon app/lib/activitypub/activity/add.rb and remove.rb ``add_featured``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sqlmodel import Session, col, select

from fedblog.activitypub import vocab
from fedblog.activitypub.context import PUBLIC
from fedblog.blog.images import StoredImage, store_image
from fedblog.blog.site import ImageRef, SiteProfile, merge
from fedblog.blog.wp_import import MEDIA_FOLDER
from fedblog.federation import outbox, serialize
from fedblog.federation.profile import announce_actor
from fedblog.services import Services
from fedblog.settings import valid_handle
from fedblog.store import federation as fed_store
from fedblog.store import posts as post_store
from fedblog.store import profile as store
from fedblog.store.db import session_scope
from fedblog.store.tables import Post

MAX_PINNED = 5  # Mastodon's limit for its own accounts (StatusPinValidator)
REMOTE_IMAGE_BYTES = 2 * 1024 * 1024  # older Mastodon drops a remote avatar above 2 MB (current: 8 MB)
AVATAR_WIDTHS = (400,)  # Mastodon keeps avatars at 400x400 (AVATAR_DIMENSIONS in account/avatar.rb)
HEADER_WIDTHS = (1500,)  # and headers at 1500x500


@dataclass(frozen=True)
class PinnedRow:
    id: int
    title: str
    url: str
    pinned: bool


@dataclass(frozen=True)
class ProfilePage:
    site: SiteProfile
    followers: int
    posts: list[PinnedRow]  # pinned first, then the latest others


@dataclass(frozen=True)
class SaveResult:
    error: str | None = None
    inboxes: int = 0


def load_page(services: Services) -> ProfilePage:
    with Session(services.engine) as session:
        site = services.site.load(session)
        followers = fed_store.count_followers(session)
        pinned = store.read_pinned(session)
        live = (col(Post.draft).is_(False), col(Post.deleted_at).is_(None))
        by_id = {p.id: p for p in session.exec(select(Post).where(col(Post.id).in_(pinned), *live)).all()}
        latest = session.exec(
            select(Post).where(*live).order_by(col(Post.published_at).desc()).limit(20)
        ).all()
    rows = [PinnedRow(i, by_id[i].title, services.urls.post(by_id[i].slug), True) for i in pinned if i in by_id]
    rows += [PinnedRow(p.id or 0, p.title, services.urls.post(p.slug), False) for p in latest if p.id not in by_id]
    return ProfilePage(site, followers, rows)


def _pick(stored: StoredImage, media_root: Path, max_width: int) -> ImageRef:
    """The largest stored size no wider than ``max_width`` and under Mastodon's 2 MB limit
    (the smallest if none is)."""
    sizes = [(stored.width, stored.path)] + sorted(stored.variants.items(), reverse=True)
    fitting = [(w, rel) for w, rel in sizes
               if w <= max_width and (media_root / rel).stat().st_size <= REMOTE_IMAGE_BYTES]
    width, rel = fitting[0] if fitting else sizes[-1]
    height = stored.height if width == stored.width else max(1, round(stored.height * width / stored.width))
    return ImageRef("/media/" + rel, stored.media_type, width, height)


def store_profile_image(services: Services, data: bytes, header: bool) -> ImageRef:
    """Check and store an uploaded avatar or header (raises ImageError); blocking."""
    root = services.settings.data_dir / MEDIA_FOLDER
    widths = HEADER_WIDTHS if header else AVATAR_WIDTHS
    return _pick(store_image(data, root, widths=widths), root, max(widths))


def fields_value(fields: list[tuple[str, str]]) -> str:
    return json.dumps(fields, ensure_ascii=False)


def save_profile(services: Services, values: dict[str, str | None]) -> SaveResult:
    """Store ``values`` (see fedblog.blog.site.merge for the names; None: back to the default).

    A new handle is refused once the blog has a follower: the actor id is built from it, and
    followers' servers know the blog by that id.
    """
    s = services.settings
    for name, default in (("name", s.name), ("description", s.description), ("author", s.author),
                          ("handle", s.handle)):
        if name in values and values[name] == default:
            values[name] = None  # the setting's own value: keep following the setting, store nothing
    if values.get("handle") and not valid_handle(values["handle"] or ""):
        return SaveResult(error=f"The handle {values['handle']!r} cannot be used: use letters, digits, _ . - only, "
                                "and not a name starting with 'guest-' or 'site-' (the guest and site actors'). "
                                "Nothing was saved.")
    now = services.clock.now()
    keys = services.keys.get()  # before the transaction: made in their own the first time
    with session_scope(services.engine) as session:
        current = services.site.load(session)
        new_handle = values.get("handle") or services.settings.handle
        if new_handle != current.handle:
            followers = fed_store.count_followers(session)
            if followers:
                return SaveResult(error=(
                    f"The handle can no longer change: {followers} account(s) follow @{current.acct}, and their "
                    "servers know the blog by its actor address, which is built from the handle. "
                    "Nothing was saved."))
        version = store.write(session, values, now)
        _, stored = store.read_all(session)
        site = merge(services.settings, stored)
        urls = services.urls.with_handle(site.handle)
        actor = serialize.blog_actor(site, urls, keys)
        sync = announce_actor(session, services, actor, urls, announce_first=True)
    services.site.set(site, version)
    return SaveResult(inboxes=sync.inboxes)


def set_pinned(services: Services, post_id: int, pinned: bool) -> str | None:
    """Pin or unpin a published post and tell followers (Add/Remove); an error text, or None."""
    now = services.clock.now()
    urls = services.urls
    with session_scope(services.engine) as session:
        post = session.get(Post, post_id)
        if post is None or post.draft or post.deleted_at is not None:
            return "There is no published post with this id."
        ids = store.read_pinned(session, for_update=True)
        live = post_store.live_ap_paths(session, ids)
        ids = [i for i in ids if i in live]  # a deleted or unpublished post no longer takes a place
        if pinned == (post_id in ids):
            return None  # already so: nothing to tell
        if pinned and len(ids) >= MAX_PINNED:
            return f"At most {MAX_PINNED} posts can be pinned (Mastodon's limit); unpin one first."
        ids = [post_id, *ids] if pinned else [i for i in ids if i != post_id]
        store.write_pinned(session, ids, now)
        doc = vocab.wrap("Add" if pinned else "Remove", id=serialize.new_activity_id(urls), actor=urls.actor(),
                         obj=urls.post_id(post.ap_path), published=serialize.iso(now), to=[PUBLIC],
                         cc=[urls.followers()])
        doc["target"] = urls.featured()
        outbox.enqueue_to_followers(session, doc, now=now, object_ap_id=urls.post_id(post.ap_path))
    return None

