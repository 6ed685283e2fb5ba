"""When and under which id a post goes out, and what the Article says of its thread.

- ``published``: a date-only ``date`` of today means now; a draft is dated when it is published;
  a post dated more than 6 hours ago goes out quietly (no Create) unless ``--send-as-new``.
- ids: publishing again under a deleted post's slug mints a new id; the old one stays 410.
- counts: the JSON of a post, the outbox and Create/Update carry the real likes/shares/replies.
- edits of remote replies are ordered by the sender's clock, even when it runs ahead of ours.

Everything goes through our HTTP endpoints or the ``fedblog`` command, against fake followers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from fedblog.blog.posts import parse_post_source
from fedblog.cli import main
from fedblog.clock import FrozenClock
from fedblog.federation.publishing import publish, unpublish
from fedblog.jobs.runner import DeliveryRunner
from fedblog.services import Services
from fedblog.settings import Settings
from fedblog.store.db import session_scope
from tests.fediverse import builders
from tests.fediverse.instance import FakeActor, FakeInstance, follow
from tests.fediverse.network import FakeFediverse

pytestmark = pytest.mark.anyio
AP = "application/activity+json"
INBOX = "https://blog.test/inbox"


@pytest.fixture
def clock() -> FrozenClock:
    """The ``fedblog`` command reads the system clock: the fake world starts from it too."""
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(moderation="approve-all")


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _catch_up(clock: FrozenClock) -> None:
    """Bring the fake clock to the system clock (plus a second), so what the command queued is due."""
    clock.advance(max(0.0, (datetime.now(UTC) - clock.now()).total_seconds()) + 1)


async def _deliver(services: Services) -> None:
    await DeliveryRunner(services, concurrency=4).run_until_idle()


async def _follower(services: Services, fediverse: FakeFediverse) -> tuple[FakeInstance, FakeActor]:
    inst = FakeInstance("mastodon.test", fediverse)
    alice = inst.actor("alice", "Alice A.")
    r = await inst.post(alice, "https://blog.test/users/blog/inbox", follow(alice, "https://blog.test/users/blog"))
    assert r.status_code == 202, r.text
    await _deliver(services)
    inst.received.clear()  # the Accept
    return inst, alice


def _publish(services: Services, text: str) -> None:
    with session_scope(services.engine) as session:
        publish(session, services, parse_post_source(text))


# -- published ------------------------------------------------------------------------------------
async def test_cli_date_only_today_is_published_now_and_followers_get_that_time(
    services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient, cli_env: dict[str, str],
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    inst, _ = await _follower(services, fediverse)
    src = tmp_path / "evening.md"
    src.write_text(f"---\ntitle: Written tonight\nslug: tonight\ndate: {datetime.now(UTC).date()}\n---\nHi.\n")
    before = datetime.now(UTC).replace(microsecond=0)
    assert main(["post", "publish", str(src)]) == 0
    after = datetime.now(UTC)
    out = capsys.readouterr().out
    assert "published: https://blog.test/posts/tonight" in out and "deliveries queued" in out
    _catch_up(services.clock)  # type: ignore[arg-type]
    await _deliver(services)
    creates = inst.activities("Create")
    assert len(creates) == 1
    published = _time(creates[0]["object"]["published"])
    assert before <= published <= after  # not midnight: the moment it was published
    assert _time(creates[0]["published"]) == published
    doc = (await client.get("/posts/tonight", headers={"Accept": AP})).json()
    assert _time(doc["published"]) == published and "updated" not in doc


async def test_a_draft_is_dated_when_it_is_published(
    services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient
) -> None:
    inst, _ = await _follower(services, fediverse)
    _publish(services, "---\ntitle: Slow cooking\nslug: slow\ndraft: true\n---\nNot yet.\n")
    await _deliver(services)
    assert inst.activities("Create") == []
    services.clock.advance(3 * 86400)  # type: ignore[attr-defined]
    _publish(services, "---\ntitle: Slow cooking\nslug: slow\n---\nReady now.\n")
    await _deliver(services)
    creates = inst.activities("Create")
    assert len(creates) == 1
    assert _time(creates[0]["object"]["published"]) == services.clock.now()  # not the draft's save time
    doc = (await client.get("/posts/slow", headers={"Accept": AP})).json()
    assert _time(doc["published"]) == services.clock.now() and "updated" not in doc


@pytest.mark.parametrize(("hours_ago", "sent"), [(7, False), (5, True)])
async def test_a_post_dated_more_than_six_hours_ago_goes_out_quietly(
    services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient, hours_ago: int, sent: bool
) -> None:
    inst, _ = await _follower(services, fediverse)
    when = (services.clock.now() - timedelta(hours=hours_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    _publish(services, f"---\ntitle: Dated\nslug: dated\ndate: {when}\n---\nText.\n")
    await _deliver(services)
    assert len(inst.activities("Create")) == (1 if sent else 0)
    # quiet or not, it is stored, shown, dereferenceable and in the outbox, with its own date
    assert (await client.get("/posts/dated")).status_code == 200
    assert (await client.get("/posts/dated", headers={"Accept": AP})).json()["published"] == when
    page = (await client.get("/users/blog/outbox?page=1", headers={"Accept": AP})).json()
    assert [(a["object"]["id"], a["object"]["published"]) for a in page["orderedItems"]] == [
        ("https://blog.test/posts/dated", when)]


async def test_cli_old_post_is_quiet_with_one_line_and_send_as_new_sends_it(
    services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient, cli_env: dict[str, str],
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    inst, _ = await _follower(services, fediverse)
    old_day = (datetime.now(UTC) - timedelta(days=3)).date()
    quiet, loud = tmp_path / "quiet.md", tmp_path / "loud.md"
    quiet.write_text(f"---\ntitle: From my notebook\nslug: notebook\ndate: {old_day}\n---\nOld text.\n")
    loud.write_text(f"---\ntitle: Found again\nslug: found\ndate: {old_day}\n---\nOld text, news now.\n")
    assert main(["post", "publish", str(quiet)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "published: https://blog.test/posts/notebook"
    notice = [line for line in lines if "quietly" in line]
    assert len(notice) == 1 and f"dated {old_day} 00:00 UTC" in notice[0] and "--send-as-new" in notice[0]
    assert not any("deliveries queued" in line for line in lines)
    _catch_up(services.clock)  # type: ignore[arg-type]
    await _deliver(services)
    assert inst.activities("Create") == []
    doc = (await client.get("/posts/notebook", headers={"Accept": AP})).json()
    assert _time(doc["published"]) == datetime(old_day.year, old_day.month, old_day.day, tzinfo=UTC)

    before = datetime.now(UTC).replace(microsecond=0)
    assert main(["post", "publish", "--send-as-new", str(loud)]) == 0
    out = capsys.readouterr().out
    assert "deliveries queued" in out and "quietly" not in out
    _catch_up(services.clock)  # type: ignore[arg-type]
    await _deliver(services)
    creates = inst.activities("Create")
    assert [c["object"]["id"] for c in creates] == ["https://blog.test/posts/found"]
    assert before <= _time(creates[0]["object"]["published"]) <= datetime.now(UTC)


# -- ids ------------------------------------------------------------------------------------------
async def test_publishing_again_under_a_deleted_slug_mints_a_new_id(
    services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient
) -> None:
    inst, alice = await _follower(services, fediverse)
    _publish(services, "---\ntitle: Hello\nslug: hello\n---\nFirst life.\n")
    await _deliver(services)
    like = builders.like(alice, "https://blog.test/posts/hello")
    assert (await inst.post(alice, INBOX, like)).status_code == 202
    with session_scope(services.engine) as session:
        unpublish(session, services, "hello")
    await _deliver(services)
    services.clock.advance(600)  # type: ignore[attr-defined]
    _publish(services, "---\ntitle: Hello again\nslug: hello\n---\nSecond life.\n")
    await _deliver(services)
    assert [(a["type"], a["object"]["id"]) for a in inst.activities()] == [
        ("Create", "https://blog.test/posts/hello"), ("Delete", "https://blog.test/posts/hello"),
        ("Create", "https://blog.test/posts/hello/2")]
    article = inst.activities("Create")[1]["object"]
    assert article["url"] == "https://blog.test/posts/hello"  # the page URL stays
    assert article["likes"]["totalItems"] == 0  # the first life's reactions stay with the first life
    assert article["replies"]["id"] == "https://blog.test/posts/hello/2/replies"
    # the old id stays gone; the new one is the Article; the page shows the live post
    old = await client.get("/posts/hello", headers={"Accept": AP})
    assert old.status_code == 410 and old.json()["type"] == "Tombstone"
    assert old.json()["id"] == "https://blog.test/posts/hello"
    new = await client.get("/posts/hello/2", headers={"Accept": AP})
    assert new.status_code == 200 and new.json()["id"] == "https://blog.test/posts/hello/2"
    assert new.json()["name"] == "Hello again"
    for path in ("/posts/hello/2/replies", "/posts/hello/2/likes", "/posts/hello/2/context"):
        r = await client.get(path, headers={"Accept": AP})
        assert r.status_code == 200 and r.json()["id"] == "https://blog.test" + path
    page = await client.get("/posts/hello")
    assert page.status_code == 200 and "Second life." in page.text
    assert '<link rel="alternate" type="application/activity+json" href="https://blog.test/posts/hello/2">' in page.text
    assert (await client.get("/posts/hello/2")).headers["location"] == "https://blog.test/posts/hello"
    assert (await client.get("/posts/hello/1", headers={"Accept": AP})).status_code == 404
    # replies find the live post by its id; a reply to the old id finds nothing
    to_new, _ = builders.reply(alice, "https://blog.test/posts/hello/2", "<p>Welcome back</p>", services.clock.now())
    to_old, _ = builders.reply(alice, "https://blog.test/posts/hello", "<p>Ghost reply</p>", services.clock.now())
    for activity in (to_new, to_old):
        assert (await inst.post(alice, INBOX, activity)).status_code == 202
    page_text = (await client.get("/posts/hello")).text
    assert "Welcome back" in page_text and "Ghost reply" not in page_text
    # and once more: the third life gets /3, the second id answers 410 too
    with session_scope(services.engine) as session:
        unpublish(session, services, "hello")
    _publish(services, "---\ntitle: Third\nslug: hello\n---\nThird life.\n")
    await _deliver(services)
    assert inst.activities("Create")[-1]["object"]["id"] == "https://blog.test/posts/hello/3"
    assert (await client.get("/posts/hello/2", headers={"Accept": AP})).status_code == 410
    assert (await client.get("/posts/hello/2")).status_code == 410


async def test_cli_republish_after_delete_names_the_new_id_and_followers_get_it(
    services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient, cli_env: dict[str, str],
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    inst, _ = await _follower(services, fediverse)
    src = tmp_path / "again.md"
    src.write_text("---\ntitle: Again\nslug: again\n---\nOnce.\n")
    assert main(["post", "publish", str(src)]) == 0
    assert main(["post", "delete", "again"]) == 0
    capsys.readouterr()
    assert main(["post", "publish", str(src)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == ("published: https://blog.test/posts/again "
                     "(fediverse id https://blog.test/posts/again/2: a deleted post had this slug)")
    _catch_up(services.clock)  # type: ignore[arg-type]
    await _deliver(services)
    assert sorted((a["type"], a["object"]["id"]) for a in inst.activities()) == [
        ("Create", "https://blog.test/posts/again"), ("Create", "https://blog.test/posts/again/2"),
        ("Delete", "https://blog.test/posts/again")]
    assert (await client.get("/posts/again", headers={"Accept": AP})).status_code == 410
    assert (await client.get("/posts/again/2", headers={"Accept": AP})).json()["name"] == "Again"


# -- counts ---------------------------------------------------------------------------------------
@contextmanager
def _statements(services: Services) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(services.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(services.engine, "before_cursor_execute", record)


async def test_article_json_outbox_and_update_carry_the_real_counts(
    services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient
) -> None:
    inst, alice = await _follower(services, fediverse)
    bob, carol = inst.actor("bob", "Bob B."), inst.actor("carol", "Carol C.")
    _publish(services, "---\ntitle: Counted\nslug: counted\n---\nCount me.\n")
    url = "https://blog.test/posts/counted"
    for actor, activity in ((alice, builders.like(alice, url)), (bob, builders.like(bob, url)),
                            (carol, builders.announce(carol, url, services.clock.now()))):
        assert (await inst.post(actor, INBOX, activity)).status_code == 202
    create, note = builders.reply(bob, url, "<p>Nice</p>", services.clock.now())
    assert (await inst.post(bob, INBOX, create)).status_code == 202

    def check(article: dict[str, Any]) -> None:
        assert article["likes"]["totalItems"] == 2 and article["shares"]["totalItems"] == 1
        assert article["replies"]["totalItems"] == 1 and article["replies"]["first"]["items"] == [note["id"]]

    check((await client.get("/posts/counted", headers={"Accept": AP})).json())
    outbox = (await client.get("/users/blog/outbox?page=1", headers={"Accept": AP})).json()
    check(outbox["orderedItems"][0]["object"])
    services.clock.advance(60)  # type: ignore[attr-defined]
    _publish(services, "---\ntitle: Counted\nslug: counted\n---\nCount me, edited.\n")
    await _deliver(services)
    check(inst.activities("Update")[0]["object"])

    # an outbox page costs the same number of queries with 1 post as with 6 (no query per post)
    with _statements(services) as one_post:
        await client.get("/users/blog/outbox?page=1", headers={"Accept": AP})
    for i in range(5):
        _publish(services, f"---\ntitle: More {i}\nslug: more-{i}\n---\nBody.\n")
        for actor in (alice, bob):
            assert (await inst.post(actor, INBOX, builders.like(actor, f"https://blog.test/posts/more-{i}"))
                    ).status_code == 202
        reply, _ = builders.reply(carol, f"https://blog.test/posts/more-{i}", "<p>Hi</p>", services.clock.now())
        assert (await inst.post(carol, INBOX, reply)).status_code == 202
    with _statements(services) as six_posts:
        page = (await client.get("/users/blog/outbox?page=1", headers={"Accept": AP})).json()
    assert len(page["orderedItems"]) == 6
    assert all(a["object"]["likes"]["totalItems"] == 2 for a in page["orderedItems"])
    assert all(a["object"]["replies"]["totalItems"] == 1 for a in page["orderedItems"])
    assert len(six_posts) == len(one_post)


# -- edits of remote replies ----------------------------------------------------------------------
async def test_edits_from_a_sender_whose_clock_runs_ahead_apply_newest_last(
    services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient
) -> None:
    inst = FakeInstance("mastodon.test", fediverse)
    alice = inst.actor("alice", "Alice A.")
    _publish(services, "---\ntitle: Edits\nslug: edits\n---\nText.\n")
    ahead = services.clock.now() + timedelta(minutes=10)  # alice's server clock is 10 minutes fast
    create, note = builders.reply(alice, "https://blog.test/posts/edits", "<p>Version one</p>", ahead)
    assert (await inst.post(alice, INBOX, create)).status_code == 202
    older = builders.update(alice, note, "<p>Version two</p>", ahead + timedelta(minutes=1))
    newer = builders.update(alice, note, "<p>Version three</p>", ahead + timedelta(minutes=2))
    services.clock.advance(150)  # type: ignore[attr-defined]
    assert (await inst.post(alice, INBOX, newer)).status_code == 202  # arrives first
    services.clock.advance(30)  # type: ignore[attr-defined]
    assert (await inst.post(alice, INBOX, older)).status_code == 202  # arrives late: must change nothing
    page = (await client.get("/posts/edits")).text
    assert "Version three" in page and "Version two" not in page
    # what is shown is never in our future
    stamps = [_time(s) for s in re.findall(r'datetime="([0-9T:+\-Z]+)"', page)]
    assert stamps and max(stamps) <= services.clock.now()
