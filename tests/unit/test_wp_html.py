"""WordPress's display transforms, against cases from WordPress's own wpautop/make_clickable tests
(tests/phpunit/tests/formatting/wpAutop.php, makeClickable.php in wordpress-develop)."""

from __future__ import annotations

import random

import pytest

from fedblog.blog.markup import sanitize_remote_html
from fedblog.blog.wp_html import (
    _autop_plain,
    _wpautop,
    comment_html,
    linkback_parts,
    make_clickable,
    post_html,
    wpautop,
)


@pytest.mark.parametrize("stored, shown", [
    ("a\nb", "<p>a<br />\nb</p>\n"),
    ("one\n\ntwo", "<p>one</p>\n<p>two</p>\n"),
    ("<pre>keep\n\nthis</pre>", "<pre>keep\n\nthis</pre>\n"),
    ("<ul>\n<li>a</li>\n<li>b</li>\n</ul>", "<ul>\n<li>a</li>\n<li>b</li>\n</ul>\n"),
    ("<blockquote>q</blockquote>\n\nafter", "<blockquote><p>q</p></blockquote>\n<p>after</p>\n"),
    ("<h2>Title</h2>\ntext", "<h2>Title</h2>\n<p>text</p>\n"),
    ("", ""),
])
def test_wpautop(stored: str, shown: str) -> None:
    assert wpautop(stored) == shown


def test_make_clickable_links_bare_urls_only() -> None:
    assert make_clickable("see http://a.example/x.") == (
        'see <a href="http://a.example/x" rel="nofollow">http://a.example/x</a>.')
    assert make_clickable('(http://a.example/p_(b)) and <a href="http://b.example">http://b.example</a>') == (
        '(<a href="http://a.example/p_(b)" rel="nofollow">http://a.example/p_(b)</a>) and '
        '<a href="http://b.example">http://b.example</a>')
    assert make_clickable("x=1&y http://a.example/?a=1&b=2") == (
        'x=1&y <a href="http://a.example/?a=1&amp;b=2" rel="nofollow">http://a.example/?a=1&amp;b=2</a>')


def test_block_editor_posts_are_not_autop_ed_and_scripts_go() -> None:
    assert post_html("<!-- wp:paragraph -->\n<p>x</p>\n<!-- /wp:paragraph -->") == "<p>x</p>"
    assert post_html('a<script>alert(1)</script>\n\n<img src="https://e.example/i.png" onerror="x()">') == (
        '<p>a</p>\n<p><img src="https://e.example/i.png"></p>')
    assert comment_html('<b>hi</b> <img src="x" onerror="y()"><script>z()</script>') == "<p><b>hi</b> </p>"


def test_linkback_site_and_title() -> None:
    assert linkback_parts("Post title · Global Voices", "https://gv.example/a") == ("Global Voices", "Post title")
    assert linkback_parts("Just a title", "https://www.site.example/a/b") == ("site.example", "Just a title")


def test_the_plain_text_path_gives_what_the_full_wpautop_gives() -> None:
    rng = random.Random(3)
    pieces = ["word", "two words", " ", "\n", "\n\n", "\n \n", "\r\n", "\n\n\n", "  \n", "x.", "&amp;"]
    for _ in range(2000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 12)))
        if text.strip():
            for br in (True, False):
                assert _autop_plain(text, br) == _wpautop(text, br), repr(text)


def test_links_in_plain_comments_come_out_as_in_wordpress_order() -> None:
    """WordPress runs make_clickable before wpautop; for plain text the other order is used (faster)."""
    rng = random.Random(5)
    pieces = ["see ", "http://a.example/x", "https://b.example/p?q=1&r=2", ".", ")", " (", "\n", "\n\n", "word "]
    for _ in range(1000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 10)))
        if text.strip():
            assert comment_html(text) == sanitize_remote_html(wpautop(make_clickable(text))).strip(), repr(text)
