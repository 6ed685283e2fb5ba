"""What a fetched source page says about our post, for a Webmention or a pingback; pure.

`analyse(html, source_url, target)` returns `SourceEvidence`:
- whether the source links to the target (`linkcheck.links_to`, W3C Webmention 3.2.2);
- the kind of response, read with microformats2 (https://microformats.org/wiki/microformats2-parsing,
  parser `mf2py`): an h-entry whose `in-reply-to` / `repost-of` / `like-of` names the target is a
  reply / repost / like, anything else a mention (the IndieWeb "response type" reading that
  webmention.io also applies);
- the author by a simplified IndieWeb authorship algorithm (https://indieweb.org/authorship-spec):
  the entry's `author` h-card (or plain name / URL), else its enclosing h-feed's, else the page's
  `rel=author`, else the source's domain;
- title (the entry's explicit name, else the page `<title>`), published time, content, and a
  plain-text excerpt around the link in the WordPress pingback style ("[…] text […]").
Nothing here sanitises HTML for display: `content_html` is the remote markup, for the caller to clean.
mf2py (html5lib + BeautifulSoup) costs grow with the square of the nesting (5,000 nested `<div>`
took 5 s, 20,000 took 100 s, 100 KB of nested h-entry 11 s), so pages past `MAX_HTML_DEPTH`,
`MAX_MF_ROOTS` or `MAX_MF_NESTING` are read without microformats: still checked for the link, a mention.
Even bounded, reading a 1 MiB page takes about a second: call this off the event loop.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import mf2py

from fedblog.activitypub.linkcheck import (
    ELLIPSIS,
    EXCERPT_RADIUS,
    MAX_HTML_DEPTH,
    clean_url,
    excerpt_of,
    links_to,
    normalise_url,
    scan_page,
)

__all__ = [
    "ELLIPSIS", "EXCERPT_RADIUS", "MAX_HTML_DEPTH", "MAX_MF_NESTING", "MAX_MF_ROOTS", "Author", "SourceEvidence",
    "analyse", "links_to", "normalise_url",
]

MAX_MF_ROOTS = 200
MAX_MF_NESTING = 16
_SPACE = re.compile(r"\s+")
_MAX_NAME = 500


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


def _http(value: Any) -> str | None:
    """A property value as an http(s) URL, or None: a `javascript:` author link must not reach a page."""
    url = _as_url(value)
    return clean_url(url) if url is not None else None


def _card(value: Any) -> Author | None:
    """An author from an h-card, a URL or a name; None when it names nobody."""
    if isinstance(value, dict) and "h-card" in value.get("type", []):
        props = value.get("properties", {})
        card = Author(_as_text(_first(props, "name")), _http(_first(props, "url")), _http(_first(props, "photo")))
        return card if card.name or card.url else None
    if isinstance(value, str) and value.strip():
        text = _SPACE.sub(" ", value).strip()
        if " " in text or not urlsplit(text).scheme:  # a name, not a URL
            return Author(text[:_MAX_NAME], None, None)
        url = clean_url(text)  # a URL: http(s) only
        return Author(None, url, None) if url else None
    return None


def _author(entry: dict[str, Any] | None, feed: dict[str, Any] | None, parsed: dict[str, Any], source: str) -> Author:
    for holder in (entry, feed):
        if holder is not None and (card := _card(_first(holder.get("properties", {}), "author"))) is not None:
            return card
    rel_author = parsed.get("rels", {}).get("author") or []
    parts = urlsplit(source)
    home = f"{parts.scheme}://{parts.netloc}/"
    url = (clean_url(rel_author[0]) if rel_author and isinstance(rel_author[0], str) else None) or home
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
                isinstance(html, str) and scan_page(html, source, target).found):
            return entry, feed
    return entries[0] if entries else (None, None)


def analyse(html: str, source_url: str, target: str) -> SourceEvidence:
    """Read the source page for a Webmention or pingback to `target`; pure and never raises on bad HTML."""
    scan = scan_page(html, source_url, target)
    bounded = scan.depth <= MAX_HTML_DEPTH and scan.mf_roots <= MAX_MF_ROOTS and scan.mf_nesting <= MAX_MF_NESTING
    parsed = _parse_mf2(html, source_url) if bounded else {}
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
        url=_http(_first(props, "url")) or source_url,
        title=(title or page_title or "")[:_MAX_NAME] or None,
        published=_published(_as_text(_first(props, "published"))),
        content_html=content_html if isinstance(content_html, str) else None,
        content_text=content_text,
        excerpt=excerpt_of(scan),
    )
