"""Internal -> ActivityStreams converters: the blog actor, posts as Articles, their activities."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from html import escape
from typing import Any, Protocol
from urllib.parse import urlsplit

from fedblog.activitypub import vocab
from fedblog.activitypub.context import AS_CONTEXT, PUBLIC
from fedblog.blog.site import SiteProfile
from fedblog.clock import utc
from fedblog.federation.keys import ActorKeys, KeyPair
from fedblog.store.tables import Actor, Post
from fedblog.urls import Urls, guest_ref


def iso(dt: Any) -> str:
    return utc(dt).strftime("%Y-%m-%dT%H:%M:%SZ")


def blog_actor(site: SiteProfile, urls: Urls, keys: KeyPair) -> dict[str, Any]:
    """The public actor document, from the effective profile (fedblog.blog.site). ``published`` is
    when the blog was set up (its keys were made), which Mastodon shows as "Joined"; not the date
    of the oldest (perhaps imported) post. ``icon`` and ``image`` carry their size, as Mastodon's
    own actor documents do."""
    info = vocab.ActorInfo(
        id=urls.actor(),
        username=urls.current_handle(),
        name=site.name,
        summary_html=site.description_html,
        url=urls.home(),
        inbox=urls.inbox(),
        outbox=urls.outbox(),
        followers=urls.followers(),
        following=urls.following(),
        featured=urls.featured(),
        shared_inbox=urls.shared_inbox(),
        key_id=urls.key_id(),
        public_key_pem=keys.rsa_public_pem,
        ed25519_key_id=urls.ed25519_key_id(),
        ed25519_multibase=keys.ed25519_multibase,
        icon_url=urls.local(site.avatar.path),
        image_url=urls.local(site.header.path),
        published=iso(keys.created_at),
        domain=site.domain,
        host=urlsplit(urls.base_url).hostname or "",
        icon_size=(site.avatar.media_type, site.avatar.width, site.avatar.height),
        image_size=(site.header.media_type, site.header.width, site.header.height),
        fields=site.fields_html(),
    )
    return vocab.actor_document(info)


class TagLike(Protocol):
    """What post_to_article reads of a tag: a Tag, or a row of post_store.tags_for_posts."""

    @property
    def name(self) -> str: ...

    @property
    def label(self) -> str: ...


class StatsLike(Protocol):
    """What post_to_article reads of a thread: a store.interactions.ThreadStats."""

    @property
    def likes(self) -> int: ...

    @property
    def shares(self) -> int: ...

    @property
    def replies(self) -> int: ...

    @property
    def first_replies(self) -> tuple[str, ...]: ...


class MediaLike(Protocol):
    """What post_to_article reads of an uploaded image: a store.tables.Media."""

    path: str
    media_type: str
    width: int
    height: int
    alt: str


def media_object(media: MediaLike, urls: Urls) -> dict[str, Any]:
    """An uploaded image as an ``Image`` (a PDF or other file would be a ``Document``), with the
    ``mediaType``, ``width``, ``height`` and ``name`` (alt text) Mastodon reads from attachments
    (https://docs.joinmastodon.org/spec/activitypub/#as)."""
    kind = "Image" if media.media_type.startswith("image/") else "Document"
    doc: dict[str, Any] = {"type": kind, "mediaType": media.media_type, "url": urls.media(media.path),
                           "width": media.width, "height": media.height}
    if media.alt:
        doc["name"] = media.alt
    return doc


def post_to_article(post: Post, tags: Sequence[TagLike], urls: Urls, stats: StatsLike,
                    media: Sequence[tuple[str, MediaLike]] = ()) -> dict[str, Any]:
    """The Article for ``post``, with the real counts of its thread and its first replies.

    ``media`` is (role, image) of the post's uploads: the cover becomes ``image`` and, with the
    images used in the text, an ``attachment`` (Mastodon shows attachments, not ``image``).

    Mastodon 4.4+ shows ``likes``/``shares`` ``totalItems`` as the status's favourite and boost
    counts (mastodon/mastodon#32620), so every copy we hand out carries the real numbers.
    """
    post_id = urls.post_id(post.ap_path)
    updated = post.updated_at if utc(post.updated_at) > utc(post.published_at) else None
    replies_id = urls.replies(post_id)
    first = stats.first_replies
    info = vocab.ArticleInfo(
        id=post_id,
        url=urls.post(post.slug),
        attributed_to=urls.actor(),
        followers=urls.followers(),
        name=post.title,
        content_html=post.content_html,
        language=post.language,
        published=iso(post.published_at),
        updated=iso(updated) if updated else None,
        tags=[vocab.HashtagInfo(name=t.label.replace(" ", ""), href=urls.tag(t.name)) for t in tags],
        image_url=post.image_url,
        replies_id=replies_id,
        replies_first_items=first,
        replies_next=f"{replies_id}?page=2" if stats.replies > len(first) else None,
        replies_count=stats.replies,
        context_id=urls.context(post_id),
        likes_id=urls.likes(post_id),
        likes_count=stats.likes,
        shares_id=urls.shares(post_id),
        shares_count=stats.shares,
    )
    article = vocab.article_object(info)
    if media:
        attached = [media_object(m, urls) for _role, m in media]
        covers = [doc for (role, _m), doc in zip(media, attached, strict=True) if role == "cover"]
        if covers:
            article["image"] = covers[0]
        article["attachment"] = [*article.get("attachment", []), *attached]
    return article


def fit_for_delivery(article: dict[str, Any], urls: Urls, post: Post, summary: str) -> dict[str, Any]:
    """Trim ``content`` so that the delivered activity stays under Misskey's 64 KiB limit.

    The full text stays at the Article's id; the delivered copy ends with a link to it.
    """
    if len(vocab.dumps(article)) <= vocab.MAX_DELIVERY_BYTES - 2_000:
        return article
    short = (
        f"<p>{escape(summary)}</p>"
        f'<p><a href="{escape(urls.post(post.slug))}">Continue reading “{escape(post.title)}”</a></p>'
    )
    trimmed = dict(article, content=short, contentMap={post.language: short})
    return trimmed


def new_activity_id(urls: Urls) -> str:
    return urls.activity(secrets.token_urlsafe(16))


def create_or_update(kind: str, article: dict[str, Any], urls: Urls, published: str) -> dict[str, Any]:
    return vocab.wrap(
        kind, id=new_activity_id(urls), actor=urls.actor(), obj=article, published=published,
        to=[PUBLIC], cc=[urls.followers()],
    )


def delete_post_activity(post_url: str, urls: Urls, deleted: str) -> dict[str, Any]:
    return vocab.wrap(
        "Delete", id=new_activity_id(urls), actor=urls.actor(),
        obj=vocab.tombstone(post_url, deleted=deleted), published=deleted, to=[PUBLIC], cc=[urls.followers()],
    )


def web_url(url: str | None) -> str | None:
    """``url`` if it is an http(s) URL (a guest's website as given), else None: nothing else is linked."""
    return url if url and urlsplit(url).scheme.lower() in ("http", "https") and urlsplit(url).netloc else None


def guest_actor(actor: Actor, username: str, site: SiteProfile, urls: Urls, keys: ActorKeys) -> dict[str, Any]:
    """The actor document of the local guest or site actor ``actor`` (an ``Actor`` row with
    ``is_local``); ``keys`` must hold its RSA key (``KeyRing.signing_key`` makes it)."""
    assert actor.id is not None and keys.rsa_public_pem is not None
    ref = guest_ref(actor.id)
    actor_id = urls.guest_actor(actor.id)
    blog = escape(site.name)
    if actor.type == "Service":
        summary = f'<p>A website that linked to posts on <a href="{escape(urls.home())}">{blog}</a>.</p>'
    else:
        summary = f'<p>A guest commenter on <a href="{escape(urls.home())}">{blog}</a>.</p>'
    info = vocab.GuestActorInfo(
        id=actor_id,
        type=actor.type,
        username=username,
        name=actor.name or username,
        summary_html=summary,
        url=web_url(actor.url) or actor_id,
        inbox=urls.shared_inbox(),
        outbox=urls.guest_outbox(actor.id),
        shared_inbox=urls.shared_inbox(),
        key_id=urls.key_id_of(ref),
        public_key_pem=keys.rsa_public_pem,
        ed25519_key_id=urls.ed25519_key_id_of(ref),
        ed25519_multibase=keys.ed25519_multibase,
        published=iso(keys.created_at),
        domain=site.domain,
        icon_url=web_url(actor.icon_url),
    )
    return vocab.guest_actor_document(info)


def reject_follow(follow: dict[str, Any], urls: Urls, actor_ref: str) -> dict[str, Any]:
    """Reject, sent by the local actor ``actor_ref`` that was asked to be followed, embedding the
    Follow as received (Mastodon matches it to its pending Follow, as for an Accept)."""
    return vocab.wrap("Reject", id=new_activity_id(urls), actor=urls.local_actor(actor_ref), obj=follow,
                      context=AS_CONTEXT)


def accept_follow(follow: dict[str, Any], urls: Urls) -> dict[str, Any]:
    """Accept, embedding the Follow exactly as received: Mastodon matches the Accept's object to its
    pending Follow (https://docs.joinmastodon.org/spec/activitypub/#Follow)."""
    return vocab.wrap("Accept", id=new_activity_id(urls), actor=urls.actor(), obj=follow, context=AS_CONTEXT)
