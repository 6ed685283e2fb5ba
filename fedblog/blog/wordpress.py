"""Reading a WordPress export (WXR, "WordPress eXtended RSS", as Tools → Export writes it).

``read_wxr`` streams the file: it yields one ``WpSite`` (the channel's header), then one ``WpItem``
per ``<item>`` with its comments, and drops each element once read, so memory stays bounded by
the largest single item, not by the file. The XML goes through defusedxml with DTDs forbidden: a
WordPress export never has a DTD, so an entity bomb or an external entity is refused before any
entity is expanded (https://github.com/tiran/defusedxml#attack-vectors).

The format is WordPress's own exporter, ``wp-admin/includes/export.php`` (WXR 1.2 since
WordPress 3.1): https://github.com/WordPress/wordpress-develop/blob/trunk/src/wp-admin/includes/export.php
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

_WP_NS = re.compile(r"^http://wordpress\.org/export/(1\.[0-2])/$")
_EXCERPT_NS = re.compile(r"^http://wordpress\.org/export/1\.[0-2]/excerpt/$")
_OTHER_NS = {
    "http://purl.org/rss/1.0/modules/content/": "content",
    "http://purl.org/dc/elements/1.1/": "dc",
    "http://wellformedweb.org/CommentAPI/": "wfw",
}
WHAT_TO_DO = "export the blog again with WordPress's Tools → Export (All content) and import that file"


class WxrError(ValueError):
    """The file is not a WordPress export that can be read; the message says what to do."""


@dataclass(frozen=True)
class WpSite:
    title: str
    link: str
    base_site_url: str  # the key under which the import remembers what it brought in
    wxr_version: str
    authors: dict[str, str]  # login -> display name


@dataclass(frozen=True)
class WpComment:
    wp_id: int
    author: str
    email: str | None
    url: str | None
    date_gmt: datetime | None
    date_local: datetime | None
    content: str
    approved: str  # "1" approved, "0" held, "spam", "trash", "post-trashed"
    type: str  # "comment" ("" before WordPress 5.5), "pingback", "trackback", or a plugin's type
    parent: int  # wp_id of the comment it answers, 0 for none


@dataclass(frozen=True)
class WpItem:
    wp_id: int
    post_type: str  # post | page | attachment | nav_menu_item | revision | wp_block...
    status: str  # publish | draft | pending | private | future | trash | inherit | auto-draft
    title: str
    link: str
    slug: str  # wp:post_name, percent-encoded as WordPress stores it; may be empty for drafts
    content: str
    excerpt: str
    date_gmt: datetime | None
    date_local: datetime | None
    modified_gmt: datetime | None
    creator: str
    categories: tuple[tuple[str, str, str], ...]  # (domain "category" | "post_tag" | ..., nicename, label)
    comments: tuple[WpComment, ...]
    attachment_url: str | None
    has_password: bool


def _names(tag: str, cache: dict[str, str]) -> str:
    """``{http://wordpress.org/export/1.2/}post_id`` -> ``wp:post_id`` (cached: tags repeat)."""
    name = cache.get(tag)
    if name is None:
        if tag.startswith("{"):
            uri, local = tag[1:].split("}", 1)
            prefix = "wp" if _WP_NS.match(uri) else "excerpt" if _EXCERPT_NS.match(uri) else _OTHER_NS.get(uri, uri)
            name = f"{prefix}:{local}"
        else:
            name = tag
        cache[tag] = name
    return name


def wp_datetime(value: str | None) -> datetime | None:
    """WordPress's ``2012-03-08 09:12:00``; the zero date of unpublished posts is None."""
    value = (value or "").strip()
    if not value or value.startswith("0000-00-00"):
        return None
    try:
        parsed = datetime.fromisoformat(value)  # C-fast; strptime cost 10 % of an import
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _int(value: str | None) -> int:
    value = (value or "").strip()
    return int(value) if value.isascii() and value.isdigit() else 0


def _fields(el: Element, cache: dict[str, str]) -> dict[str, str]:
    return {_names(c.tag, cache): c.text or "" for c in el if len(c) == 0}


def _comment(el: Element, cache: dict[str, str]) -> WpComment:
    f = _fields(el, cache)
    return WpComment(
        wp_id=_int(f.get("wp:comment_id")),
        author=f.get("wp:comment_author", "").strip(),
        email=f.get("wp:comment_author_email", "").strip() or None,
        url=f.get("wp:comment_author_url", "").strip() or None,
        date_gmt=wp_datetime(f.get("wp:comment_date_gmt")),
        date_local=wp_datetime(f.get("wp:comment_date")),
        content=f.get("wp:comment_content", ""),
        approved=f.get("wp:comment_approved", "").strip(),
        type=f.get("wp:comment_type", "").strip() or "comment",
        parent=_int(f.get("wp:comment_parent")),
    )


def _item(el: Element, cache: dict[str, str]) -> WpItem:
    f: dict[str, str] = {}
    categories: list[tuple[str, str, str]] = []
    comments: list[WpComment] = []
    for child in el:
        name = _names(child.tag, cache)
        if name == "category":
            label = (child.text or "").strip()
            categories.append((child.get("domain", ""), child.get("nicename", ""), label))
        elif name == "wp:comment":
            comments.append(_comment(child, cache))
        elif len(child) == 0:
            f[name] = child.text or ""
    return WpItem(
        wp_id=_int(f.get("wp:post_id")),
        post_type=f.get("wp:post_type", "post").strip(),
        status=f.get("wp:status", "").strip(),
        title=f.get("title", "").strip(),
        link=f.get("link", "").strip(),
        slug=f.get("wp:post_name", "").strip(),
        content=f.get("content:encoded", ""),
        excerpt=f.get("excerpt:encoded", ""),
        date_gmt=wp_datetime(f.get("wp:post_date_gmt")),
        date_local=wp_datetime(f.get("wp:post_date")),
        modified_gmt=wp_datetime(f.get("wp:post_modified_gmt")),
        creator=f.get("dc:creator", "").strip(),
        categories=tuple(categories),
        comments=tuple(comments),
        attachment_url=f.get("wp:attachment_url", "").strip() or None,
        has_password=bool(f.get("wp:post_password", "").strip()),
    )


def _site(channel: Element, version: str, cache: dict[str, str]) -> WpSite:
    f = _fields(channel, cache)
    authors: dict[str, str] = {}
    for child in channel:
        if _names(child.tag, cache) == "wp:author":
            a = _fields(child, cache)
            login = a.get("wp:author_login", "").strip()
            authors[login] = a.get("wp:author_display_name", "").strip() or login
    base = (f.get("wp:base_site_url") or f.get("wp:base_blog_url") or f.get("link") or "").strip().rstrip("/")
    return WpSite(title=f.get("title", "").strip(), link=f.get("link", "").strip(), base_site_url=base,
                  wxr_version=version, authors=authors)


def read_wxr(source: IO[bytes], where: str = "the file", *, records: bool = True) -> Iterator[WpSite | WpItem | None]:
    """Stream a WXR file: a ``WpSite``, then every ``WpItem`` (``None`` for each item when
    ``records`` is false: checking a file need not build them). Raises ``WxrError`` (one line, with
    what to do) for a file that is not XML, not a WordPress export, or has a DTD or entities."""
    cache: dict[str, str] = {}
    depth = 0
    root: Element | None = None
    channel: Element | None = None
    version: str | None = None
    site_sent = False
    events = iterparse(source, events=("start", "end"), forbid_dtd=True)
    try:
        for event, el in events:
            if event == "start":
                depth += 1
                if depth == 1:
                    root = el
                    if el.tag != "rss":
                        local = el.tag.rsplit("}", 1)[-1]
                        raise WxrError(f"{where} is XML but not a WordPress export (it starts with <{local}>, "
                                       f"a WordPress export with <rss>): {WHAT_TO_DO}")
                elif depth == 2 and el.tag == "channel":
                    channel = el
                elif depth == 3 and channel is not None and el.tag == "item" and not site_sent:
                    if version is None:
                        raise WxrError(f"{where} is an RSS feed, not a WordPress export (no wp:wxr_version "
                                       f"before the first item): {WHAT_TO_DO}")
                    site_sent = True
                    yield _site(channel, version, cache)
                continue
            depth -= 1
            if depth == 2 and channel is not None:
                name = _names(el.tag, cache)
                if name == "wp:wxr_version":
                    version = (el.text or "").strip()
                    if version not in ("1.0", "1.1", "1.2"):
                        raise WxrError(f"{where} is a WordPress export of version {version[:10]!r}, which this "
                                       f"importer does not know (it reads 1.0 to 1.2): {WHAT_TO_DO}")
                elif name == "item":
                    yield _item(el, cache) if records else None
                    channel.remove(el)  # drop what was read: memory stays bounded by one item
                elif name not in ("wp:author", "title", "link", "wp:base_site_url", "wp:base_blog_url"):
                    channel.remove(el)  # categories, tags, terms: posts name theirs in each item
        if root is None or channel is None or version is None:
            raise WxrError(f"{where} is XML but not a WordPress export (no channel with wp:wxr_version): "
                           f"{WHAT_TO_DO}")
        if not site_sent:
            yield _site(channel, version, cache)
    except ParseError as exc:
        line = getattr(exc, "position", (0, 0))[0]
        raise WxrError(f"{where} is not well-formed XML (line {line}): it is damaged or not a WordPress "
                       f"export: {WHAT_TO_DO}") from None
    except DefusedXmlException as exc:
        raise WxrError(f"{where} declares a DTD or entities ({type(exc).__name__}), which a WordPress export "
                       f"never does; refused so that no entity expansion (an 'XML bomb') can run: "
                       f"{WHAT_TO_DO}") from None


def wxr_records(path: Path, records: bool = True) -> Iterator[WpSite | WpItem | None]:
    with path.open("rb") as f:
        yield from read_wxr(f, where=str(path), records=records)


def check_file(path: Path) -> tuple[WpSite, int]:
    """Read the whole file once without storing anything: its site and number of items."""
    if not path.is_file():
        raise WxrError(f"{path}: no such file: give the path of the .xml file WordPress exported")
    site: WpSite | None = None
    count = 0
    for record in wxr_records(path, records=False):
        if isinstance(record, WpSite):
            site = record
        else:
            count += 1
    if site is None:  # read_wxr always yields the site of a valid file
        raise WxrError(f"{path} is not a WordPress export: {WHAT_TO_DO}")
    return site, count
