"""A post with fediverse replies and reactions, delivered to a REAL ``fedblog serve`` over HTTP,
then looked at in headless Chromium (no JavaScript). The screenshot lands in test-artifacts/.

The remote actors' keys are cached in the blog's database first (as after an earlier visit), so
the server verifies each signed POST without reaching the internet.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fedblog.federation.moderation import add_rule
from fedblog.settings import load_settings
from fedblog.store.db import make_engine, migrate, session_scope
from fedblog.store.tables import Actor
from tests.browser import chromium, desktop_page, save_shot
from tests.fediverse import builders, signing
from tests.fediverse.instance import FakeActor
from tests.flows.test_browser import ARTIFACTS, DEMO, demo_server

pytestmark = pytest.mark.browser


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[tuple[str, str]]:
    with demo_server(tmp_path, database_url) as base:
        yield base, database_url


def _cache(database_url: str, base: str, actors: list[FakeActor]) -> None:
    engine = make_engine(load_settings({"FEDBLOG_DATABASE_URL": database_url}).database_url)
    migrate(engine)
    now = datetime.now(UTC)
    with session_scope(engine) as session:
        for a in actors:
            session.add(Actor(ap_id=a.id, host=a.host, preferred_username=a.username, handle=f"{a.username}@{a.host}",
                              name=a.name, url=f"https://{a.host}/@{a.username}", icon_url=f"{base}/static/avatar.png",
                              inbox=a.inbox, shared_inbox=a.shared_inbox, key_id=a.key_id,
                              public_key_pem=signing.public_pem(a.key), fetched_at=now))
            add_rule(session, "approve", a.host, now)
    engine.dispose()


def _post(base: str, actor: FakeActor, activity: dict[str, object]) -> int:
    body = json.dumps(activity).encode()
    headers = signing.sign("POST", base + "/inbox", body, actor.key, actor.key_id)
    req = urllib.request.Request(base + "/inbox", data=body, headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return int(r.status)


def test_fediverse_replies_and_reactions_in_the_browser(server: tuple[str, str]) -> None:
    base, database_url = server
    post = base + DEMO
    alice, bob, chika = FakeActor("mastodon.test", "alice", "Alice Andersson"), FakeActor("gts.test", "bob", "Bob"), \
        FakeActor("misskey.test", "chika", "千佳", flavour="misskey")
    fans = [FakeActor("mastodon.test", f"fan{i}", f"Fan {i}") for i in range(5)]
    _cache(database_url, base, [alice, bob, chika, *fans])
    now = datetime.now(UTC)
    c1, n1 = builders.reply(
        alice,
        post,
        '<p><span class="h-card"><a href="https://blog.test/" class="u-url mention">@<span>blog</span></a></span> '
        "Thank you for writing this up. Is there an English source for the Dong-A report?</p>",
        now,
    )
    c2, n2 = builders.reply(
        bob, n1["id"], "<p>The Korea JoongAng Daily covered it the same week.</p>", now, flavour="gotosocial"
    )
    c3, _ = builders.reply(
        chika,
        n2["id"],
        '<p>ありがとう — and <a href="https://misskey.test/tags/NorthKorea" class="hashtag">#NorthKorea</a>'
        " has more.</p>",
        now,
    )
    for actor, activity in ((alice, c1), (bob, c2), (chika, c3)):
        assert _post(base, actor, activity) == 202
    for fan in fans:
        assert _post(base, fan, builders.like(fan, post)) == 202
    assert _post(base, alice, builders.announce(alice, post, now)) == 202

    with chromium() as browser:
        page = desktop_page(browser)
        assert page.goto(post, wait_until="load").status == 200  # type: ignore[union-attr]
        assert page.locator("article.p-comment").count() == 46
        reply = page.locator("article.p-comment", has_text="ありがとう")
        assert reply.is_visible()
        assert reply.locator(".p-nickname").inner_text() == "@chika@misskey.test"
        parent = page.locator("article.p-comment", has_text="Korea JoongAng Daily")
        assert reply.bounding_box()["x"] > parent.bounding_box()["x"]  # type: ignore[index]
        assert page.locator(".reaction-count").all_inner_texts() == ["5 likes", "1 boost"]
        assert page.locator(".facepile img").count() == 6
        assert page.locator("a.hashtag").first.get_attribute("href") == "https://misskey.test/tags/NorthKorea"
        page.locator("#comments").scroll_into_view_if_needed()
        save_shot(page, "fediverse-replies.png")
        page.locator("section.reactions").screenshot(path=str(ARTIFACTS / "fediverse-reactions.png"))
        page.context.close()
