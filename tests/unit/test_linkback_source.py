"""Source-page verification and reading for Webmention and pingback (fedblog.activitypub.linkback).

Pages are written the way real senders mark them up: IndieWeb h-entry replies/likes/reposts
(microformats2, https://microformats.org/wiki/h-entry), an h-feed home page, and a classic WordPress
post without microformats that pings back.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from fedblog.activitypub.linkback import (
    ELLIPSIS,
    EXCERPT_RADIUS,
    MAX_HTML_DEPTH,
    MAX_MF_NESTING,
    MAX_MF_ROOTS,
    Author,
    analyse,
    links_to,
    normalise_url,
)
from fedblog.activitypub.linkcheck import check_webmention_request

TARGET = "https://blog.example/2026/hello-world"
SOURCE = "https://alice.example/2026/12/re-hello"


@pytest.mark.parametrize("html", [
    f'<p>See <a href="{TARGET}">this post</a>.</p>',
    f'<p><a href="{TARGET}#comment-3">a comment</a></p>',
    '<p><a href="HTTPS://BLOG.EXAMPLE:443/2026/hello-world">shouting</a></p>',
    f'<img src="{TARGET}">',
    f'<video poster="{TARGET}"></video>',
    f'<blockquote cite="{TARGET}">quoted</blockquote>',
    f'<head><link rel="in-reply-to" href="{TARGET}"></head>',
    '<head><base href="https://blog.example/2026/"></head><a href="hello-world">relative to base</a>',
    f'<a href=" {TARGET}\n">padded</a>',
])
def test_html_links_that_count(html: str) -> None:
    assert links_to(html, SOURCE, TARGET)


def test_relative_link_resolves_against_the_source() -> None:
    assert links_to('<a href="/2026/hello-world">x</a>', "https://blog.example/other-post", TARGET)
    assert not links_to('<a href="/2026/hello-world">x</a>', SOURCE, TARGET)


@pytest.mark.parametrize("html", [
    f"<p>Just text: {TARGET}</p>",
    f'<!-- <a href="{TARGET}">hidden</a> -->',
    f'<code>&lt;a href="{TARGET}"&gt;escaped&lt;/a&gt;</code>',
    f'<script>document.write(\'<a href="{TARGET}">x</a>\')</script>',
    f'<a href="{TARGET}/">trailing slash is another URL</a>',
    f'<a href="{TARGET}?utm=1">query</a>',
    '<a href="http://blog.example/2026/hello-world">other scheme</a>',
    f'<b href="{TARGET}">not a link element</b>',
    f'<a title="{TARGET}">not a link attribute</a>',
    '<a href="http://[::1">broken</a>',
    "",
])
def test_html_that_does_not_link(html: str) -> None:
    assert not links_to(html, SOURCE, TARGET)


def test_json_and_text_sources() -> None:
    note = {"type": "Note", "inReplyTo": TARGET, "tag": [{"href": "https://x.example/"}]}
    assert links_to(json.dumps(note), SOURCE, TARGET, "application/activity+json")
    assert links_to(json.dumps({"a": [{"b": TARGET + "#x"}]}), SOURCE, TARGET, "application/json; charset=utf-8")
    assert not links_to(json.dumps({"content": f"see {TARGET}"}), SOURCE, TARGET, "application/json")
    assert not links_to("{not json", SOURCE, TARGET, "application/json")
    assert not links_to("[" * 200_000 + "]" * 200_000, SOURCE, TARGET, "application/json")
    assert links_to("[" * 50 + json.dumps(TARGET) + "]" * 50, SOURCE, TARGET, "application/json")
    assert links_to(f"plain words and {TARGET} in them", SOURCE, TARGET, "text/plain")
    assert not links_to(f"<a href='{TARGET}'>x</a>", SOURCE, TARGET, "image/svg+xml")


def test_normalise_url() -> None:
    assert normalise_url("HTTP://Blog.Example:80/a?b#c") == "http://blog.example/a?b"
    assert normalise_url("https://blog.example:8443") == "https://blog.example:8443/"
    assert normalise_url("https://u:p@Blog.Example/x") == "https://u:p@blog.example/x"
    assert normalise_url("http://[::1") == "http://[::1"


REPLY = f"""<!doctype html><html><head><title>Alice's notes</title></head><body>
<article class="h-entry">
  <div class="u-in-reply-to h-cite"><a class="u-url" href="{TARGET}">Hello, world</a></div>
  <a class="p-author h-card" href="https://alice.example/"><img src="/me.jpg" alt="">Alice Example</a>
  <div class="e-content p-name">I <em>agree</em> with <a href="{TARGET}">this post</a>!<script>alert(1)</script></div>
  <a class="u-url" href="{SOURCE}"><time class="dt-published" datetime="2026-12-01T10:30:00+01:00">Dec 1</time></a>
</article></body></html>"""


def test_reply_with_h_card_author() -> None:
    evidence = analyse(REPLY, SOURCE, TARGET)
    assert evidence.links_to_target
    assert evidence.kind == "reply"
    assert evidence.author.name == "Alice Example"
    assert evidence.author.url == "https://alice.example/"
    assert evidence.author.photo == "https://alice.example/me.jpg"
    assert evidence.url == SOURCE
    assert evidence.published == datetime(2026, 12, 1, 10, 30, tzinfo=timezone(timedelta(hours=1)))
    assert evidence.content_text.startswith("I agree with this post!")
    assert evidence.content_html is not None and "<em>agree</em>" in evidence.content_html  # raw: caller sanitises
    assert evidence.title == "Alice's notes"  # a note's implied name is its content, so the page title is used
    assert evidence.excerpt == f"{ELLIPSIS} Hello, world {ELLIPSIS}"  # around the first visible link, as WordPress does


@pytest.mark.parametrize(("prop", "kind"), [("like-of", "like"), ("repost-of", "repost"),
                                            ("in-reply-to", "reply"), ("bookmark-of", "mention")])
def test_kind_follows_the_property_naming_the_target(prop: str, kind: str) -> None:
    html = (f'<div class="h-entry"><a class="u-{prop}" href="{TARGET}">post</a>'
            f'<a class="p-author h-card" href="https://bob.example/">Bob</a></div>')
    evidence = analyse(html, "https://bob.example/likes/1", TARGET)
    assert evidence.links_to_target and evidence.kind == kind
    assert evidence.author.name == "Bob"


def test_reply_to_someone_else_that_links_to_us_is_a_mention() -> None:
    html = (f'<div class="h-entry"><a class="u-in-reply-to" href="https://carol.example/post">Carol</a>'
            f'<div class="e-content">As <a href="{TARGET}">the blog</a> said.</div></div>')
    evidence = analyse(html, SOURCE, TARGET)
    assert evidence.links_to_target and evidence.kind == "mention"


def test_feed_page_picks_the_entry_that_links_and_the_feed_author() -> None:
    html = f"""<div class="h-feed"><a class="p-author h-card" href="https://dave.example/">Dave</a>
    <div class="h-entry"><p class="p-name">Unrelated</p><div class="e-content">nothing here</div></div>
    <div class="h-entry"><h2 class="p-name">Linking post</h2><div class="e-content">see <a href="{TARGET}">it</a>
    </div><time class="dt-published" datetime="2026-11-30">x</time></div></div>"""
    evidence = analyse(html, "https://dave.example/", TARGET)
    assert evidence.title == "Linking post"
    assert evidence.author.name == "Dave" and evidence.author.url == "https://dave.example/"
    assert evidence.published == datetime(2026, 11, 30, tzinfo=UTC)
    assert evidence.kind == "mention"


def test_entry_author_as_a_plain_url_or_name() -> None:
    by_url = (f'<div class="h-entry"><a class="u-author" href="https://eve.example/">me</a>'
              f'<a href="{TARGET}">x</a></div>')
    assert analyse(by_url, SOURCE, TARGET).author.url == "https://eve.example/"
    by_name = f'<div class="h-entry"><span class="p-author">Eve</span><a href="{TARGET}">x</a></div>'
    author = analyse(by_name, SOURCE, TARGET).author
    assert author.name == "Eve" and author.url is None


WORDPRESS = f"""<!DOCTYPE html><html><head><title>Why I still blog &#8211; Frank&#039;s place</title>
<link rel="author" href="https://frank.example/about/"><style>p {{ color: red }}</style></head>
<body><div id="content"><h1>Why I still blog</h1>
<p>{"Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 8}Yesterday I read
<a href="{TARGET}">a post about blogging</a> that made me think about this old habit of mine.
{"Sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. " * 8}</p>
<p>Another paragraph.</p></div></body></html>"""


def test_classic_page_without_microformats() -> None:
    evidence = analyse(WORDPRESS, "https://frank.example/2026/12/why-i-still-blog/", TARGET)
    assert evidence.links_to_target and evidence.kind == "mention"
    assert evidence.title == "Why I still blog – Frank's place"
    assert evidence.author.url == "https://frank.example/about/"
    assert evidence.author.name == "frank.example"
    assert evidence.published is None and evidence.content_html is None
    excerpt = evidence.excerpt
    assert excerpt.startswith(f"{ELLIPSIS} ") and excerpt.endswith(f" {ELLIPSIS}")
    assert "a post about blogging that made me think" in excerpt
    body = excerpt[len(ELLIPSIS) + 1:-len(ELLIPSIS) - 1]
    assert len(body) <= 2 * EXCERPT_RADIUS
    assert body.split()[0] in "Lorem ipsum dolor sit amet, consectetur adipiscing elit." and "  " not in body
    assert "Another paragraph" not in excerpt and "color: red" not in excerpt


def test_author_falls_back_to_the_domain() -> None:
    evidence = analyse(f'<a href="{TARGET}">x</a>', "https://grace.example/p/1?x=y", TARGET)
    assert evidence.author.name == "grace.example" and evidence.author.url == "https://grace.example/"
    assert evidence.title is None and evidence.excerpt == f"{ELLIPSIS} x {ELLIPSIS}"


def test_no_link_means_reject() -> None:
    evidence = analyse(REPLY.replace(TARGET, "https://blog.example/other"), SOURCE, TARGET)
    assert not evidence.links_to_target and evidence.excerpt == "" and evidence.kind == "mention"


def test_excerpt_uses_the_first_visible_link_not_the_head() -> None:
    html = (f'<head><link rel="canonical" href="{TARGET}"></head><body><p>One.</p>'
            f'<p>Two, <a href="{TARGET}">linked</a>.</p><p>Three <a href="{TARGET}">again</a></p></body>')
    assert analyse(html, SOURCE, TARGET).excerpt == f"{ELLIPSIS} Two, linked. {ELLIPSIS}"


@pytest.mark.parametrize("html", [
    "<div class='h-entry'>" * 2000,
    "<<<>>><a href=>\x00\x00<div class='h-card h-entry h-feed'><a class='u-url' href='http://[::1'>",
    f"<div class='h-entry'><time class='dt-published' datetime='not a date'>x</time><a href='{TARGET}'>y</a></div>",
    "<svg><a href='x'>" + "&#0;" * 10 + "</svg>",
])
def test_hostile_markup_never_raises(html: str) -> None:
    evidence = analyse(html, SOURCE, TARGET)
    assert evidence.kind in ("reply", "repost", "like", "mention")


def test_pathologically_nested_pages_are_read_without_microformats() -> None:
    """mf2py's cost is quadratic in nesting; past the bounds the page is still checked for the link."""
    like = f'<div class="h-entry"><a class="u-like-of" href="{TARGET}">liked</a></div>'
    shallow = "<div>" * (MAX_HTML_DEPTH - 5) + like
    deep = "<div>" * (MAX_HTML_DEPTH + 1) + like
    assert analyse(shallow, SOURCE, TARGET).kind == "like"
    evidence = analyse(deep, SOURCE, TARGET)
    assert evidence.links_to_target and evidence.kind == "mention"
    many = '<div class="h-card">x</div>' * (MAX_MF_ROOTS + 1) + like
    assert analyse(many, SOURCE, TARGET).kind == "mention"
    nested = '<div class="h-entry">' * (MAX_MF_NESTING + 1) + like
    assert analyse(nested, SOURCE, TARGET).kind == "mention"
    closed_paragraphs = like.replace("liked", "<p>a" * 1000)  # implicitly closed <p> do not count as nesting
    assert analyse(closed_paragraphs, SOURCE, TARGET).kind == "like"


def test_unclosed_title_is_capped() -> None:
    evidence = analyse("<title>Runaway " + "word " * 2000 + f'<a href="{TARGET}">x</a>', SOURCE, TARGET)
    assert evidence.title is not None and evidence.title.startswith("Runaway word") and len(evidence.title) <= 500


@pytest.mark.parametrize(("source", "target", "reason"), [
    (None, TARGET, "required"),
    (SOURCE, ["x"], "required"),
    ("", TARGET, "source must be"),
    ("ftp://alice.example/x", TARGET, "source must be"),
    ("javascript:alert(1)//", TARGET, "source must be"),
    (SOURCE, "/2026/hello-world", "target must be"),
    (SOURCE, "https://blog.example:99999/x", "target must be"),
    (SOURCE, TARGET + "\n/x", "target must be"),
    (TARGET, TARGET + "#comments", "not be the same"),
    ("HTTPS://BLOG.EXAMPLE:443/2026/hello-world", TARGET, "not be the same"),
])
def test_webmention_request_verification_rejects(source: object, target: object, reason: str) -> None:
    result = check_webmention_request(source, target)
    assert isinstance(result, str) and reason in result


def test_webmention_request_verification_accepts() -> None:
    assert check_webmention_request(f" {SOURCE} ", TARGET + "#c") == (SOURCE, TARGET + "#c")


def test_author_urls_are_http_only_and_empty_cards_fall_back() -> None:
    hostile = (f'<div class="h-entry"><a class="p-author h-card" href="javascript:alert(1)">'
               f'<img src="javascript:alert(2)" alt="">Mallory</a><a class="u-url" href="javascript:x">'
               f'</a><a href="{TARGET}">x</a></div>')
    evidence = analyse(hostile, SOURCE, TARGET)
    assert evidence.author == Author("Mallory", None, None)
    assert evidence.url == SOURCE
    empty_card = f'<div class="h-entry"><span class="p-author h-card"></span><a href="{TARGET}">x</a></div>'
    assert analyse(empty_card, SOURCE, TARGET).author == Author("alice.example", "https://alice.example/", None)
    colon = f'<div class="h-entry"><span class="p-author">Eve: the author</span><a href="{TARGET}">x</a></div>'
    assert analyse(colon, SOURCE, TARGET).author == Author("Eve: the author", None, None)
    script_url = (f'<div class="h-entry"><a class="u-author" href="javascript:alert(1)">me</a>'
                  f'<a href="{TARGET}">x</a></div>')
    assert analyse(script_url, SOURCE, TARGET).author == Author("alice.example", "https://alice.example/", None)
