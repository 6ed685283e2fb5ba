"""HTML in and out: Markdown for our own posts, and the one sanitiser for remote HTML.

``sanitize_remote_html`` is the single gate for HTML we did not write (fediverse notes,
Webmention and pingback excerpts, web comments). It uses nh3 (ammonia) with Mastodon's
allow-list and never raises.
"""

from __future__ import annotations

import re
from html import escape

import nh3
from markdown_it import MarkdownIt

# Mastodon's Sanitize::Config::MASTODON_STRICT allow-list (security-anchors.md §2.6).
_TAGS = {
    "p", "br", "span", "a", "del", "s", "pre", "blockquote", "code", "b", "strong", "u", "i",
    "em", "ul", "ol", "li", "ruby", "rt", "rp",
}
_ATTRIBUTES = {
    "a": {"href", "class", "translate"},
    "span": {"class", "translate"},
    "ol": {"start", "reversed"},
    "li": {"value"},
    "p": {"class"},
}
_URL_SCHEMES = {
    "http", "https", "dat", "dweb", "ipfs", "ipns", "ssb", "gopher", "xmpp", "magnet", "gemini",
}
_CLASS_OK = re.compile(r"^(h-\S*|p-\S*|u-\S*|dt-\S*|e-\S*|mention|hashtag|ellipsis|invisible)$")


def _filter_class(tag: str, attr: str, value: str) -> str | None:
    if attr != "class":
        return value
    kept = [c for c in value.split() if _CLASS_OK.match(c)]
    return " ".join(kept) or None


_CLEANER = nh3.Cleaner(  # built once: a Cleaner per call costs a fifth of the sanitising
    tags=_TAGS,
    attributes=_ATTRIBUTES,
    url_schemes=_URL_SCHEMES,
    link_rel="nofollow noopener ugc",
    attribute_filter=_filter_class,
    strip_comments=True,
)


_TEXT_CLEANER = nh3.Cleaner(tags=set())  # built once, like _CLEANER


def sanitize_remote_html(html: str | None) -> str:
    """Reduce untrusted HTML to the allow-list. Links get ``rel="nofollow noopener ugc"``."""
    if not html:
        return ""
    try:
        return _CLEANER.clean(html)
    except Exception:  # nh3 raises only on invalid arguments; never let remote HTML crash us
        return escape(html)


def plain_text_to_html(text: str) -> str:
    """Paragraphs from a plain-text comment: escaped, blank lines split paragraphs."""
    paras = [p.strip() for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    return "\n".join("<p>" + escape(p).replace("\n", "<br>\n") + "</p>" for p in paras)


def html_to_text(html: str) -> str:
    """A plain-text rendering, for summaries and meta descriptions."""
    text = _TEXT_CLEANER.clean(html)
    return re.sub(r"\s+", " ", text).strip()


class MarkdownRenderer:
    """CommonMark plus tables and strikethrough; raw HTML in posts is the author's own."""

    def __init__(self) -> None:
        self._md = MarkdownIt("commonmark", {"html": True, "typographer": False}).enable(
            ["table", "strikethrough"]
        )

    def render(self, text: str) -> str:
        html: str = self._md.render(text)  # markdown-it-py types render() as Any
        return html
