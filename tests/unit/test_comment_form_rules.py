"""The comment form's pure rules (fedblog/web/comment_form.py): text to HTML, websites, tokens."""

from __future__ import annotations

import pytest

from fedblog.web import comment_form as form


@pytest.mark.parametrize(("text", "html", "links"), [
    ("Hello <script>alert(1)</script> & bye", "<p>Hello &lt;script&gt;alert(1)&lt;/script&gt; &amp; bye</p>", 0),
    ("one\ntwo\n\n\nthree", "<p>one<br>\ntwo</p>\n<p>three</p>", 0),
    ("See https://example.org/a.", '<p>See <a href="https://example.org/a" rel="nofollow noopener ugc">'
     'https://example.org/a</a>.</p>', 1),
    ("(https://example.org/wiki/A_(b))", '<p>(<a href="https://example.org/wiki/A_(b)" rel="nofollow noopener ugc">'
     'https://example.org/wiki/A_(b)</a>)</p>', 1),
    ('x https://e.example/?a=1&b="2"', '<p>x <a href="https://e.example/?a=1&amp;b=" rel="nofollow noopener ugc">'
     'https://e.example/?a=1&amp;b=</a>"2"</p>', 1),
    ("javascript:alert(1) and ftp://x.example", "<p>javascript:alert(1) and ftp://x.example</p>", 0),
])
def test_text_becomes_escaped_paragraphs_with_links(text: str, html: str, links: int) -> None:
    assert form.text_to_html(text) == (html, links)


@pytest.mark.parametrize(("typed", "kept"), [
    ("", ""), ("https://me.example/", "https://me.example/"), ("me.example/blog", "https://me.example/blog"),
    ("HTTP://ME.example", "HTTP://ME.example"), ("javascript:alert(1)", None), ("data:text/html,x", None),
    ("https://user:pw@me.example/", None), ("https://", None), ("not a url", None), ("ftp://me.example", None),
])
def test_websites_are_http_or_https_only(typed: str, kept: str | None) -> None:
    assert form.normalise_website(typed) == kept


def test_a_token_is_bound_to_its_post_parent_time_and_key() -> None:
    token = form.sign_token("secret", 7, 3, 1_800_000_000, "nonce")
    assert form.read_token("secret", token) == form.Token(7, 3, 1_800_000_000, "nonce")
    assert form.read_token("other secret", token) is None
    post, parent, issued, nonce, mac = token.split(".")
    for forged in (f"8.{parent}.{issued}.{nonce}.{mac}", f"{post}.0.{issued}.{nonce}.{mac}",
                   f"{post}.{parent}.{int(issued) + 99}.{nonce}.{mac}", token[:-2], "", "a.b.c.d.e"):
        assert form.read_token("secret", forged) is None, forged


def test_placeholders_in_a_cached_page_get_one_token_each() -> None:
    body = b'<input value="fedblog:form-token:12:0"> text <input value="fedblog:form-token:12:5">'
    made: list[tuple[int, int]] = []

    def make(post: int, parent: int) -> str:
        made.append((post, parent))
        return f"T{post}-{parent}"

    assert form.fill_placeholders(body, make) == b'<input value="T12-0"> text <input value="T12-5">'
    assert made == [(12, 0), (12, 5)]
    assert form.fill_placeholders(b"<p>no form</p>", make) == b"<p>no form</p>"


def test_a_cached_body_served_again_gets_fresh_tokens_and_equal_bodies_are_cut_alike() -> None:
    """The placeholders' places are found once per body object (web/fastpage.py serves the same
    cached bytes many times); every response still gets its own tokens, and another body with the
    same bytes (a page rendered again) is cut the same way."""
    body = b"<form>" + b"x" * 5000 + b'<input value="fedblog:form-token:7:0"></form>'
    counter = iter(range(100))

    def make(post: int, parent: int) -> str:
        return f"tok{next(counter)}"

    first, second = form.fill_placeholders(body, make), form.fill_placeholders(body, make)
    assert first.endswith(b'<input value="tok0"></form>') and second.endswith(b'<input value="tok1"></form>')
    assert len(first) == len(second) == len(body) - len(b"fedblog:form-token:7:0") + len(b"tok0")
    again = bytes(bytearray(body))  # equal bytes, another object
    assert again is not body
    assert form.fill_placeholders(again, make).endswith(b'<input value="tok2"></form>')
