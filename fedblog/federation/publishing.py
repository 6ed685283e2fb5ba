"""Publish, edit and delete posts, with their Create / Update / Delete in the same transaction."""

from __future__ import annotations

from sqlmodel import Session

from fedblog.blog.posts import PostDraft, SaveResult, delete_post, save_post, summary_text
from fedblog.federation import outbox, serialize
from fedblog.services import Services
from fedblog.store import posts as post_store
from fedblog.store.tables import Post


def publish(session: Session, services: Services, draft: PostDraft) -> SaveResult:
    """Save the post; if it is public, enqueue Create (new) or Update (edit) to every follower."""
    now = services.clock.now()
    result = save_post(
        session, draft, now=now, default_author=services.settings.author,
        default_language=services.settings.language,
    )
    post = result.post
    if not post.draft:
        kind = "Update" if result.was_public else "Create"
        doc = article_activity(session, services, post, kind)
        outbox.enqueue_to_followers(session, doc, now=now, object_ap_id=services.urls.post(post.slug))
    return result


def article_activity(session: Session, services: Services, post: Post, kind: str) -> dict[str, object]:
    assert post.id is not None
    tags = post_store.tags_for_posts(session, [post.id]).get(post.id, [])
    article = serialize.post_to_article(post, tags, services.urls)
    article = serialize.fit_for_delivery(article, services.urls, post, summary_text(post))
    stamp = serialize.iso(post.updated_at if kind == "Update" else post.published_at)
    return serialize.create_or_update(kind, article, services.urls, stamp)


def unpublish(session: Session, services: Services, slug: str) -> Post:
    """Delete the post (its URL answers 410) and tell followers with Delete(Tombstone)."""
    now = services.clock.now()
    post = delete_post(session, slug, now=now)  # raises LookupError unless the post is live
    if not post.draft:  # a draft was never sent: nothing to take back
        url = services.urls.post(post.slug)
        doc = serialize.delete_post_activity(url, services.urls, serialize.iso(now))
        outbox.enqueue_to_followers(session, doc, now=now, object_ap_id=url)
    return post
