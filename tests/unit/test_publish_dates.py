"""The ``published`` rules of a post, as a pure function (docs/publishing.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fedblog.blog.posts import parse_post_source, resolve_published

NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)  # 3 am UTC: still December 1st in the Americas


def _draft(date_line: str = ""):  # type: ignore[no-untyped-def]
    return parse_post_source(f"---\ntitle: T\n{date_line}---\nBody.\n")


def test_a_date_without_a_time_is_now_while_that_day_lasts_somewhere() -> None:
    for day in ("2026-12-02", "2026-12-01", "'2026-12-01'"):  # today in UTC; today in UTC-8; quoted
        assert resolve_published(_draft(f"date: {day}\n"), now=NOW, previous=None, was_public=False) == NOW
    assert resolve_published(_draft("date: 2026-11-30\n"), now=NOW, previous=None, was_public=False) == datetime(
        2026, 11, 30, tzinfo=UTC)
    late = NOW + timedelta(hours=33)  # Dec 3rd 12:00 UTC: December 1st has ended everywhere
    assert resolve_published(_draft("date: 2026-12-01\n"), now=late, previous=None, was_public=False) == datetime(
        2026, 12, 1, tzinfo=UTC)


def test_a_time_given_is_kept_and_edits_keep_their_moment() -> None:
    given = _draft("date: 2026-12-01T20:15:00Z\n")
    assert resolve_published(given, now=NOW, previous=None, was_public=False) == datetime(
        2026, 12, 1, 20, 15, tzinfo=UTC)
    went_out = NOW - timedelta(hours=2)
    later = NOW + timedelta(hours=5)
    for draft in (_draft(), _draft("date: 2026-12-02\n")):  # an edit of a public post keeps its time
        assert resolve_published(draft, now=later, previous=went_out, was_public=True) == went_out
    # a draft keeps no time: publishing it dates it now, and --send-as-new ignores an old date
    assert resolve_published(_draft(), now=later, previous=went_out, was_public=False) == later
    assert resolve_published(_draft("date: 2026-11-01\n"), now=NOW, previous=None, was_public=False,
                             published_now=True) == NOW
