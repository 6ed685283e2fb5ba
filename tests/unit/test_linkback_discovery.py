"""Webmention endpoint and pingback server discovery (fedblog.activitypub.linkback_discovery).

The table reproduces the 23 webmention.rocks discovery tests (https://webmention.rocks/, test data in
github.com/aaronpk/webmention.rocks lib/Rocks/DiscoveryTestData.php and the test 23 redirect
controller): the same headers, `<link>` tags in the head and markup in the post body, on a page
shaped like the site's layout (an h-entry with other links around).
"""

from __future__ import annotations

import pytest

from fedblog.activitypub.linkback_discovery import (
    Endpoint,
    discover,
    parse_link_header,
    pingback_server,
    webmention_endpoint,
)

BASE = "https://webmention.rocks/"
Headers = list[tuple[str, str]]


def _page(n: int | str, head: str = "", body: str = "") -> str:
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Webmention Rocks!</title>
<link rel="stylesheet" href="/assets/style.css">{head}</head><body>
<div class="post-container h-entry"><div class="p-author h-card"><a href="/"><img src="/assets/icon.png"
class="u-photo" alt="Webmention Rocks!"></a></div><h1 class="p-name"><a href="/test/{n}">Discovery Test #{n}</a></h1>
<div class="e-content">{body}</div><a href="/test/{n}" class="u-url">Published</a></div></body></html>"""


def _case(n: int, headers: Headers, head: str = "", body: str = "", expected: str | None = None,
          url: str | None = None) -> tuple[str, Headers, str, str]:
    page_url = url or f"{BASE}test/{n}"
    return page_url, headers, _page(n, head, body), expected or f"{BASE}test/{n}/webmention"


ROCKS = {
    1: _case(1, [("Link", "</test/1/webmention>; rel=webmention")]),
    2: _case(2, [("Link", f"<{BASE}test/2/webmention>; rel=webmention")]),
    3: _case(3, [], head='<link rel="webmention" href="/test/3/webmention">'),
    4: _case(4, [], head=f'<link href="{BASE}test/4/webmention" rel="webmention">'),
    5: _case(5, [], body='This post advertises its <a rel="webmention" href="/test/5/webmention">endpoint</a>.'),
    6: _case(6, [], body=f'Its <a href="{BASE}test/6/webmention" rel="webmention">endpoint</a>, absolute.'),
    7: _case(7, [("LinK", f"<{BASE}test/7/webmention>; rel=webmention")]),
    8: _case(8, [("Link", f'<{BASE}test/8/webmention>; rel="webmention"')]),
    9: _case(9, [], head=f'<link rel="webmention somethingelse" href="{BASE}test/9/webmention">'),
    10: _case(10, [("Link", f'<{BASE}test/10/webmention>; rel="webmention somethingelse"')]),
    11: _case(11, [("Link", '</test/11/webmention>; rel="webmention"')],
              head='<link rel="webmention" href="/test/11/webmention/error">',
              body='An <a href="/test/11/webmention/error" rel="webmention">&lt;a&gt; tag</a> too.'),
    12: _case(12, [], head='<link rel="not-webmention" href="/test/12/webmention/error">',
              body='There is also a <a href="/test/12/webmention" rel="webmention">correct endpoint</a>.'),
    13: _case(13, [], body='A comment <!-- <a href="/test/13/webmention/error" rel="webmention"></a> --> and a '
                           '<a href="/test/13/webmention" rel="webmention">correct endpoint</a>.'),
    14: _case(14, [], body='Code: <code>&lt;a href="/test/14/webmention/error" rel="webmention"&gt;&lt;/a&gt;'
                           '</code> and a <a href="/test/14/webmention" rel="webmention">correct endpoint</a>.'),
    15: _case(15, [], head='<link rel="webmention" href="">', expected=f"{BASE}test/15"),
    16: _case(16, [], body='An <a href="/test/16/webmention" rel="webmention">&lt;a&gt; tag</a>, then '
                           '<link rel="webmention" href="/test/16/webmention/error">.'),
    17: _case(17, [], body='A &lt;link&gt; tag <link rel="webmention" href="/test/17/webmention"> then an '
                           '<a href="/test/17/webmention/error" rel="webmention">&lt;a&gt; tag</a>.'),
    18: _case(18, [("Link", f'<{BASE}test/18/webmention/error>; rel="other"'),
                   ("Link", f'<{BASE}test/18/webmention>; rel="webmention"')]),
    19: _case(19, [("Link", f'<{BASE}test/19/webmention/error>; rel="other", '
                           f'<{BASE}test/19/webmention>; rel="webmention"')]),
    20: _case(20, [], body='A &lt;link&gt; tag <link rel="webmention"> with no href, and '
                           '<a href="/test/20/webmention" rel="webmention">this endpoint</a>.'),
    21: _case(21, [], head='<link rel="webmention" href="/test/21/webmention?query=yes">',
              expected=f"{BASE}test/21/webmention?query=yes"),
    22: _case(22, [], head='<link rel="webmention" href="22/webmention">'),
    # /test/23/page redirects to /test/23/page/<code>; the endpoint is relative to the final URL
    23: (f"{BASE}test/23/page/Q9xXCw2d", [("Link", "<webmention-endpoint/Q9xXCw2d>; rel=webmention")],
         '<div class="h-entry"><h2 class="p-name">Discovery Test #23</h2><p><a href="/test/23/page" '
         'class="u-url">permalink</a></p><p><a rel="webmention" href="webmention-endpoint/Q9xXCw2d">'
         'webmention endpoint</a></p></div>', f"{BASE}test/23/page/webmention-endpoint/Q9xXCw2d"),
}


def test_the_table_has_all_23_discovery_tests() -> None:
    assert sorted(ROCKS) == list(range(1, 24))


@pytest.mark.parametrize("number", sorted(ROCKS))
def test_webmention_rocks_discovery(number: int) -> None:
    page_url, headers, html, expected = ROCKS[number]
    assert webmention_endpoint(page_url, headers, html) == expected
    assert discover(page_url, headers, html) == Endpoint("webmention", expected)


def test_a_head_request_style_call_without_body_uses_headers_only() -> None:
    assert webmention_endpoint(f"{BASE}test/1", [("link", "</test/1/webmention?head=true>; rel=webmention")],
                               None) == f"{BASE}test/1/webmention?head=true"
    assert webmention_endpoint(f"{BASE}test/3", [], None) is None


def test_rel_on_other_elements_does_not_count() -> None:
    html = '<p><b href="/error" rel="webmention">b</b><area href="/error2" rel="webmention"></p>'
    assert webmention_endpoint(f"{BASE}x", [], html) is None


def test_non_http_endpoints_are_skipped() -> None:
    html = '<link rel="webmention" href="javascript:alert(1)"><a rel="webmention" href="/ok">ok</a>'
    assert webmention_endpoint("https://site.example/p", [("Link", "<mailto:x@y>; rel=webmention")],
                               html) == "https://site.example/ok"


@pytest.mark.parametrize(("value", "expected"), [
    ("<https://a.example/wm>; rel=webmention", [("https://a.example/wm", {"webmention"})]),
    ('<https://a.example/a,b>; rel="webmention"; title="x, y; z", </two>; REL=Other',
     [("https://a.example/a,b", {"webmention"}), ("/two", {"other"})]),
    ('</x>; rel="WebMention Me"; rel="ignored"', [("/x", {"webmention", "me"})]),
    ('</x>;rel=webmention,</y>', [("/x", {"webmention"}), ("/y", set())]),
    ('</q>; title="a \\" quote"; rel=webmention', [("/q", {"webmention"})]),
    ("garbage without brackets", []),
    ("<unterminated; rel=webmention", []),
    ("", []),
])
def test_parse_link_header(value: str, expected: list[tuple[str, set[str]]]) -> None:
    assert [(uri, set(rels)) for uri, rels in parse_link_header(value)] == expected


WP_PAGE = """<html><head><link rel="pingback" href="https://wp.example/xmlrpc.php">
<link rel='stylesheet' href='x.css'></head><body><p>Post</p></body></html>"""


def test_pingback_server_from_header_then_link() -> None:
    page = "https://wp.example/2026/12/post/"
    assert pingback_server(page, [("X-Pingback", "https://wp.example/xmlrpc.php")], None) == "https://wp.example/xmlrpc.php"
    assert pingback_server(page, [], WP_PAGE) == "https://wp.example/xmlrpc.php"
    assert pingback_server(page, [("x-pingback", " https://h.example/rpc ")], WP_PAGE) == "https://h.example/rpc"
    assert pingback_server(page, [], '<a rel="pingback" href="https://wp.example/xmlrpc.php">a</a>') is None
    assert pingback_server(page, [], '<!-- <link rel="pingback" href="https://x.example/"> -->') is None
    assert pingback_server(page, [], '<link rel="pingback" href="https://wp.example/xmlrpc.php?a=1&amp;b=2">'
                           ) == "https://wp.example/xmlrpc.php?a=1&b=2"


def test_discover_prefers_webmention_then_falls_back_to_pingback() -> None:
    page = "https://wp.example/2026/12/post/"
    both = WP_PAGE.replace("</head>", '<link rel="webmention" href="/wp-json/webmention/1.0/endpoint"></head>')
    assert discover(page, [], both) == Endpoint("webmention", "https://wp.example/wp-json/webmention/1.0/endpoint")
    assert discover(page, [], WP_PAGE) == Endpoint("pingback", "https://wp.example/xmlrpc.php")
    assert discover(page, [("Content-Type", "text/html")], "<p>nothing</p>") is None
    assert discover(page, [], None) is None


def test_broken_html_does_not_raise() -> None:
    assert webmention_endpoint("https://s.example/", [], "<a rel=webmention href=/wm><<<<</a") == "https://s.example/wm"
    for junk in ("<link rel='webmention' href='/wm' <script>", "<a rel=\"webmention\x00\" href='\ud800'>", "</" * 500,
                 "<![CDATA[<a rel=webmention href=/x>]]>", "<a rel='webmention' href='http://[::1'>x</a>"):
        result = webmention_endpoint("https://s.example/", [("Link", junk)], junk)  # must not raise
        assert result is None or result.startswith("https://s.example/")
