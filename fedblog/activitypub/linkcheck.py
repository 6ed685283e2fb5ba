"""Link checks over a fetched source page (HTML, JSON or text), pure: the Webmention/pingback evidence.

W3C Webmention (https://www.w3.org/TR/webmention/) section 3.2.2 "Webmention Verification": the
receiver checks the source by its media type: HTML by its link attributes (`<a href>`, `<img src>`,
`<video src>`, ...), JSON by exact property values, plain text by a string search. Here links are
resolved against the page (and its `<base href>`) before comparing; the fragment, the case of
scheme and host and a default port are ignored, nothing else. Links inside comments, scripts or
escaped text do not count, because the HTML is parsed (Python's `html.parser`), not searched.

The same single pass collects the page `<title>`, the text of the block around the first visible
link (for a WordPress-style pingback excerpt, "[…] text around the link […]") and the element
nesting depth and microformat counts that bound the microformats parser (see `linkback`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit, urlunsplit

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
MAX_HTML_DEPTH = 256  # element nesting counted up to here (the microformats reader's bound, see linkback)
_VOID = frozenset("area base br col embed hr img input link meta param source track wbr".split())
_SELF_CLOSING = frozenset("p li dt dd option tr td th".split())  # a new one closes the open one
_SPACE = re.compile(r"\s+")
_MAX_TITLE_CHARS = 500
MAX_URL_CHARS = 2000  # the length of the tables' URL columns


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


def clean_url(raw: str) -> str | None:
    """An absolute http(s) URL of at most `MAX_URL_CHARS`, without whitespace or control characters; else None."""
    url = raw.strip()
    if not url or len(url) > MAX_URL_CHARS or any(ch.isspace() or ord(ch) < 0x20 or ch == "\x7f" for ch in url):
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  # raises ValueError for a port out of range
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return url


def same_resource(first: str, second: str) -> bool:
    """Equal after `normalise_url` (so a fragment or the case of the host does not make another page)."""
    return normalise_url(first) == normalise_url(second)


def check_webmention_request(source: object, target: object) -> tuple[str, str] | str:
    """W3C Webmention 3.2.1 "Request Verification", the part that needs no database: `source` and
    `target` must be http(s) URLs and must differ. Returns the clean pair, or the reason for a 400.
    (Whether `target` is one of our posts is the caller's check; the spec says to ignore its fragment.)
    """
    if not isinstance(source, str) or not isinstance(target, str):
        return "source and target are both required"
    clean_source, clean_target = clean_url(source), clean_url(target)
    if clean_source is None:
        return "source must be an absolute http(s) URL"
    if clean_target is None:
        return "target must be an absolute http(s) URL"
    if same_resource(clean_source, clean_target):
        return "source and target must not be the same URL"
    return clean_source, clean_target


def _join(base: str, reference: str) -> str | None:
    try:
        return urljoin(base, reference.strip())
    except ValueError:  # e.g. an unbalanced IPv6 bracket
        return None


class PageScan(HTMLParser):
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
        self.mf_roots = 0
        self.mf_nesting = 0
        self._mf_open: list[str] = []
        self.depth = 0
        self._open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value for name, value in attrs if value is not None}
        if tag not in _VOID and self.depth <= MAX_HTML_DEPTH:  # past the bound, stop counting (stays bounded)
            if tag in _SELF_CLOSING and tag in self._open[-3:]:
                del self._open[len(self._open) - 1 - self._open[::-1].index(tag):]
            self._open.append(tag)
            self.depth = max(self.depth, len(self._open))
        if any(token.startswith("h-") for token in values.get("class", "").split()):
            self.mf_roots += 1
            self._mf_open.append(tag)
            self.mf_nesting = max(self.mf_nesting, len(self._mf_open))
        if tag == "base" and not self._base_seen and "href" in values:
            self._base_seen = True
            self.base = _join(self.base, values["href"]) or self.base
        if tag == "title" and self.title is None:
            self._in_title = True
        if tag in _SKIP:
            self._skip.append(tag)
        if tag in _BLOCKS and self.blocks[-1]:
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
        if tag in self._open:
            del self._open[len(self._open) - 1 - self._open[::-1].index(tag):]
        if self._mf_open and self._mf_open[-1] == tag:
            self._mf_open.pop()
        if tag == "title":
            self._in_title = False
        if tag in _SKIP and tag in self._skip:
            while self._skip and self._skip.pop() != tag:
                pass
        if tag in _BLOCKS and self.blocks[-1]:
            self.blocks.append([])

    def handle_data(self, data: str) -> None:
        data = data.replace(_MARK, "")
        if self._in_title:
            if len(self.title or "") < _MAX_TITLE_CHARS:  # an unclosed <title> must not swallow the page
                self.title = ((self.title or "") + data)[:_MAX_TITLE_CHARS]
        elif not self._skip:
            self.blocks[-1].append(data)

    def _is_target(self, value: str | None) -> bool:
        if not value or not value.strip():
            return False
        url = _join(self.base, value)
        return url is not None and normalise_url(url) == self.target


def scan_page(html: str, page_url: str, target: str) -> PageScan:
    scan = PageScan(page_url, target)
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
        return scan_page(body, source_url, target).found
    if kind == "application/json" or kind.endswith("+json"):
        wanted = normalise_url(target)
        try:
            return any(normalise_url(text) == wanted for text in _json_strings(json.loads(body)))
        except (ValueError, RecursionError):  # not JSON, or nested deeper than the interpreter's stack
            return False
    if kind.startswith("text/"):
        return target in body
    return False


def excerpt_of(scan: PageScan) -> str:
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
