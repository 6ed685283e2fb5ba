"""The only module that knows URL shapes, both ways.

Every ActivityPub id and every link in a page is built here from the base URL, so changing a
shape is a one-line change, and ``match_*`` turns an incoming id back into what it names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from fedblog.activitypub.origin import origin_of

# A local actor is named in the database by a short, stable reference, not by its URL (the base
# URL and handle are settings): the blog itself, or a guest actor by its ``Actor`` row id.
BLOG_ACTOR = "blog"
MAX_ID_DIGITS = 18  # a row id fits a signed 64-bit integer (SQLite, PostgreSQL bigint) with room to spare


def parse_id(raw: str) -> int | None:
    """The row id ``raw`` spells in its one canonical form (ASCII digits, no leading zero, at most
    ``MAX_ID_DIGITS``, above zero), or None. ``str.isdigit`` alone accepts "²" (``int`` then raises)
    and any length (the database then overflows): every id read from a URL, a form or a remote
    document goes through here."""
    if not 0 < len(raw) <= MAX_ID_DIGITS or not raw.isascii() or not raw.isdigit() or raw[0] == "0":
        return None
    return int(raw)


def guest_ref(actor_row_id: int) -> str:
    """The reference of the local guest actor stored as ``Actor`` row ``actor_row_id``."""
    return f"guest:{actor_row_id}"


def post_path(slug: str, version: int = 1) -> str:
    """The path of a post's ActivityPub id: ``/posts/slug`` for the first incarnation of a slug,
    ``/posts/slug/2``, ``/posts/slug/3``... for a post published again after a deletion.

    A deleted id is never reused: Mastodon keeps a tombstone for it and refuses a later Create
    with the same id (``ActivityPub::Activity::Create#perform``, ``tombstone_exists?``).
    """
    return f"/posts/{quote(slug)}" if version <= 1 else f"/posts/{quote(slug)}/{version}"


def post_path_version(path: str) -> int:
    """The incarnation number in a path made by ``post_path``."""
    last = path.rsplit("/", 1)[-1]
    number = parse_id(last) if path.count("/") == 3 else None
    return number or 1


@dataclass(frozen=True)
class Urls:
    base_url: str
    handle: str  # the handle from settings; ``handle_of`` (the effective profile's) wins when given
    handle_of: Callable[[], str] | None = field(default=None, compare=False, repr=False)

    def current_handle(self) -> str:
        """The handle actor URLs are built from now (the admin may change it before the first follower)."""
        return self.handle_of() if self.handle_of is not None else self.handle

    def with_handle(self, handle: str) -> Urls:
        return Urls(self.base_url, handle)

    # -- pages ---------------------------------------------------------------------------------
    def home(self, page: int = 1) -> str:
        return self.base_url + "/" + (f"?page={page}" if page > 1 else "")

    def post(self, slug: str) -> str:
        """The post page (the Article's ``url``); also the id of a slug's first incarnation."""
        return f"{self.base_url}/posts/{quote(slug)}"

    def post_id(self, ap_path: str) -> str:
        """A post's ActivityPub id, from the path stored with the post (``Post.ap_path``)."""
        return self.base_url + ap_path

    def comment_anchor(self, slug: str, comment_id: int) -> str:
        return f"{self.post(slug)}#comment-{comment_id}"

    def tag(self, tag: str) -> str:
        return f"{self.base_url}/tags/{quote(tag)}"

    def archive(self) -> str:
        return f"{self.base_url}/archive"

    def about(self) -> str:
        return f"{self.base_url}/about"

    def atom(self) -> str:
        return f"{self.base_url}/feed.atom"

    def rss(self) -> str:
        return f"{self.base_url}/feed.rss"

    def static(self, name: str) -> str:
        return f"{self.base_url}/static/{name}"

    def media(self, path: str) -> str:
        """A file under the media folder (``uploads/<key>/full.jpg``), served at /media/."""
        return f"{self.base_url}/media/{quote(path)}"

    # -- ActivityPub objects -------------------------------------------------------------------
    def actor(self) -> str:
        return f"{self.base_url}/users/{self.current_handle()}"

    def key_id(self) -> str:
        return self.key_id_of(BLOG_ACTOR)

    def ed25519_key_id(self) -> str:
        return self.ed25519_key_id_of(BLOG_ACTOR)

    def local_actor(self, ref: str) -> str:
        """The ActivityPub id of the local actor ``ref`` (``BLOG_ACTOR`` or a ``guest_ref``)."""
        if ref == BLOG_ACTOR:
            return self.actor()
        kind, _, number = ref.partition(":")
        guest_id = parse_id(number) if kind == "guest" else None
        if guest_id is not None:
            return self.guest_actor(guest_id)
        raise ValueError(f"not a local actor reference: {ref!r}")

    def key_id_of(self, ref: str) -> str:
        """The id of a local actor's RSA key (HTTP Signatures): the actor id + ``#main-key``, as
        Mastodon names it (``publicKey.id``)."""
        return self.local_actor(ref) + "#main-key"

    def ed25519_key_id_of(self, ref: str) -> str:
        """The id of a local actor's Ed25519 key (FEP-8b32 proofs, FEP-521a ``assertionMethod``)."""
        return self.local_actor(ref) + "#ed25519-key"

    def inbox(self) -> str:
        return self.actor() + "/inbox"

    def shared_inbox(self) -> str:
        return f"{self.base_url}/inbox"

    def outbox(self) -> str:
        return self.actor() + "/outbox"

    def followers(self) -> str:
        return self.actor() + "/followers"

    def following(self) -> str:
        return self.actor() + "/following"

    def featured(self) -> str:
        return self.actor() + "/featured"

    def avatar(self) -> str:
        return self.static("avatar.png")

    def header_image(self) -> str:
        return self.static("header.png")

    def local(self, path: str) -> str:
        """A URL on this blog from an absolute path (``/media/...``)."""
        return self.base_url + path

    def comment(self, comment_id: int) -> str:
        """A comment's dereferenceable id; its HTML view redirects to the anchor."""
        return f"{self.base_url}/comments/{comment_id}"

    def replies(self, object_url: str) -> str:
        return object_url + "/replies"

    def context(self, post_id: str) -> str:
        return post_id + "/context"

    def likes(self, post_id: str) -> str:
        return post_id + "/likes"

    def shares(self, post_id: str) -> str:
        return post_id + "/shares"

    def activity(self, token: str) -> str:
        return f"{self.base_url}/activities/{token}"

    def webmention(self) -> str:
        """The Webmention endpoint (W3C Webmention §3.1.2), advertised on post pages."""
        return f"{self.base_url}/webmention"

    def pingback(self) -> str:
        """The pingback server (Pingback 1.0, XML-RPC), advertised on post pages."""
        return f"{self.base_url}/xmlrpc"

    def linkback_status(self, token: str) -> str:
        """The status page of a received Webmention or pingback."""
        return f"{self.base_url}/linkbacks/{token}"

    def guest_actor(self, guest_id: int) -> str:
        return f"{self.base_url}/guests/{guest_id}"

    def guest_outbox(self, guest_id: int) -> str:
        return self.guest_actor(guest_id) + "/outbox"

    # -- reverse -------------------------------------------------------------------------------
    def _local_path(self, url: str) -> str | None:
        """The path of ``url`` if it is on this blog's origin, else None. Hosts compare as URLs mean
        them (case, IDNA spelling, trailing dot, explicit default port: WHATWG URL Standard, "origin";
        RFC 3986 section 6.2.3), so a reply addressed to ``https://blog.example:443/posts/x`` is ours."""
        origin = origin_of(url)
        if not origin[1] or origin != origin_of(self.base_url):
            return None
        try:
            parts = urlsplit(url)
        except ValueError:
            return None
        if parts.username is not None or parts.password is not None:
            return None
        return parts.path

    def match_post(self, url: str) -> str | None:
        """The id path (``Post.ap_path``) of the post ``url`` names, or None: ``/posts/slug`` or
        ``/posts/slug/N`` (N >= 2); collections under them are not posts."""
        path = self._local_path(url)
        if path is None or not path.startswith("/posts/"):
            return None
        parts = path[len("/posts/") :].split("/")
        if len(parts) == 1 and parts[0]:
            return path
        if len(parts) == 2 and parts[0]:
            version = parse_id(parts[1])
            return path if version is not None and version >= 2 else None
        return None

    def match_comment(self, url: str) -> int | None:
        """The id of the comment ``url`` names, or None."""
        path = self._local_path(url)
        if path is None or not path.startswith("/comments/"):
            return None
        rest = path[len("/comments/") :]
        return parse_id(rest)

    def match_guest(self, url: str) -> int | None:
        """The actor row id of the local guest or site actor ``url`` names (``/guests/<n>``, any
        fragment such as ``#main-key`` ignored), or None."""
        path = self._local_path(url.split("#", 1)[0])
        if path is None or not path.startswith("/guests/"):
            return None
        rest = path[len("/guests/") :]
        return parse_id(rest)

    def is_actor(self, url: str) -> bool:
        return url.split("#", 1)[0] == self.actor()
