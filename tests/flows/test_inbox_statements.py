"""The inbox's hot path stays small: a verified reply from a known actor is a handful of SQL
statements, whatever came before (counted, not timed)."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from fedblog.blog.posts import parse_post_source
from fedblog.federation.publishing import publish
from fedblog.services import Services
from fedblog.settings import Settings
from fedblog.store.db import session_scope
from tests.fediverse import builders
from tests.fediverse.instance import FakeInstance
from tests.fediverse.network import FakeFediverse

pytestmark = pytest.mark.anyio


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(moderation="approve-all")


async def test_reply_from_a_known_actor_costs_few_statements(services: Services, fediverse: FakeFediverse) -> None:
    with session_scope(services.engine) as session:
        publish(session, services, parse_post_source("---\ntitle: Hi\nslug: hi\n---\nBody.\n"))
    masto = FakeInstance("mastodon.test", fediverse)
    alice = masto.actor("alice")
    first, _ = builders.reply(alice, "https://blog.test/posts/hi", "<p>1</p>", services.clock.now())
    assert (await masto.post(alice, "https://blog.test/inbox", first)).status_code == 202  # fetches and caches alice
    seen: list[str] = []

    def record(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        seen.append(" ".join(statement.split())[:60])

    event.listen(services.engine, "before_cursor_execute", record)
    try:
        second, _ = builders.reply(alice, "https://blog.test/posts/hi", "<p>2</p>", services.clock.now())
        assert (await masto.post(alice, "https://blog.test/inbox", second)).status_code == 202
    finally:
        event.remove(services.engine, "before_cursor_execute", record)
    print(len(seen), seen)
    assert len(seen) <= 7, seen
    assert not any(u for _, u in fediverse.log[-1:] if "mastodon.test/users" in u and "inbox" not in u)
