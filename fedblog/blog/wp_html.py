"""WordPress's stored text to the HTML it showed: ``wpautop``, ``make_clickable``, sanitising.

WordPress keeps post and comment text without paragraph tags and adds them when it displays
the text, through ``wpautop`` (``wp-includes/formatting.php``); comments also go through
``make_clickable`` (bare URLs become links). These are Python ports of the parts that change
what a reader sees: https://developer.wordpress.org/reference/functions/wpautop/ and
https://developer.wordpress.org/reference/functions/make_clickable/. Block-editor posts
(``<!-- wp:paragraph -->``) already carry their ``<p>`` tags and WordPress skips ``wpautop`` for
them (``do_blocks``), so we do too.

Everything then goes through an allow-list sanitiser (nh3): comments through the one used for all
remote HTML, posts through ammonia's default list (images, headings, tables, figures).
"""

from __future__ import annotations

import re
from html import escape, unescape

import nh3

from fedblog.blog.markup import sanitize_remote_html

_ALLBLOCKS = (
    r"(?:table|thead|tfoot|caption|col|colgroup|tbody|tr|td|th|div|dl|dd|dt|ul|ol|li|pre|form|map|area|"
    r"blockquote|address|style|p|h[1-6]|hr|fieldset|legend|section|article|aside|hgroup|header|footer|nav|"
    r"figure|figcaption|details|menu|summary)"
)
_BLOCK_OPEN = re.compile(r"(<" + _ALLBLOCKS + r"[\s/>])")
_BLOCK_CLOSE = re.compile(r"(</" + _ALLBLOCKS + r">)")
_P_AROUND_BLOCK = re.compile(r"<p>\s*(</?" + _ALLBLOCKS + r"[^>]*>)\s*</p>")
_P_BEFORE_BLOCK = re.compile(r"<p>\s*(</?" + _ALLBLOCKS + r"[^>]*>)")
_P_AFTER_BLOCK = re.compile(r"(</?" + _ALLBLOCKS + r"[^>]*>)\s*</p>")
_BR_AFTER_BLOCK = re.compile(r"(</?" + _ALLBLOCKS + r"[^>]*>)\s*<br />")
_BR_BEFORE = re.compile(r"<br />(\s*</?(?:p|li|div|dl|dd|dt|th|pre|td|ul|ol)[^>]*>)")
_TAG = re.compile(r"<[^>]*>")
_PRESERVE = re.compile(r"<(script|style|svg|math).*?</\1>", re.S)


def _autop_plain(text: str, br: bool = True) -> str:
    """``wpautop`` for text without any tag (most comments): the same result, a quarter of the steps."""
    text = re.sub(r"\n\n+", "\n\n", (text + "\n").replace("\r\n", "\n").replace("\r", "\n"))
    text = "".join("<p>" + c.strip("\n") + "</p>\n" for c in re.split(r"\n\s*\n", text) if c)
    text = re.sub(r"<p>\s*</p>", "", text)
    if br:
        text = re.sub(r"(?<!<br />)\s*\n", "<br />\n", text)
    text = _BR_BEFORE.sub(r"\1", _BR_AFTER_BLOCK.sub(r"\1", text))
    return re.sub(r"\n</p>$", "</p>", text)


def wpautop(text: str, br: bool = True) -> str:
    """Paragraphs and line breaks from double and single newlines, as WordPress displays text."""
    if not text.strip():
        return ""
    if "<" not in text:
        return _autop_plain(text, br)
    return _wpautop(text, br)


def _wpautop(text: str, br: bool) -> str:
    text += "\n"
    pre_tags: dict[str, str] = {}
    if "<pre" in text:
        parts = text.split("</pre>")
        last = parts.pop()
        text = ""
        for i, part in enumerate(parts):
            start = part.find("<pre")
            if start == -1:
                text += part
                continue
            name = f"<pre wp-pre-tag-{i}></pre>"
            pre_tags[name] = part[start:] + "</pre>"
            text += part[:start] + name
        text += last
    text = re.sub(r"<br\s*/?>\s*<br\s*/?>", "\n\n", text)
    text = _BLOCK_OPEN.sub(lambda m: "\n\n" + m.group(1), text)
    text = _BLOCK_CLOSE.sub(lambda m: m.group(1) + "\n\n", text)
    text = re.sub(r"(<hr\s*?/?>)", lambda m: m.group(1) + "\n\n", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _TAG.sub(lambda m: m.group(0).replace("\n", " <!-- wpnl --> "), text)
    if "<figcaption" in text:
        text = re.sub(r"\s*(<figcaption[^>]*>)", r"\1", text)
        text = re.sub(r"</figcaption>\s*", "</figcaption>", text)
    text = re.sub(r"\n\n+", "\n\n", text)
    chunks = [c for c in re.split(r"\n\s*\n", text) if c]
    text = "".join("<p>" + c.strip("\n") + "</p>\n" for c in chunks)
    text = re.sub(r"<p>\s*</p>", "", text)
    text = re.sub(r"<p>([^<]+)</(div|address|form)>", r"<p>\1</p></\2>", text)
    text = _P_AROUND_BLOCK.sub(r"\1", text)
    text = re.sub(r"<p>(<li.+?)</p>", r"\1", text)
    text = re.sub(r"<p><blockquote([^>]*)>", r"<blockquote\1><p>", text, flags=re.I)
    text = text.replace("</blockquote></p>", "</p></blockquote>")
    text = _P_BEFORE_BLOCK.sub(r"\1", text)
    text = _P_AFTER_BLOCK.sub(r"\1", text)
    if br:
        text = _PRESERVE.sub(lambda m: m.group(0).replace("\n", "<WPPreserveNewline />"), text)
        text = text.replace("<br>", "<br />").replace("<br/>", "<br />")
        text = re.sub(r"(?<!<br />)\s*\n", "<br />\n", text)
        text = text.replace("<WPPreserveNewline />", "\n")
    text = _BR_AFTER_BLOCK.sub(r"\1", text)
    text = _BR_BEFORE.sub(r"\1", text)
    text = re.sub(r"\n</p>$", "</p>", text)
    for name, pre in pre_tags.items():
        text = text.replace(name, pre)
    return text.replace(" <!-- wpnl --> ", "\n").replace("<!-- wpnl -->", "\n")


_URL = re.compile(r"(?<![\w/\"'=])(https?://[^\s<>\"'…“”‘’«»]+)", re.I)
_A_OPEN, _A_CLOSE = re.compile(r"^<a[\s>]", re.I), re.compile(r"^</a\s*>", re.I)


def make_clickable(text: str) -> str:
    """Bare http(s) URLs in text (not in tags, not inside links) become links, as WordPress shows
    comments. Trailing punctuation stays outside the link."""
    out: list[str] = []
    in_link = False
    pos = 0
    for m in _TAG.finditer(text):
        out.append(text[pos:m.start()] if in_link else _linkify(text[pos:m.start()]))
        tag = m.group(0)
        in_link = True if _A_OPEN.match(tag) else False if _A_CLOSE.match(tag) else in_link
        out.append(tag)
        pos = m.end()
    out.append(text[pos:] if in_link else _linkify(text[pos:]))
    return "".join(out)


def _linkify(segment: str) -> str:
    def link(m: re.Match[str]) -> str:
        url, tail = m.group(1), ""
        while url and url[-1] in ".,;:!?)":
            if url[-1] == ")" and url.count("(") >= url.count(")"):
                break
            url, tail = url[:-1], url[-1] + tail
        shown = escape(unescape(url), quote=True)
        return f'<a href="{shown}" rel="nofollow">{shown}</a>{tail}'

    return _URL.sub(link, segment)


_CAPTION = re.compile(r"\[caption[^\]]*\](.*?)\[/caption\]", re.S)
_CAPTIONED = re.compile(r"\s*((?:<a\s[^>]*>\s*)?<img[^>]*>(?:\s*</a>)?)(.*)", re.S)


def _figure(m: re.Match[str]) -> str:
    """``[caption]<img> text[/caption]`` as WordPress shows it: a figure with its caption
    (``img_caption_shortcode``)."""
    inner = _CAPTIONED.match(m.group(1))
    if inner is None:
        return m.group(1)
    caption = inner.group(2).strip()
    return f"<figure>{inner.group(1)}" + (f"<figcaption>{caption}</figcaption>" if caption else "") + "</figure>"

_SHORTCODE = re.compile(r"\[(/?)([a-zA-Z_][\w-]*)(?:\s[^\]]*)?\]")
_POST_CLEANER = nh3.Cleaner(link_rel="noopener")  # ammonia's default allow-list; comments stripped


def shortcodes_in(content: str) -> set[str]:
    """Names of WordPress shortcodes left in a post (``[gallery ids=...]``), which only WordPress
    (or a plugin) can expand; ``caption`` is handled."""
    return {m.group(2) for m in _SHORTCODE.finditer(content) if m.group(2) not in ("caption",)}


def post_html(content: str) -> str:
    """A post's ``content:encoded`` as WordPress showed it, sanitised."""
    text = _CAPTION.sub(_figure, content)
    if "<!-- wp:" not in text:
        text = wpautop(text)
    return _POST_CLEANER.clean(text).strip()


def comment_html(content: str) -> str:
    """A comment's stored text as WordPress showed it (links, paragraphs), sanitised like any
    HTML from a reader."""
    if "<" not in content:  # plain text (most comments): links after paragraphs, the same result, faster
        return sanitize_remote_html(make_clickable(wpautop(content))).strip()
    return sanitize_remote_html(wpautop(make_clickable(content))).strip()


_UPLOAD = re.compile(r"""(?:src|href)=["']([^"']*/wp-content/uploads/[^"']+)["']""", re.I)


def uploads_in(content: str) -> list[str]:
    """URLs of files in the WordPress uploads folder that a post's HTML uses (images, links)."""
    return list(dict.fromkeys(m.group(1) for m in _UPLOAD.finditer(content)))


_SEPARATORS = (" · ", " | ", " » ", " — ", " – ", " - ", " :: ")


def linkback_parts(author: str, url: str | None) -> tuple[str, str]:
    """(site name, title) of a pingback or trackback. WordPress stores the linking page's
    ``<title>`` as the comment author (``wp_xmlrpc_server::pingback_ping``); titles usually end
    with the site's name after a separator ("Post title · Site"). Without one, the site is the
    host of the linking URL."""
    for sep in _SEPARATORS:
        if sep in author:
            title, site = author.rsplit(sep, 1)
            if title.strip() and site.strip() and len(site) <= 80:
                return site.strip(), title.strip()
    host = re.sub(r"^https?://(www\.)?", "", url or "").split("/", 1)[0]
    return (host or author or "a website"), author
