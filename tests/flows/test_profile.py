"""The blog's profile as a fediverse server sees it: every advertised URL answers, rel="me" links
verify the way Mastodon verifies them, "Joined" is when the blog was set up, and a changed profile
reaches followers as a signed Update(Person) when the blog restarts."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import Session

from fedblog.app import create_app
from fedblog.blog.posts import parse_post_source
from fedblog.cli import main
from fedblog.clock import FrozenClock
from fedblog.federation.profile import announce_profile_change
from fedblog.federation.publishing import publish
from fedblog.jobs.runner import DeliveryRunner
from fedblog.services import Services, build_services
from fedblog.settings import Settings
from fedblog.store.db import session_scope
from fedblog.store.tables import Activity
from tests.conftest import is_postgres
from tests.fediverse.instance import FakeInstance, follow
from tests.fediverse.network import FakeFediverse
from tests.flows.test_jsonld import _check as check_jsonld
from tests.helpers import NS, parse_html
from tests.servers import clean_env, fedblog_serve, free_port

pytestmark = pytest.mark.anyio
AP = "application/activity+json"
ACTOR = "https://blog.test/users/blog"


def _local(url: str) -> str:
    assert url.startswith("https://blog.test/"), url
    return url.removeprefix("https://blog.test")


async def test_every_url_the_actor_advertises_answers(client: httpx.AsyncClient) -> None:
    actor = (await client.get("/users/blog", headers={"Accept": AP})).json()
    for field in ("icon", "image"):
        r = await client.get(_local(actor[field]["url"]))
        assert r.status_code == 200, field
        assert r.headers["content-type"] == actor[field]["mediaType"] == "image/png", field
        assert r.content.startswith(b"\x89PNG\r\n\x1a\n"), field
    for field in ("url", "outbox", "followers", "following", "featured"):
        r = await client.get(_local(actor[field]), headers={"Accept": AP if field != "url" else "text/html"})
        assert r.status_code == 200, field
    for url in (actor["inbox"], actor["endpoints"]["sharedInbox"]):  # POST-only: anything but "not found"
        assert (await client.get(_local(url))).status_code == 405, url


def _rel_me_hrefs(html: str) -> list[str]:
    """What Mastodon's VerifyLinkService reads: href of every <a> or <link> whose rel has "me"."""
    root = parse_html(html)
    return [
        el.get("href") or ""
        for tag in ("a", "link")
        for el in root.iter(NS + tag)
        if "me" in (el.get("rel") or "").split()
    ]


async def test_home_and_about_link_back_with_rel_me(client: httpx.AsyncClient) -> None:
    actor = (await client.get("/users/blog", headers={"Accept": AP})).json()
    # The profile field Mastodon verifies: a rel="me" link in the actor's attachment ...
    website = [a for a in actor["attachment"] if a["type"] == "PropertyValue"][0]["value"]
    linked = re.search(r'href="([^"]+)"', website)
    assert linked and 'rel="me"' in website
    # ... is verified when the linked page has a rel="me" whose href equals the account's url
    # (Mastodon compares with ActivityPub::TagManager#url_for, which is the actor's `url`).
    for page in (linked.group(1), "https://blog.test/about", ACTOR):
        r = await client.get(_local(page), headers={"Accept": "text/html"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), page
        hrefs = [h.lower() for h in _rel_me_hrefs(r.text)]
        assert actor["url"].lower() in hrefs, page
        assert ACTOR in hrefs, page  # and the actor id itself, for verifiers that compare with it
    # the about page tells when the blog joined the fediverse, like the actor's `published`
    about = (await client.get("/about")).text
    assert f'<time datetime="{actor["published"]}">November 1, 2026</time>' in about


async def test_joined_is_when_the_blog_was_set_up_not_its_oldest_post(
    services: Services, client: httpx.AsyncClient, clock: FrozenClock, settings: Settings, fediverse: FakeFediverse
) -> None:
    assert (await client.get("/users/blog", headers={"Accept": AP})).status_code == 200  # first start: keys made
    clock.advance(3 * 86400)
    with session_scope(services.engine) as session:  # an imported post from long before the blog existed here
        publish(session, services, parse_post_source("---\ntitle: Old times\ndate: 2012-03-08\n---\nHello.\n"))
    actor = (await client.get("/users/blog", headers={"Accept": AP})).json()
    assert actor["published"] == "2026-11-01T12:00:00Z"
    # a restart later still serves the same date: it is stored, not recomputed
    clock.advance(30 * 86400)
    again = build_services(settings, clock=clock, transport=fediverse.transport())
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(again)),
                                     base_url="https://blog.test") as c:
            assert (await c.get("/users/blog", headers={"Accept": AP})).json()["published"] == "2026-11-01T12:00:00Z"
    finally:
        await again.aclose()


def _updates(services: Services) -> int:
    with Session(services.engine) as session:
        stmt = sa.select(sa.func.count()).select_from(Activity).where(Activity.type == "Update")
        return int(session.execute(stmt).one()[0])


async def test_changed_profile_reaches_followers_as_update_on_restart(
    services: Services, fediverse: FakeFediverse, clock: FrozenClock, cli_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    inst = FakeInstance("mastodon.test", fediverse)
    for name in ("alice", "bob"):  # two followers on one server: one delivery to its shared inbox
        a = inst.actor(name)
        assert (await inst.post(a, ACTOR + "/inbox", follow(a, ACTOR))).status_code == 202
    await DeliveryRunner(services, concurrency=4).run_until_idle()
    received = len(inst.received)

    monkeypatch.setenv("FEDBLOG_NAME", "Test Blog")
    assert main(["init"]) == 0  # the first start of this version stores the fingerprint, tells nobody
    assert main(["init"]) == 0  # an unchanged restart sends nothing
    assert _updates(services) == 0

    monkeypatch.setenv("FEDBLOG_NAME", "Renamed Blog")  # a restart with a new name
    capsys.readouterr()
    assert main(["init"]) == 0
    assert "Update queued for 1 follower inbox(es)" in capsys.readouterr().out
    clock.advance((datetime.now(UTC) - clock.now()).total_seconds() + 60)  # the CLI queued it on the system clock
    await DeliveryRunner(services, concurrency=4).run_until_idle()
    new = inst.received[received:]
    assert len(new) == 1 and new[0].signature_ok, [(r.path, r.why) for r in new]
    update = new[0].json
    assert new[0].path == "/inbox" and update["type"] == "Update" and update["actor"] == ACTOR
    assert update["object"]["id"] == ACTOR and update["object"]["type"] == "Person"
    assert update["object"]["name"] == "Renamed Blog"
    assert update["object"]["publicKey"]["owner"] == ACTOR
    check_jsonld(update)  # every term defined by the activity's own @context, none dropped

    assert main(["init"]) == 0  # restarting again with the new name: nothing more
    assert _updates(services) == 1
    await DeliveryRunner(services, concurrency=4).run_until_idle()
    assert len(inst.received) == received + 1


async def test_fedblog_serve_announces_a_changed_profile_at_start(
    services: Services, fediverse: FakeFediverse, clock: FrozenClock, cli_env: dict[str, str], tmp_path: Path,
) -> None:
    inst = FakeInstance("mastodon.test", fediverse)
    alice = inst.actor("alice")
    assert (await inst.post(alice, ACTOR + "/inbox", follow(alice, ACTOR))).status_code == 202
    await DeliveryRunner(services, concurrency=4).run_until_idle()
    env = clean_env(**cli_env, FEDBLOG_WORKER="off")  # deliveries are made below, on the fake network
    assert subprocess.run([sys.executable, "-m", "fedblog", "init"], env=env, timeout=60).returncode == 0
    log = tmp_path / "serve.log"
    with fedblog_serve({**env, "FEDBLOG_DESCRIPTION": "Now about gardens"}, free_port(), log, "/about"):
        pass
    assert "Update queued for 1 follower inbox(es)" in log.read_text()
    clock.advance((datetime.now(UTC) - clock.now()).total_seconds() + 60)
    await DeliveryRunner(services, concurrency=4).run_until_idle()
    updates = inst.activities("Update")
    assert len(updates) == 1 and updates[0]["object"]["summary"] == "<p>Now about gardens</p>"


@pytest.mark.skipif(not is_postgres(), reason="needs PostgreSQL to watch the second process wait on the row lock")
async def test_two_processes_starting_at_once_announce_a_change_once(
    services: Services, fediverse: FakeFediverse, clock: FrozenClock, settings: Settings
) -> None:
    inst = FakeInstance("mastodon.test", fediverse)
    alice = inst.actor("alice")
    assert (await inst.post(alice, ACTOR + "/inbox", follow(alice, ACTOR))).status_code == 202
    with session_scope(services.engine) as session:
        assert announce_profile_change(session, services).outcome == "first run"
    renamed = build_services(settings.replace(name="Renamed Blog"), clock=clock, engine=services.engine)
    first = Session(services.engine)
    try:
        assert announce_profile_change(first, renamed).outcome == "announced"  # not committed yet
        with ThreadPoolExecutor(1) as pool:
            def second() -> str:
                with session_scope(renamed.engine) as session:
                    return announce_profile_change(session, renamed).outcome

            outcome = pool.submit(second)
            deadline = time.monotonic() + 30  # wait until the second one is blocked on the fingerprint row
            while _waiting_on_locks(services) == 0:
                assert time.monotonic() < deadline and not outcome.done(), "the second start did not wait"
                time.sleep(0.01)
            first.commit()
            assert outcome.result(timeout=30) == "unchanged"
    finally:
        first.close()
        await renamed.http.aclose()
        renamed.db_pool.shutdown()
    assert _updates(services) == 1


def _waiting_on_locks(services: Services) -> int:
    with Session(services.engine) as session:
        stmt = sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND wait_event_type = 'Lock'")
        return int(session.execute(stmt).scalar_one())
