"""Urls.match_post / match_comment: a URL on this blog in any spelling of its origin is ours."""

from __future__ import annotations

import pytest

from fedblog.urls import Urls, parse_id

BLOG = Urls("https://blog.test", "blog")
IDN = Urls("https://bücher.example", "blog")


@pytest.mark.parametrize("url", [
    "https://blog.test/posts/hello",
    "https://blog.test:443/posts/hello",
    "https://blog.test./posts/hello",
    "https://BLOG.Test/posts/hello",
    "HTTPS://blog.test:443/posts/hello",
])
def test_match_post_any_spelling_of_the_origin(url: str) -> None:
    assert BLOG.match_post(url) == "/posts/hello"


def test_match_post_idn_host_in_either_spelling() -> None:
    assert IDN.match_post("https://xn--bcher-kva.example/posts/hello") == "/posts/hello"
    assert IDN.match_post("https://bücher.example/posts/hello") == "/posts/hello"
    punycode = Urls("https://xn--bcher-kva.example", "blog")
    assert punycode.match_post("https://Bücher.example./posts/hello") == "/posts/hello"


@pytest.mark.parametrize("url", [
    "http://blog.test/posts/hello",  # another scheme
    "https://blog.test:8443/posts/hello",  # another port
    "https://evil.test/posts/hello",
    "https://blog.test.evil.test/posts/hello",
    "https://user@blog.test/posts/hello",  # credentials: never an id we accept
    "https://blog.test:bad/posts/hello",
    "/posts/hello",
])
def test_match_post_other_origins_are_not_ours(url: str) -> None:
    assert BLOG.match_post(url) is None


def test_match_comment_with_a_default_port() -> None:
    assert BLOG.match_comment("https://blog.test:443/comments/7") == 7


@pytest.mark.parametrize(("raw", "expected"), [
    ("1", 1), ("42", 42), ("9" * 18, int("9" * 18)),
    ("²", None), ("١٢", None), ("0", None), ("007", None), ("9" * 19, None), ("", None), ("-1", None),
    ("+1", None), (" 1", None), ("1_000", None), ("0x1", None),
])
def test_parse_id_reads_only_the_canonical_form(raw: str, expected: int | None) -> None:
    assert parse_id(raw) == expected


@pytest.mark.parametrize("tail", ["%C2%B2", "²", "9" * 19, "007", "0"])
def test_ids_in_remote_urls_never_raise(tail: str) -> None:
    """``match_*`` also read the ids in signed inbox activities: anything odd names nothing."""
    assert BLOG.match_comment(f"https://blog.test/comments/{tail}") is None
    assert BLOG.match_guest(f"https://blog.test/guests/{tail}#main-key") is None
    assert BLOG.match_post(f"https://blog.test/posts/hello/{tail}") is None
    with pytest.raises(ValueError):
        BLOG.local_actor(f"guest:{tail}")
