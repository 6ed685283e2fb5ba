"""The pages a post links to, pure: the targets of the Webmentions and pingbacks a blog sends.

W3C Webmention (https://www.w3.org/TR/webmention/) section 3.1 "Sending Webmentions": the sender
notifies each URL its post links to. Here a target is the value of an `<a href>` or `<area href>`
(links a reader follows) or of a `cite` attribute (`<blockquote>`, `<q>`, `<del>`, `<ins>`: the page
quoted), resolved against the post's URL, that is:

- an absolute http(s) URL of at most 2048 characters without spaces or control characters
  (`linkcheck.clean_url`), without its fragment (`#section` names a part of the same page: the
  receiver's page is the URL without it);
- not on our own site (same host, any scheme or port): links between our own posts are not
  linkbacks, and the blog must never queue requests to itself;
- new in the list: each URL once, in document order, and at most `MAX_TARGETS` per post, so one
  post cannot make the blog send thousands of requests.

Images, scripts and stylesheets are not targets: a page embedding a picture does not mention its host.
The HTML is parsed (Python's `html.parser`), so a URL in a comment or in plain text is no link.
"""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit, urlunsplit

from fedblog.activitypub.linkcheck import clean_url

MAX_TARGETS = 50  # per post: a sender's bound, not the spec's
_LINK_ATTRIBUTES = {"a": "href", "area": "href", "blockquote": "cite", "q": "cite", "del": "cite", "ins": "cite"}


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.values: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = _LINK_ATTRIBUTES.get(tag)
        if wanted is None:
            return
        for name, value in attrs:
            if name == wanted and value:
                self.values.append(value)
                return

    handle_startendtag = handle_starttag


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower().rstrip(".")
    except ValueError:
        return ""


def without_fragment(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))


def outbound_links(html: str, page_url: str, own_site: str, limit: int = MAX_TARGETS) -> list[str]:
    """The distinct http(s) URLs ``html`` (a post's body, at ``page_url``) links to outside ``own_site``
    (our base URL), in document order, at most ``limit``."""
    scan = _Links()
    scan.feed(html)
    scan.close()
    own = _host(own_site)
    found: dict[str, None] = {}
    for value in scan.values:
        try:
            resolved = urljoin(page_url, value.strip())
        except ValueError:
            continue
        url = clean_url(resolved)
        if url is None:
            continue
        try:
            url = without_fragment(url)
        except ValueError:
            continue
        host = _host(url)
        if not host or host == own or url in found:
            continue
        found[url] = None
        if len(found) >= limit:
            break
    return list(found)
