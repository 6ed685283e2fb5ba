"""The ActivityStreams documents of local comments: what a web comment, a pingback, a Webmention or
an imported comment is on the fediverse (docs/comments-as-activities.md). Pure builders.

| what | activity | object |
| --- | --- | --- |
| web comment, imported comment | ``Create`` | ``Note`` by the guest, ``inReplyTo`` the post or the comment it answers |
| pingback, trackback | ``Create`` | ``Note`` by the site: link, title and excerpt of the linking page |
| Webmention reply or mention | ``Create`` | ``Note`` by the h-card author's guest, else the site (named in the text) |
| Webmention like / repost | ``Like`` / ``Announce`` of the post by the author or the site | (none: it is the object) |

Every document carries an FEP-8b32 ``eddsa-jcs-2022`` proof made with its actor's Ed25519 key; the
embedded Note keeps its own ``@context`` and proof, so a copy of it verifies on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fedblog.activitypub import integrity
from fedblog.activitypub.context import AS_CONTEXT, PUBLIC
from fedblog.clock import utc

CONTEXT: list[Any] = [AS_CONTEXT, integrity.DATA_INTEGRITY_CONTEXT]
Shape = Literal["note", "like", "announce"]
LINKBACK_KINDS = ("pingback", "trackback")


def iso(moment: datetime) -> str:
    return utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def shape_of(kind: str, via: str) -> Shape:
    """A Webmention like is a ``Like``, a repost an ``Announce``; everything else a ``Note``."""
    if via == "webmention" and kind == "like":
        return "like"
    if via == "webmention" and kind == "repost":
        return "announce"
    return "note"


@dataclass(frozen=True)
class Mention:
    """A remote author the comment answers: addressed in ``cc`` and tagged, so their server notifies them."""

    actor_id: str
    handle: str | None


@dataclass(frozen=True)
class CommentFacts:
    """What the documents say of one local comment (an ``Interaction`` row and its surroundings)."""

    id: str  # /comments/{n}
    actor: str  # the guest or site actor's id
    kind: str
    via: str
    in_reply_to: str  # the post's id, or the id of the comment it answers
    post_id: str
    context: str  # the post's FEP-7888 context collection
    replies: str  # the comment's own replies collection
    url: str  # where a person reads it: the comment's anchor, or the linking page
    published: datetime
    content_html: str
    title: str | None = None
    source_url: str | None = None
    author_name: str = ""
    author_url: str | None = None
    excerpt: str = ""  # a linkback's text around its link (plain), when it has no stored text
    mentions: Sequence[Mention] = ()
    blog_actor: str = ""
    cc: Sequence[str] = ()  # who else is addressed: the blog (a reply to the post), or the guest answered


def _link(href: str, text: str) -> str:
    return f'<a href="{escape(href, quote=True)}" rel="nofollow noopener">{escape(text)}</a>'


def note_content(f: CommentFacts) -> str:
    """The Note's HTML. A linkback says where it comes from, as the post page does ("Pingback: ...");
    its stored text (already sanitised) follows."""
    body = f.content_html or (f"<p>{escape(f.excerpt)}</p>" if f.excerpt else "")
    if f.kind in LINKBACK_KINDS and f.source_url:
        return f"<p>{escape(f.kind.capitalize())}: {_link(f.source_url, f.title or f.source_url)}</p>" + body
    if f.via == "webmention" and f.source_url:
        where = _link(f.source_url, f.title or f.source_url)
        who = _link(f.author_url, f.author_name) if f.author_url else escape(f.author_name)
        verb = "mentioned this post" if f.kind == "mention" else "replied"  # a reply is stored as "webmention"
        return f"<p>{who} {verb} at {where}:</p>{body}" if body else f"<p>{who} {verb} at {where}</p>"
    return f.content_html


def _mention_html(m: Mention) -> str:
    user = (m.handle or "").split("@")[0] or "someone"
    return (f'<span class="h-card"><a href="{escape(m.actor_id, quote=True)}" class="u-url mention" '
            f'rel="nofollow noopener">@<span>{escape(user)}</span></a></span> ')


def note(f: CommentFacts) -> dict[str, Any]:
    """The unsigned Note."""
    content = note_content(f)
    if f.mentions and f.via != "webmention" and f.kind not in LINKBACK_KINDS:
        content = "".join(_mention_html(m) for m in f.mentions) + content
    doc: dict[str, Any] = {
        "@context": CONTEXT,
        "id": f.id,
        "type": "Note",
        "attributedTo": f.actor,
        "inReplyTo": f.in_reply_to,
        "context": f.context,
        "content": content,
        "published": iso(f.published),
        "url": f.url,
        "to": [PUBLIC],
        "cc": list(dict.fromkeys([*(m.actor_id for m in f.mentions), *f.cc])),
        "replies": f.replies,
    }
    if f.mentions:
        doc["tag"] = [{"type": "Mention", "href": m.actor_id, "name": f"@{m.handle}" if m.handle else m.actor_id}
                      for m in f.mentions]
    return doc


def reaction(f: CommentFacts, shape: Shape) -> dict[str, Any]:
    """The unsigned ``Like`` or ``Announce`` of the post by the site (a Webmention like or repost)."""
    doc: dict[str, Any] = {"@context": CONTEXT, "id": f.id, "type": "Like" if shape == "like" else "Announce",
                           "actor": f.actor, "object": f.post_id, "published": iso(f.published)}
    if shape == "announce":  # addressed as Mastodon addresses a boost
        doc.update({"to": [PUBLIC], "cc": [f.blog_actor] if f.blog_actor else []})
    return doc


def create(activity_id: str, signed_note: dict[str, Any], kind: str = "Create") -> dict[str, Any]:
    """The unsigned ``Create`` (or ``Update``) of a signed Note, addressed as the Note is."""
    return {"@context": CONTEXT, "id": activity_id, "type": kind, "actor": signed_note["attributedTo"],
            "published": signed_note["published"], "to": list(signed_note["to"]), "cc": list(signed_note["cc"]),
            "object": signed_note}


def delete(activity_id: str, actor: str, object_id: str, when: datetime, to: Sequence[str]) -> dict[str, Any]:
    """The unsigned ``Delete`` (a Tombstone of the object), addressed to those who got it."""
    return {"@context": CONTEXT, "id": activity_id, "type": "Delete", "actor": actor, "published": iso(when),
            "to": [PUBLIC], "cc": list(to), "object": {"id": object_id, "type": "Tombstone"}}


def sign(doc: dict[str, Any], key: Ed25519PrivateKey, key_id: str, when: datetime) -> dict[str, Any]:
    """``doc`` with its FEP-8b32 proof (eddsa-jcs-2022), made with the actor's Ed25519 key."""
    return integrity.sign(doc, key, key_id, utc(when))
