"""What a fetched source page says about our post: Webmention and pingback verification, pure.

Given the source document (already fetched by the guarded client), its final URL and our target URL:
- `links_to`: does the source link to the target? W3C Webmention (https://www.w3.org/TR/webmention/)
  section 3.2.2: HTML is checked by its link attributes (`<a href>`, `<img src>`, `<video src>`, ...),
  JSON by exact property values, plain text by a string search. Links are resolved against the
  page (and its `<base href>`) before comparing; the fragment, the case of scheme and host and a
  default port are ignored, nothing else. Links inside comments, scripts or escaped text do not count.
- `analyse`: the kind of response, read with microformats2 (https://microformats.org/wiki/microformats2-parsing,
  parser `mf2py`): an h-entry whose `in-reply-to` / `repost-of` / `like-of` names the target is a
  reply / repost / like, anything else a mention (as IndieWeb "response type" and webmention.io do).
  The author follows a simplified IndieWeb authorship algorithm (https://indieweb.org/authorship-spec):
  the entry's `author` h-card, else its enclosing h-feed's, else the page's `rel=author`, else the
  source's domain. Also title, published time, content, and a plain-text excerpt around the link in
  the WordPress pingback style ("[…] text around the link […]").
Nothing here sanitises HTML for display: `content_html` is the remote markup, to be cleaned by the caller.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import mf2py

EXCERPT_RADIUS = 120  # characters of context kept on each side of the link
ELLIPSIS = "[…]"
_URL_ATTRIBUTES = {
    "a": ("href",), "area": ("href",), "link": ("href",), "img": ("src",), "audio": ("src",),
    "video": ("src", "poster"), "source": ("src",), "track": ("src",), "embed": ("src",), "iframe": ("src",),
    "object": ("data",), "blockquote": ("cite",), "q": ("cite",), "del": ("cite",), "ins": ("cite",),
}
_BLOCKS = frozenset("address article aside blockquote br dd div dl dt figcaption figure footer form h1 h2 h3 h4 h5 h6 "
                    "header hr li main nav ol p pre section table td th tr ul".split())
_SKIP = frozenset({"script", "style", "template", "noscript", "title", "svg", "math"})
_MARK = "\x00"
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Author:
    name: str | None
    url: str | None
    photo: str | None


@dataclass(frozen=True)
class SourceEvidence:
    """Everything the caller needs to record a linkback; `links_to_target` False means reject it."""

    links_to_target: bool
    kind: str  # reply | repost | like | mention
    author: Author
    url: str  # the entry's own url, else the source URL
    title: str | None
    published: datetime | None
    content_html: str | None  # unsanitised remote HTML from the h-entry's e-content
    content_text: str
    excerpt: str


def normalise_url(url: str) -> str:
    """Scheme and host lower-cased, default port and fragment dropped; anything unparsable as given."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return url.strip()
    host = (parts.hostname or "").lower()
    scheme = parts.scheme.lower()
    if port is not None and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    if parts.username or parts.password:
        host = f"{parts.netloc.rsplit('@', 1)[0]}@{host}"
    return urlunsplit((scheme, host, parts.path or "/", parts.query, ""))


def _join(base: str, reference: str) -> str | None:
    try:
        return urljoin(base, reference.strip())
    except ValueError:  # e.g. an unbalanced IPv6 bracket
        return None


class _Scan(HTMLParser):
    """One pass over the page: the links, the text in blocks, and where the first target link sits."""

    def __init__(self, page_url: str, target: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base = page_url
        self.target = normalise_url(target)
        self.title: str | None = None
        self.found = False
        self.blocks: list[list[str]] = [[]]
        self.mark_block = -1
        self._skip: list[str] = []
        self._in_title = False
        self._base_seen = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value for name, value in attrs if value is not None}
        if tag == "base" and not self._base_seen and "href" in values:
            self._base_seen = True
            self.base = _join(self.base, values["href"]) or self.base
        if tag == "title" and self.title is None:
            self._in_title = True
        if tag in _SKIP:
            self._skip.append(tag)
        if tag in _BLOCKS:
            self.blocks.append([])
        if self.mark_block < 0 and any(self._is_target(values.get(a)) for a in _URL_ATTRIBUTES.get(tag, ())):
            self.found = True
            if not self._skip and tag != "link":  # the excerpt sits around the first visible link
                self.blocks[-1].append(_MARK)
                self.mark_block = len(self.blocks) - 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag in _SKIP:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in _SKIP and tag in self._skip:
            while self._skip and self._skip.pop() != tag:
                pass
        if tag in _BLOCKS:
            self.blocks.append([])

    def handle_data(self, data: str) -> None:
        data = data.replace(_MARK, "")
        if self._in_title:
            self.title = (self.title or "") + data
        elif not self._skip:
            self.blocks[-1].append(data)

    def _is_target(self, value: str | None) -> bool:
        if not value or not value.strip():
            return False
        url = _join(self.base, value)
        return url is not None and normalise_url(url) == self.target


def _scan(html: str, page_url: str, target: str) -> _Scan:
    scan = _Scan(page_url, target)
    scan.feed(html)
    scan.close()
    return scan


def _json_strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _json_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _json_strings(item)


def links_to(body: str, source_url: str, target: str, media_type: str = "text/html") -> bool:
    """Webmention 3.2.2: does the source document link to `target`?"""
    kind = media_type.split(";", 1)[0].strip().lower()
    if kind in ("text/html", "application/xhtml+xml"):
        return _scan(body, source_url, target).found
    if kind == "application/json" or kind.endswith("+json"):
        try:
            data = json.loads(body)
        except ValueError:
            return False
        wanted = normalise_url(target)
        return any(normalise_url(text) == wanted for text in _json_strings(data))
    if kind.startswith("text/"):
        return target in body
    return False


def _excerpt(scan: _Scan) -> str:
    if scan.mark_block < 0:
        return ""
    text = _SPACE.sub(" ", "".join(scan.blocks[scan.mark_block])).strip()
    at = text.index(_MARK)
    text = text.replace(_MARK, "")
    if len(text) > 2 * EXCERPT_RADIUS:
        start, end = max(0, at - EXCERPT_RADIUS), min(len(text), at + EXCERPT_RADIUS)
        if start > 0 and " " in text[start:at]:
            start = text.index(" ", start) + 1
        if end < len(text) and " " in text[at:end]:
            end = text.rindex(" ", at, end)
        text = text[start:end].strip()
    return f"{ELLIPSIS} {text} {ELLIPSIS}" if text else ""


def _parse_mf2(html: str, url: str) -> dict[str, Any]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = mf2py.parse(doc=html, url=url)
    except Exception:  # a parser bug on hostile markup must not fail the linkback; treat as no microformats
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _entries(parsed: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any] | None]]:
    """Each h-entry with its enclosing h-feed (top level and one level into feeds)."""
    for item in parsed.get("items", []):
        if not isinstance(item, dict):
            continue
        types = item.get("type", [])
        if "h-entry" in types:
            yield item, None
        elif "h-feed" in types:
            for child in item.get("children", []):
                if isinstance(child, dict) and "h-entry" in child.get("type", []):
                    yield child, item


def _first(props: dict[str, Any], name: str) -> Any:
    values = props.get(name)
    return values[0] if isinstance(values, list) and values else None


def _as_url(value: Any) -> str | None:
    """A property value as a URL: a string, an `{"value": url, "alt": ...}` photo, or an embedded h-* url."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        inner = _first(value.get("properties", {}), "url") if "properties" in value else None
        if isinstance(inner, str):
            return inner
        if isinstance(value.get("value"), str):
            return str(value["value"])
    return None


def _as_text(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("value")
    if not isinstance(value, str):
        return None
    return _SPACE.sub(" ", value).strip() or None


def _names_target(props: dict[str, Any], name: str, target: str) -> bool:
    values = props.get(name)
    return isinstance(values, list) and any(
        (url := _as_url(v)) is not None and normalise_url(url) == target for v in values)


def _card(value: Any) -> Author | None:
    if isinstance(value, dict) and "h-card" in value.get("type", []):
        props = value.get("properties", {})
        return Author(_as_text(_first(props, "name")), _as_url(_first(props, "url")), _as_url(_first(props, "photo")))
    if isinstance(value, str) and value.strip():
        text = value.strip()
        return Author(None, text, None) if urlsplit(text).scheme in ("http", "https") else Author(text, None, None)
    return None


def _author(entry: dict[str, Any] | None, feed: dict[str, Any] | None, parsed: dict[str, Any], source: str) -> Author:
    for holder in (entry, feed):
        if holder is not None and (card := _card(_first(holder.get("properties", {}), "author"))) is not None:
            return card
    rel_author = parsed.get("rels", {}).get("author") or []
    parts = urlsplit(source)
    home = f"{parts.scheme}://{parts.netloc}/"
    url = rel_author[0] if rel_author and isinstance(rel_author[0], str) else home
    return Author(parts.hostname, url, None)


def _published(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


_Entry = tuple[dict[str, Any] | None, dict[str, Any] | None]


def _choose_entry(parsed: dict[str, Any], source: str, target: str) -> _Entry:
    """The representative h-entry: the one whose url is the page, else one that links to the target, else the first."""
    entries = list(_entries(parsed))
    own = normalise_url(source)
    for entry, feed in entries:
        if _names_target(entry.get("properties", {}), "url", own):
            return entry, feed
    for entry, feed in entries:
        props = entry.get("properties", {})
        content = _first(props, "content")
        html = content.get("html", "") if isinstance(content, dict) else ""
        if any(_names_target(props, p, target) for p in ("in-reply-to", "repost-of", "like-of")) or (
                isinstance(html, str) and _scan(html, source, target).found):
            return entry, feed
    return entries[0] if entries else (None, None)


def analyse(html: str, source_url: str, target: str) -> SourceEvidence:
    """Read the source page for a Webmention or pingback to `target`; pure and never raises on bad HTML."""
    scan = _scan(html, source_url, target)
    parsed = _parse_mf2(html, source_url)
    entry, feed = _choose_entry(parsed, source_url, normalise_url(target))
    props: dict[str, Any] = entry.get("properties", {}) if entry else {}
    wanted = normalise_url(target)
    kind = next((k for p, k in (("in-reply-to", "reply"), ("repost-of", "repost"), ("like-of", "like"))
                 if _names_target(props, p, wanted)), "mention")
    content = _first(props, "content")
    content_html = content.get("html") if isinstance(content, dict) else None
    content_text = _as_text(content) or ""
    name = _as_text(_first(props, "name"))
    title = name if name and name != content_text else None
    page_title = _SPACE.sub(" ", scan.title or "").strip() or None
    return SourceEvidence(
        links_to_target=scan.found,
        kind=kind,
        author=_author(entry, feed, parsed, source_url),
        url=_as_url(_first(props, "url")) or source_url,
        title=title or page_title,
        published=_published(_as_text(_first(props, "published"))),
        content_html=content_html if isinstance(content_html, str) else None,
        content_text=content_text,
        excerpt=_excerpt(scan),
    )
