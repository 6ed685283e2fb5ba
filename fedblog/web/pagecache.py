"""Rendered post pages and Article documents, cached per (post, version, representation).

``post.version`` is bumped by database triggers in the same transaction as any change to the post,
its tags or its interactions (store/migrations 0003), so every process of a deployment agrees on
it; one indexed read of it per request tells whether a cached body is still the page. The cache
is a bounded LRU (bytes and entries). The version also makes the validators: a strong ``ETag``
(RFC 9110 §8.8.3) and ``Last-Modified`` (§8.8.2), answered with 304 to ``If-None-Match`` /
``If-Modified-Since`` (§13.1.2, §13.1.3; If-None-Match wins when both are sent).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import col
from starlette.requests import Request
from starlette.responses import Response

from fedblog import __version__
from fedblog.blog.site import ProfileCache
from fedblog.clock import utc
from fedblog.services import Services
from fedblog.settings import Settings
from fedblog.store.groupcommit import Coalescer
from fedblog.store.tables import Post

MAX_ENTRIES = 4096

# the one cheap read per request: a unique index (the slug for pages, the id path for Articles), a
# few small columns. Requests that arrive while a read is running share the next one
# (``VersionReader``): a hug of death on one post costs one query per batch, and each request
# still reads a version at least as new as the moment it arrived.
_COLUMNS = (col(Post.id), col(Post.slug), col(Post.ap_path), col(Post.version), col(Post.changed_at),
            col(Post.updated_at), col(Post.draft), col(Post.deleted_at))
_BY = {
    "slug": sa_select(*_COLUMNS).where(col(Post.slug).in_(bindparam("keys", expanding=True))),
    "ap_path": sa_select(*_COLUMNS).where(col(Post.ap_path).in_(bindparam("keys", expanding=True))),
}


@dataclass(frozen=True)
class PostState:
    id: int
    slug: str
    ap_path: str  # the path of the post's ActivityPub id (fedblog.urls.post_path)
    version: int
    modified: datetime  # the later of the post's own update time and its last change
    draft: bool
    deleted_at: datetime | None


def read_states(engine: Engine, by: str, keys: list[str]) -> list[PostState | None]:
    """Run in the database pool: for each slug (``by="slug"``) or id path (``by="ap_path"``), the
    post's id, version and validators, or None."""
    with engine.connect() as conn:
        rows = conn.execute(_BY[by], {"keys": sorted(set(keys))}).all()
    found = {}
    for row in rows:
        modified = utc(row.updated_at)
        if row.changed_at is not None:
            modified = max(modified, utc(row.changed_at))
        state = PostState(row.id, row.slug, row.ap_path, row.version, modified, bool(row.draft), row.deleted_at)
        found[row.slug if by == "slug" else row.ap_path] = state
    return [found.get(key) for key in keys]


class VersionReader:
    """Post states read through the read pool (``Services.run_read``: never queued behind inbox
    writes), the reads of concurrent requests coalesced.

    ``by="slug"``: the post a page URL shows (the live post of that slug); ``by="ap_path"``: the
    post an ActivityPub id names (which may be a deleted one: its Tombstone)."""

    def __init__(self, services: Services, by: str = "slug") -> None:
        engine = services.engine
        self._reads: Coalescer[str, PostState | None] = Coalescer(
            lambda keys: read_states(engine, by, keys), run=services.run_read, concurrency=4)

    async def get(self, key: str) -> PostState | None:
        return await self._reads.submit(key)


def build_tag(settings: Settings) -> str:
    """What else the bytes depend on: the software version and the blog's own settings."""
    parts = (__version__, settings.base_url, settings.domain, settings.handle, settings.name,
             settings.description, settings.language)
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Cached:
    body: bytes
    media_type: str
    headers: dict[str, str]


class PageCache:
    """A bounded LRU of rendered bodies; thread-safe, so the database pool may fill it too."""

    def __init__(self, settings: Settings, max_bytes: int, max_entries: int = MAX_ENTRIES,
                 site: ProfileCache | None = None) -> None:
        self.tag = build_tag(settings)
        self.site = site  # the admin's profile (title, description, handle) is in every page too
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._items: OrderedDict[tuple[int, int, str, str], Cached] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def _key(self, state: PostState, representation: str) -> tuple[int, int, str, str]:
        return state.id, state.version, representation, self.site.version if self.site is not None else ""

    def etag(self, state: PostState, representation: str) -> str:
        site = f"-{self.site.version}" if self.site is not None else ""
        return f'"{self.tag}{site}-{state.id}-{state.version}-{representation}"'

    def get(self, state: PostState, representation: str) -> Cached | None:
        key = self._key(state, representation)
        with self._lock:
            entry = self._items.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return entry

    def put(self, state: PostState, representation: str, entry: Cached) -> None:
        size = len(entry.body)
        if size > self.max_bytes // 4:  # one huge page must not flush everything else
            return
        key = self._key(state, representation)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= len(old.body)
            self._items[key] = entry
            self._bytes += size
            while self._items and (self._bytes > self.max_bytes or len(self._items) > self.max_entries):
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped.body)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)


def validators(cache: PageCache, state: PostState, representation: str) -> dict[str, str]:
    return {
        "ETag": cache.etag(state, representation),
        "Last-Modified": format_datetime(state.modified, usegmt=True),
        "Vary": "Accept",
        "Cache-Control": "no-cache",  # may be stored, but revalidated (304) before each use: RFC 9111 §5.2.2.4
    }


def _etag_matches(header: str, etag: str) -> bool:
    if header.strip() == "*":
        return True
    # weak comparison (RFC 9110 §13.1.2): W/"x" matches "x"
    return any(t.strip().removeprefix("W/") == etag for t in header.split(","))


def not_modified(request: Request, etag: str, modified: datetime) -> bool:
    """True when the client's copy is current (GET/HEAD only)."""
    if request.method not in ("GET", "HEAD"):
        return False
    inm = request.headers.get("if-none-match")
    if inm is not None:
        return _etag_matches(inm, etag)
    ims = request.headers.get("if-modified-since")
    if ims:
        try:
            since = parsedate_to_datetime(ims)
        except (TypeError, ValueError):
            return False
        if since.tzinfo is None:
            return False
        return modified.replace(microsecond=0) <= since
    return False


def not_modified_response(headers: dict[str, Any]) -> Response:
    return Response(status_code=304, headers=headers)
