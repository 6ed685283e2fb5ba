"""Publish, edit and delete posts, with their Create / Update / Delete in the same transaction.

When a post goes out (docs/publishing.md):

- A post becoming public is sent to followers as ``Create`` only if its ``published`` time is
  within the last 6 hours. Mastodon puts a received status into its followers' home timelines
  only then (``ActivityPub::Activity::Create#distribute`` runs ``DistributionWorker`` only if
  ``Status#within_realtime_window?``: ``created_at >= REAL_TIME_WINDOW.ago``, with
  ``REAL_TIME_WINDOW = 6.hours`` in ``app/models/status.rb``; ``created_at`` is the object's
  ``published``). An older post is published *quietly*, as history: stored, shown on the site,
  in the feeds and in the outbox, dereferenceable at its id, but no ``Create`` is delivered.
  ``send_as_new`` publishes it now instead (``published`` = now) and sends the ``Create``.
- Edits of a public post are sent as ``Update`` and deletions as ``Delete``, quiet or not: they
  only change copies that servers already hold (fetched through search or a reply).
- The pages a public post links to are notified by Webmention or pingback, in the same
  transaction (``linkback_send``: new links on publication, changed and removed ones on an edit,
  all on a deletion); drafts and quiet publications notify nobody.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from fedblog.blog.posts import PostDraft, delete_post, save_post, summary_text
from fedblog.clock import utc
from fedblog.federation import linkback_send, outbox, serialize
from fedblog.services import Services
from fedblog.store import interactions as interaction_store
from fedblog.store import media as media_store
from fedblog.store import posts as post_store
from fedblog.store.tables import Post

REAL_TIME_WINDOW = timedelta(hours=6)  # Mastodon's Status::REAL_TIME_WINDOW
COLLECTION_PAGE_SIZE = 20  # items per page of every collection we serve, the embedded replies page too


@dataclass(frozen=True)
class PublishResult:
    post: Post
    created: bool  # a new post (or a new incarnation of a deleted post's slug)
    sent: str | None  # "Create", "Update" or None (a draft, or a quiet post)
    quiet: bool  # became public with a date older than REAL_TIME_WINDOW: stored, not pushed


def publish(session: Session, services: Services, draft: PostDraft, *, send_as_new: bool = False,
            after_save: Callable[[Session, Post], None] | None = None) -> PublishResult:
    """Save the post; if it is public, enqueue Create (new) or Update (edit) to every follower.

    ``after_save`` (the editor: images, attachments) runs on the saved post before any activity
    is built, in the same transaction.
    """
    now = services.clock.now()
    before = post_store.get_post_by_slug(session, draft.slug)
    was_live = before is not None and before.deleted_at is None and not before.draft
    previous_html = before.content_html if before is not None and was_live else None  # what readers saw
    result = save_post(
        session, draft, now=now, default_author=services.site.current().author,
        default_language=services.settings.language, published_now=send_as_new,
    )
    post = result.post
    if after_save is not None:
        after_save(session, post)
    if post.draft:
        return PublishResult(post, result.created, None, False)
    if not result.was_public and now - utc(post.published_at) > REAL_TIME_WINDOW:
        return PublishResult(post, result.created, None, True)
    kind = "Update" if result.was_public else "Create"
    doc = article_activity(session, services, post, kind)
    outbox.enqueue_to_followers(session, doc, now=now, object_ap_id=services.urls.post_id(post.ap_path))
    linkback_send.after_publish(session, services, post, previous_html, now=now)
    return PublishResult(post, result.created, kind, False)


def quiet_notice(published: datetime, send_as_new: str = "--send-as-new") -> str:
    """The one line that tells the author a post went out quietly, and how to send it instead."""
    hours = int(REAL_TIME_WINDOW.total_seconds() // 3600)
    return (f"published quietly: dated {utc(published):%Y-%m-%d %H:%M} UTC, more than {hours} hours ago, so "
            f"followers get no Create and it stays out of their timelines; {send_as_new} sends it as new, dated now")


def article_documents(session: Session, services: Services, posts: Sequence[Post]) -> dict[int, dict[str, Any]]:
    """The Articles of ``posts`` with their tags, real counts and first replies: four queries at most."""
    ids = [p.id for p in posts if p.id is not None]
    tags = post_store.tags_for_posts(session, ids)
    stats = interaction_store.thread_stats(session, ids, first_page=COLLECTION_PAGE_SIZE)
    media = media_store.media_for_posts(session, ids)
    empty = interaction_store.ThreadStats()
    return {
        p.id: serialize.post_to_article(
            p, tags.get(p.id, []), services.urls, stats.get(p.id, empty), media.get(p.id, []))
        for p in posts if p.id is not None
    }


def article_activity(session: Session, services: Services, post: Post, kind: str) -> dict[str, object]:
    assert post.id is not None
    article = article_documents(session, services, [post])[post.id]
    article = serialize.fit_for_delivery(article, services.urls, post, summary_text(post))
    stamp = serialize.iso(post.updated_at if kind == "Update" else post.published_at)
    return serialize.create_or_update(kind, article, services.urls, stamp)


def unpublish(session: Session, services: Services, slug: str) -> Post:
    """Delete the post (its id answers 410) and tell followers with Delete(Tombstone)."""
    now = services.clock.now()
    post = delete_post(session, slug, now=now)  # raises LookupError unless the post is live
    if not post.draft:  # a draft was never sent: nothing to take back
        post_id = services.urls.post_id(post.ap_path)
        doc = serialize.delete_post_activity(post_id, services.urls, serialize.iso(now))
        outbox.enqueue_to_followers(session, doc, now=now, object_ap_id=post_id)
        linkback_send.after_delete(session, post, now=now)
    return post
