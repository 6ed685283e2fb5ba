"""One host normaliser for every origin and id comparison (fedblog/activitypub/origin.py)."""

from __future__ import annotations

import pytest

from fedblog.activitypub.origin import canonical_url, host_of, normalise_host, same_id, same_origin


@pytest.mark.parametrize(("a", "b"), [
    ("https://GOOD.example/users/a", "https://good.example/users/a"),
    ("https://bücher.example/users/a", "https://xn--bcher-kva.example/users/a"),
    ("https://good.example./users/a", "https://good.example/users/a"),
    ("https://good.example:443/users/a", "https://good.example/users/a"),
    ("HTTPS://Good.Example/users/a#main-key", "https://good.example/users/a#main-key"),
])
def test_two_spellings_of_one_id(a: str, b: str) -> None:
    assert same_id(a, b) and same_origin(a, b)
    assert canonical_url(a) == canonical_url(b)


@pytest.mark.parametrize(("a", "b"), [
    ("https://good.example/users/a", "https://good.example/users/A"),  # paths are case-sensitive
    ("https://good.example/users/a", "http://good.example/users/a"),
    ("https://good.example/users/a", "https://good.example:8443/users/a"),
    ("https://good.example/users/a", "https://good.example.evil.example/users/a"),
    ("https://good.example/users/a", "https://user@good.example/users/a"),
])
def test_different_ids(a: str, b: str) -> None:
    assert not same_id(a, b)


def test_hosts() -> None:
    assert normalise_host("Bücher.Example.") == "xn--bcher-kva.example"
    assert host_of("https://[::1]:8443/x") == "::1"
    assert host_of("not a url") == "" and not same_origin("x", "y")
    assert not same_origin("https://good.example/a", "https://good.example:bad/a")
