"""Pure builders for every ActivityPub document we serve or send. Plain values in, dicts out.

The Article shape (https://docs.joinmastodon.org/spec/activitypub/#Article, docs/publishing.md):
``name`` + full ``content`` + ``url``, no ``summary``, because Mastodon shows title, link and the
page's link card and ignores ``content``, while GoToSocial, Misskey and Akkoma show ``content``
and would turn a ``summary`` into a content warning.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import quoteattr

from fedblog.activitypub.context import (
    ACTOR_CONTEXT,
    AS_CONTEXT,
    OBJECT_CONTEXT,
    PUBLIC,
)

MAX_DELIVERY_BYTES = 60_000  # Misskey rejects inbox bodies over 64 KiB; keep margin for headers


@dataclass(frozen=True)
class ActorInfo:
    id: str
    username: str
    name: str
    summary_html: str
    url: str
    inbox: str
    outbox: str
    followers: str
    following: str
    featured: str
    shared_inbox: str
    key_id: str
    public_key_pem: str
    ed25519_key_id: str
    ed25519_multibase: str
    icon_url: str
    image_url: str
    published: str
    domain: str  # the handle domain: @username@domain
    host: str = ""  # the host of the actor id, when it differs from the handle domain
    type: str = "Person"
    icon_size: tuple[str, int, int] = ("image/png", 256, 256)  # mediaType, width, height
    image_size: tuple[str, int, int] = ("image/png", 1500, 500)
    fields: Sequence[tuple[str, str]] = ()  # (name, value HTML) after the "Website" field


def _image(url: str, size: tuple[str, int, int]) -> dict[str, Any]:
    return {"type": "Image", "mediaType": size[0], "url": url, "width": size[1], "height": size[2]}


def actor_document(a: ActorInfo) -> dict[str, Any]:
    return {
        "@context": ACTOR_CONTEXT,
        "id": a.id,
        "type": a.type,
        "preferredUsername": a.username,
        "name": a.name,
        "summary": a.summary_html,
        "url": a.url,
        "icon": _image(a.icon_url, a.icon_size),
        "image": _image(a.image_url, a.image_size),
        "inbox": a.inbox,
        "outbox": a.outbox,
        "followers": a.followers,
        "following": a.following,
        "featured": a.featured,
        "endpoints": {"sharedInbox": a.shared_inbox},
        "publicKey": {"id": a.key_id, "owner": a.id, "publicKeyPem": a.public_key_pem},
        "assertionMethod": [
            {"id": a.ed25519_key_id, "type": "Multikey", "controller": a.id, "publicKeyMultibase": a.ed25519_multibase}
        ],
        "manuallyApprovesFollowers": False,
        "discoverable": True,
        "indexable": True,
        "published": a.published,
        # FEP-2c59: the handle, stated, so a split domain needs no guessing (Mastodon 4.6 reads it)
        "webfinger": f"{a.username}@{a.domain}",
        "attributionDomains": list(dict.fromkeys(d for d in (a.domain, a.host) if d)),
        "attachment": [
            {"type": "PropertyValue", "name": "Website", "value": f'<a href="{a.url}" rel="me">{a.url}</a>'},
            *({"type": "PropertyValue", "name": name, "value": value} for name, value in a.fields),
        ],
    }


@dataclass(frozen=True)
class GuestActorInfo:
    """A local actor that is not the blog: a guest commenter (``Person``) or a linking site (``Service``)."""

    id: str
    type: str  # Person | Service
    username: str  # guest-<n> | site-<n>
    name: str
    summary_html: str
    url: str
    inbox: str  # the blog's shared inbox: guests receive nothing of their own
    outbox: str
    shared_inbox: str
    key_id: str
    public_key_pem: str
    ed25519_key_id: str
    ed25519_multibase: str
    published: str
    domain: str  # the handle domain: @username@domain
    icon_url: str | None = None  # a Webmention author's h-card photo


def guest_actor_document(a: GuestActorInfo) -> dict[str, Any]:
    """The actor document of a guest or site: enough for a server to show who wrote a comment and
    to verify what the actor signs (``publicKey``: HTTP Signatures; ``assertionMethod``: FEP-521a),
    and nothing that invites a follow or a search: it is not discoverable nor indexable."""
    doc: dict[str, Any] = {
        "@context": ACTOR_CONTEXT,
        "id": a.id,
        "type": a.type,
        "preferredUsername": a.username,
        "name": a.name,
        "summary": a.summary_html,
        "url": a.url,
        "inbox": a.inbox,
        "outbox": a.outbox,
        "endpoints": {"sharedInbox": a.shared_inbox},
        "publicKey": {"id": a.key_id, "owner": a.id, "publicKeyPem": a.public_key_pem},
        "assertionMethod": [
            {"id": a.ed25519_key_id, "type": "Multikey", "controller": a.id, "publicKeyMultibase": a.ed25519_multibase}
        ],
        "manuallyApprovesFollowers": False,
        "discoverable": False,
        "indexable": False,
        "published": a.published,
        "webfinger": f"{a.username}@{a.domain}",  # FEP-2c59
    }
    if a.icon_url:  # its media type and size are the author's site's to say: only the URL is known
        doc["icon"] = {"type": "Image", "url": a.icon_url}
    return doc


@dataclass(frozen=True)
class HashtagInfo:
    name: str  # without '#'
    href: str


@dataclass(frozen=True)
class ArticleInfo:
    id: str
    url: str
    attributed_to: str
    followers: str
    name: str
    content_html: str
    language: str
    published: str
    updated: str | None
    tags: Sequence[HashtagInfo] = ()
    image_url: str | None = None
    replies_id: str = ""
    replies_first_items: Sequence[str] = ()
    replies_next: str | None = None
    replies_count: int | None = None
    context_id: str | None = None
    likes_id: str = ""
    likes_count: int = 0
    shares_id: str = ""
    shares_count: int = 0
    summary_text: str | None = field(default=None)


def article_object(a: ArticleInfo) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": a.id,
        "type": "Article",
        "attributedTo": a.attributed_to,
        "name": a.name,
        "nameMap": {a.language: a.name},
        "content": a.content_html,
        "contentMap": {a.language: a.content_html},
        "mediaType": "text/html",
        "url": a.url,
        "published": a.published,
        "to": [PUBLIC],
        "cc": [a.followers],
        "sensitive": False,
        "tag": [{"type": "Hashtag", "name": f"#{t.name}", "href": t.href} for t in a.tags],
        # FEP-8967: the canonical page as a Link; Mastodon 4.7 uses it for the preview card
        "attachment": [{"type": "Link", "href": a.url, "mediaType": "text/html"}],
    }
    if a.updated:
        doc["updated"] = a.updated
    if a.image_url:
        doc["image"] = {"type": "Image", "url": a.image_url}
    if a.context_id:
        doc["context"] = a.context_id
    if a.replies_id:
        first: dict[str, Any] = {
            "type": "CollectionPage",
            "id": a.replies_id + "?page=1",
            "partOf": a.replies_id,
            "items": list(a.replies_first_items),
        }
        if a.replies_next:
            first["next"] = a.replies_next
        doc["replies"] = {"id": a.replies_id, "type": "Collection", "first": first}
        if a.replies_count is not None:
            doc["replies"]["totalItems"] = a.replies_count
    if a.likes_id:
        doc["likes"] = {"id": a.likes_id, "type": "Collection", "totalItems": a.likes_count}
    if a.shares_id:
        doc["shares"] = {"id": a.shares_id, "type": "Collection", "totalItems": a.shares_count}
    return doc


def with_context(obj: dict[str, Any], context: Any = None) -> dict[str, Any]:
    return {"@context": context if context is not None else OBJECT_CONTEXT, **obj}


def wrap(activity_type: str, *, id: str, actor: str, obj: Any, published: str | None = None,
         to: Sequence[str] | None = None, cc: Sequence[str] | None = None, context: Any = None) -> dict[str, Any]:
    """An activity with its own @context; the object is embedded as given."""
    doc: dict[str, Any] = {
        "@context": context if context is not None else OBJECT_CONTEXT,
        "id": id,
        "type": activity_type,
        "actor": actor,
        "object": obj,
    }
    if published:
        doc["published"] = published
    if to is not None:
        doc["to"] = list(to)
    if cc is not None:
        doc["cc"] = list(cc)
    return doc


def tombstone(id: str, *, deleted: str | None = None) -> dict[str, Any]:
    # no formerType: Fedify reads its value as an IRI and warns on the bare "Article"
    doc: dict[str, Any] = {"id": id, "type": "Tombstone"}
    if deleted:
        doc["deleted"] = deleted
    return doc


def ordered_collection(id: str, *, total: int, first: str | None = None, last: str | None = None,
                       items: Sequence[Any] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"@context": AS_CONTEXT, "id": id, "type": "OrderedCollection", "totalItems": total}
    if items is not None:
        doc["orderedItems"] = list(items)
    if first:
        doc["first"] = first
    if last:
        doc["last"] = last
    return doc


def ordered_collection_page(id: str, *, part_of: str, items: Sequence[Any], next: str | None = None,
                            prev: str | None = None, total: int | None = None, context: Any = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "@context": context if context is not None else AS_CONTEXT,
        "id": id,
        "type": "OrderedCollectionPage",
        "partOf": part_of,
        "orderedItems": list(items),
    }
    if total is not None:
        doc["totalItems"] = total
    if next:
        doc["next"] = next
    if prev:
        doc["prev"] = prev
    return doc


def webfinger_document(*, subject: str, actor_id: str, profile_url: str) -> dict[str, Any]:
    """No OStatus ``subscribe`` template: it is for a server's own readers, and a blog has none."""
    return {
        "subject": subject,
        "aliases": list(dict.fromkeys((actor_id, profile_url))),
        "links": [
            {"rel": "self", "type": "application/activity+json", "href": actor_id},
            {"rel": "http://webfinger.net/rel/profile-page", "type": "text/html", "href": profile_url},
        ],
    }


def host_meta_xml(webfinger_template: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<XRD xmlns="http://docs.oasis-open.org/ns/xri/xrd-1.0">\n'
        f'  <Link rel="lrdd" type="application/jrd+json" template={quoteattr(webfinger_template)}/>\n'
        "</XRD>\n"
    )


def host_meta_json(webfinger_template: str) -> dict[str, Any]:
    return {"links": [{"rel": "lrdd", "type": "application/jrd+json", "template": webfinger_template}]}


def nodeinfo_links(base_url: str) -> dict[str, Any]:
    return {
        "links": [
            {"rel": "http://nodeinfo.diaspora.software/ns/schema/2.0", "href": f"{base_url}/nodeinfo/2.0"},
            {"rel": "http://nodeinfo.diaspora.software/ns/schema/2.1", "href": f"{base_url}/nodeinfo/2.1"},
        ]
    }


def nodeinfo_document(version: str, *, software_version: str, name: str, description: str,
                      local_posts: int, local_comments: int) -> dict[str, Any]:
    software: dict[str, Any] = {"name": "fedblog", "version": software_version}
    if version == "2.1":
        software["homepage"] = "https://pypi.org/project/fedblog/"
    return {
        "version": version,
        "software": software,
        "protocols": ["activitypub"],
        "services": {"inbound": [], "outbound": ["atom1.0", "rss2.0"]},
        "openRegistrations": False,
        "usage": {
            "users": {"total": 1, "activeMonth": 1, "activeHalfyear": 1},
            "localPosts": local_posts,
            "localComments": local_comments,
        },
        "metadata": {"nodeName": name, "nodeDescription": description},
    }


def dumps(doc: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON, the exact bytes we sign and send."""
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
