"""The effective profile: what the admin saved (``blog_state``) merged over the settings' defaults.

Everything public reads the blog's title, description, author, handle, images, profile fields and
moderation policy from here: the actor document, every page, the feeds, WebFinger and NodeInfo.

Caching: each process keeps the profile it read together with the save counter
(``profile_version``). A save updates the saving process at once. Other processes check the
counter at most every ``TTL`` seconds (one primary-key read, done off the event loop before a
request is handled) and reload all values (one query) only when it moved; so two processes
agree within ``TTL`` seconds.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, replace
from html import escape
from urllib.parse import urlsplit

from markdown_it import MarkdownIt
from sqlalchemy.engine import Engine
from sqlmodel import Session

from fedblog.blog.markup import html_to_text, sanitize_remote_html
from fedblog.settings import MODERATION_MODES, Settings
from fedblog.store import profile as store

TTL = 2.0  # seconds another process may serve the previous profile after a save
MAX_FIELDS = 4  # Mastodon's default limit of profile fields (MAX_FIELDS in app/models/account.rb)
DEFAULT_AVATAR = ("/static/avatar.png", "image/png", 256, 256)
DEFAULT_HEADER = ("/static/header.png", "image/png", 1500, 500)
_MD = MarkdownIt("commonmark", {"html": False, "linkify": False})


@dataclass(frozen=True)
class ImageRef:
    path: str  # under the base URL: /static/avatar.png or /media/uploads/<key>/full.png
    media_type: str
    width: int
    height: int

    def to_json(self) -> str:
        return json.dumps({"path": self.path, "mediaType": self.media_type, "width": self.width,
                           "height": self.height})

    @classmethod
    def from_json(cls, raw: str | None, default: tuple[str, str, int, int]) -> ImageRef:
        try:
            d = json.loads(raw or "")
            return cls(str(d["path"]), str(d["mediaType"]), int(d["width"]), int(d["height"]))
        except (ValueError, KeyError, TypeError):
            return cls(*default)


@dataclass(frozen=True)
class SiteProfile:
    name: str
    description: str  # as written (Markdown or plain text)
    author: str
    handle: str
    avatar: ImageRef
    header: ImageRef
    fields: tuple[tuple[str, str], ...]  # (name, value) as written
    moderation: str
    comment_consent_default: bool
    domain: str

    @property
    def description_html(self) -> str:
        return description_html(self.description)

    @property
    def description_text(self) -> str:
        return html_to_text(self.description_html)

    @property
    def acct(self) -> str:
        return f"{self.handle}@{self.domain}"

    def fields_html(self) -> list[tuple[str, str]]:
        return [(name, field_value_html(value)) for name, value in self.fields]


def description_html(text: str) -> str:
    """Markdown (plain text is Markdown too) to HTML, through the one sanitiser; raw HTML is escaped."""
    return sanitize_remote_html(_MD.render(text)).strip()


def is_link(value: str) -> bool:
    parts = urlsplit(value.strip())
    return parts.scheme in ("http", "https") and bool(parts.netloc) and " " not in value.strip()


def field_value_html(value: str) -> str:
    """A profile field's value as Mastodon renders it: a URL becomes a link with ``rel="me"``
    (Mastodon app/helpers/formatting_helper.rb ``account_field_value_format`` with ``with_rel_me``),
    scheme hidden with ``class="invisible"`` as its TextFormatter does; anything else is text."""
    value = value.strip()
    if not is_link(value):
        return escape(value)
    parts = urlsplit(value)
    prefix, rest = f"{parts.scheme}://", value[len(parts.scheme) + 3:]
    return (f'<a href="{escape(value)}" target="_blank" rel="nofollow noopener me" translate="no">'
            f'<span class="invisible">{escape(prefix)}</span><span class="">{escape(rest)}</span>'
            f'<span class="invisible"></span></a>')


def defaults(settings: Settings) -> SiteProfile:
    return SiteProfile(
        name=settings.name, description=settings.description, author=settings.author, handle=settings.handle,
        avatar=ImageRef(*DEFAULT_AVATAR), header=ImageRef(*DEFAULT_HEADER), fields=(),
        moderation=settings.moderation, comment_consent_default=settings.comment_consent_default,
        domain=settings.domain,
    )


def merge(settings: Settings, values: dict[str, str]) -> SiteProfile:
    """Stored values over the settings' defaults; a damaged value falls back to its default."""
    base = defaults(settings)
    fields: tuple[tuple[str, str], ...] = ()
    try:
        raw = json.loads(values.get("fields", "[]"))
        fields = tuple((str(n), str(v)) for n, v in raw)[:MAX_FIELDS]
    except (ValueError, TypeError):
        pass
    moderation = values.get("moderation", base.moderation)
    consent = values.get("comment_consent_default")
    return replace(
        base,
        name=values.get("name") or base.name,
        description=values.get("description") or base.description,
        author=values.get("author") or base.author,
        handle=values.get("handle") or base.handle,
        avatar=ImageRef.from_json(values.get("avatar"), DEFAULT_AVATAR),
        header=ImageRef.from_json(values.get("header"), DEFAULT_HEADER),
        fields=fields,
        moderation=moderation if moderation in MODERATION_MODES else base.moderation,
        comment_consent_default=base.comment_consent_default if consent is None else consent == "1",
    )


class ProfileCache:
    """The effective profile of this process, revalidated against the save counter (see above)."""

    def __init__(self, settings: Settings, ttl: float = TTL) -> None:
        self.settings = settings
        self.ttl = ttl
        self._profile = defaults(settings)
        self._version: str | None = None  # None: never read
        self._checked = float("-inf")
        self._lock = threading.Lock()

    def current(self) -> SiteProfile:
        """What this process serves now (no database work)."""
        return self._profile

    def handle(self) -> str:
        return self._profile.handle

    @property
    def version(self) -> str:
        """The version of the profile this process holds ('' before the first read)."""
        return self._version or ""

    def stale(self) -> bool:
        return self._version is None or time.monotonic() - self._checked >= self.ttl

    def load(self, session: Session) -> SiteProfile:
        """Read the version (and the values if it moved) in ``session``; returns the profile."""
        version = store.read_version(session)
        if version != self._version:
            version, values = store.read_all(session)
            self.set(merge(self.settings, values), version)
        self._checked = time.monotonic()
        return self._profile

    def refresh(self, engine: Engine) -> SiteProfile:
        """Blocking: revalidate if stale (run it in the database pool)."""
        with self._lock:
            if not self.stale():
                return self._profile
            with Session(engine) as session:
                return self.load(session)

    def set(self, profile: SiteProfile, version: str) -> None:
        self._profile, self._version, self._checked = profile, version, time.monotonic()
