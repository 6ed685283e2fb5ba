"""The cached post page, answered at the edge of the application.

A hug of death is many plain GETs of one post page whose current version is already rendered
(web/pagecache.py). For those, the full stack (four middleware layers, routing, a ``Request`` and
a ``Response``, the validators formatted again) costs several times the page itself. This outermost
ASGI layer answers them directly: it reads the post's state (the same coalesced version read as
the page route: a change is visible at once, in any process), and when the cache holds that
version it sends the stored bytes with headers encoded once per version. The headers are the ones
the route and ``SecurityHeaders`` would have sent (validators, ``Link``, CSP, nosniff,
Referrer-Policy), and the body gets what the route adds per response (the comment form's fresh
token, ``fill``): tests/flows/test_page_cache.py compares the two paths.

Everything else goes to the application unchanged: other paths and methods, conditional requests
(304s stay with the route), ActivityPub clients, a post that is missing, a draft, deleted or not
yet cached, a stale site profile (``SiteProfileRefresh`` reloads it). The state already read is
left in the scope, so the route does not read it a second time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from email.utils import format_datetime

from starlette.types import ASGIApp, Receive, Scope, Send

from fedblog.blog.site import ProfileCache
from fedblog.services import Services
from fedblog.web.middleware import HTML_HEADERS
from fedblog.web.negotiation import accepts_activitypub
from fedblog.web.pagecache import Cached, PageCache, PostState, VersionReader

log = logging.getLogger("fedblog")

PREFIX = "/posts/"
STATE_KEY = "fedblog.post_state"  # scope key: (slug, PostState | None) already read for this request
MAX_HEADS = 1024
Head = list[tuple[bytes, bytes]]


def stashed_state(scope: Scope, slug: str) -> tuple[bool, PostState | None]:
    """(found, state): the state this layer read for ``slug`` in this request, if it read one."""
    stash = scope.get(STATE_KEY)
    if stash is not None and stash[0] == slug:
        return True, stash[1]
    return False, None


def _slug(scope: Scope) -> str | None:
    if scope["type"] != "http" or scope["method"] != "GET" or scope.get("root_path"):
        return None
    path: str = scope["path"]
    if not path.startswith(PREFIX):
        return None
    slug = path[len(PREFIX):]
    if not slug or "/" in slug:
        return None
    for name, value in scope["headers"]:
        if name in (b"if-none-match", b"if-modified-since"):
            return None  # the route answers 304s
        if name == b"accept" and accepts_activitypub(value.decode("latin-1")):
            return None
    return slug


class CachedPostPages:
    def __init__(self, app: ASGIApp, *, services: Services, cache: PageCache, versions: VersionReader,
                 fill: Callable[[bytes], bytes] | None = None) -> None:
        """``fill``: what the route does to a cached body per response (web/comments.py puts a fresh
        form token in it); the body then differs per response, so its ETag is weak (RFC 9110 §8.8.1)."""
        self.app = app
        self.fill = fill
        self.site: ProfileCache = services.site
        self.cache = cache
        self.versions = versions
        self._heads: dict[str, Head] = {}  # ETag -> the encoded headers of that version

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        slug = _slug(scope)
        if slug is None or self.site.stale():
            await self.app(scope, receive, send)
            return
        try:
            state = await self.versions.get(slug)
        except Exception:  # the route reads again and answers with the page that says what is wrong
            log.debug("post state read failed in the fast path", exc_info=True)
            await self.app(scope, receive, send)
            return
        scope[STATE_KEY] = (slug, state)
        entry = None
        if state is not None and not state.draft and state.deleted_at is None:
            entry = self.cache.get(state, "html")
        if entry is None or state is None:
            await self.app(scope, receive, send)
            return
        body = entry.body if self.fill is None else self.fill(entry.body)
        head = [*self._head(state, entry), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": head})
        await send({"type": "http.response.body", "body": body})

    def _head(self, state: PostState, entry: Cached) -> Head:
        etag = self.cache.etag(state, "html")
        if self.fill is not None:
            etag = "W/" + etag
        head = self._heads.get(etag)
        if head is None:
            fields = {
                **{k.lower(): v for k, v in entry.headers.items()},
                "etag": etag,
                "last-modified": format_datetime(state.modified, usegmt=True),
                "vary": "Accept",
                "cache-control": "no-cache",
                "content-type": entry.media_type,
                **HTML_HEADERS,
            }
            head = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in fields.items()]
            if len(self._heads) >= MAX_HEADS:
                self._heads.clear()
            self._heads[etag] = head
        return head

