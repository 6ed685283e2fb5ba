"""A locked database never freezes the server: pages keep being served, the inbox answers 503.

Another connection holds the lock the inbox needs (SQLite: ``BEGIN EXCLUSIVE`` on the file;
PostgreSQL: ``LOCK TABLE inbox_item IN ACCESS EXCLUSIVE MODE``) while an inbox POST and a round of
page GETs run concurrently against our app. The pages are answered while the POST still waits on
the lock (the event loop is free); the POST then gets 503 + Retry-After, with nothing stored; once
the lock is gone, the sender's retry is stored (nothing lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Iterator

import httpx
import pytest
from sqlmodel import Session, func, select

from fedblog.services import Services
from fedblog.store.tables import Actor, InboxItem, Interaction
from tests.conftest import is_postgres
from tests.fediverse import builders
from tests.fediverse.instance import FakeInstance
from tests.fediverse.network import FakeFediverse
from tests.flows.test_conversations import post, settings  # noqa: F401 (approve-all, one post)

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("post")]
INBOX = "https://blog.test/inbox"
POST = "https://blog.test/posts/hello"
PAGES = ["/posts/hello", "/", "/archive", "/about", "/feed.atom", "/tags/none-such"]


@contextlib.contextmanager
def locked(services: Services, table: str = "inbox_item", mode: str = "ACCESS EXCLUSIVE") -> Iterator[None]:
    """Another process's write lock, held for the block (SQLite: the whole file; PostgreSQL: a lock
    of ``mode`` on ``table``; EXCLUSIVE still lets readers through)."""
    if is_postgres():
        with services.engine.connect() as conn:  # a transaction of its own
            conn.exec_driver_sql(f"LOCK TABLE {table} IN {mode} MODE")
            try:
                yield
            finally:
                conn.rollback()
        return
    path = services.engine.url.database
    assert path
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        other.execute("BEGIN EXCLUSIVE")
        yield
        other.execute("ROLLBACK")
    finally:
        other.close()


def stored(services: Services, ap_id: str) -> tuple[int, int]:
    with Session(services.engine) as s:
        items = s.exec(select(func.count()).select_from(InboxItem).where(InboxItem.ap_id == ap_id)).one()
        replies = s.exec(select(func.count()).select_from(Interaction).where(
            Interaction.activity_ap_id == ap_id)).one()
    return items, replies


async def test_a_locked_database_leaves_pages_served_and_the_inbox_answers_503(
    services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient
) -> None:
    masto = FakeInstance("mastodon.test", fediverse)
    alice = masto.actor("alice", "Alice A.")
    hello, _ = builders.reply(alice, POST, "<p>hello first</p>", services.clock.now())
    assert (await masto.post(alice, INBOX, hello)).status_code == 202  # key and actor known from now on
    create, _ = builders.reply(alice, POST, "<p>sent while locked</p>", services.clock.now())
    with locked(services):
        inbox_post = asyncio.create_task(masto.post(alice, INBOX, create))
        await asyncio.sleep(0)  # the POST starts first and reaches the database
        pages = await asyncio.gather(*(client.get(p) for p in PAGES))
        assert [r.status_code for r in pages] == [200, 200, 200, 200, 200, 404]
        assert "hello first" in pages[0].text
        assert not inbox_post.done()  # every page was answered while the POST waited on the lock
        answer = await asyncio.wait_for(inbox_post, timeout=10)  # the brief's bound: 503 within 10 s
        assert answer.status_code == 503
        assert int(answer.headers["retry-after"]) > 0
    assert stored(services, create["id"]) == (0, 0)  # nothing stored, nothing half-stored
    retry = await masto.post(alice, INBOX, create)  # the sender retries later: stored now
    assert retry.status_code == 202
    assert stored(services, create["id"]) == (1, 1)
    assert "sent while locked" in (await client.get("/posts/hello")).text


async def test_a_new_actor_while_the_actor_table_is_locked_gets_503_and_its_retry_is_stored(
    services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient
) -> None:
    """The first activity of an actor never seen before must store the actor before its reply: with
    that write locked out, the answer is 503 + Retry-After within 10 s (never a hang, never a 500),
    nothing is stored, and the sender's retry after the lock is stored with the actor."""
    masto = FakeInstance("mastodon.test", fediverse)
    bob = masto.actor("bob", "Bob B.")
    create, _ = builders.reply(bob, POST, "<p>first words, while locked</p>", services.clock.now())
    services.keys.get()  # as `fedblog serve` does at start-up: the blog's keys, to sign the fetch of bob
    with locked(services, table="actor", mode="EXCLUSIVE"):
        inbox_post = asyncio.create_task(masto.post(bob, INBOX, create))
        await asyncio.sleep(0)
        pages = await asyncio.gather(*(client.get(p) for p in PAGES[:2]))
        assert [r.status_code for r in pages] == [200, 200]
        answer = await asyncio.wait_for(inbox_post, timeout=10)
        assert answer.status_code == 503, answer.text
        assert int(answer.headers["retry-after"]) > 0 and "database" in answer.text
    assert stored(services, create["id"]) == (0, 0)
    with Session(services.engine) as s:
        assert s.exec(select(Actor).where(Actor.ap_id == bob.id)).first() is None
    retry = await masto.post(bob, INBOX, create)
    assert retry.status_code == 202, retry.text
    assert stored(services, create["id"]) == (1, 1)
    with Session(services.engine) as s:
        assert s.exec(select(Actor.handle).where(Actor.ap_id == bob.id)).one() == "bob@mastodon.test"
