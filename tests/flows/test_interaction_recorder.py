"""The interaction recorder (fedblog/blog/interactions.py): one place records every channel's
comments, decides their first status, and enforces the status life cycle.

Fediverse replies go through our real inbox over HTTP; web comments, pingbacks and Webmentions
have no endpoint yet, so they are recorded directly and then read back through the real post page.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import httpx
import pytest
from sqlmodel import Session, select

from fedblog.blog import interactions as recorder
from fedblog.blog.interactions import Author, IllegalTransition, Status
from fedblog.blog.posts import parse_post_source
from fedblog.blog.rules import add_rule
from fedblog.cli import main
from fedblog.federation.publishing import publish
from fedblog.services import Services
from fedblog.store.db import session_scope
from fedblog.store.tables import Interaction, Post
from tests.fediverse import builders
from tests.fediverse.instance import FakeInstance
from tests.fediverse.network import FakeFediverse

pytestmark = pytest.mark.anyio
POST = "https://blog.test/posts/hello"
INBOX = "https://blog.test/inbox"
WHEN = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)


@pytest.fixture
def post_id(services: Services) -> int:
    with session_scope(services.engine) as session:
        publish(session, services, parse_post_source("---\ntitle: Hello\nslug: hello\n---\nA post to reply to.\n"))
    with Session(services.engine) as session:
        row = session.exec(select(Post).where(Post.slug == "hello")).one()
        assert row.id is not None
        return row.id


def _status(services: Services, **where: object) -> str:
    with Session(services.engine) as s:
        stmt = select(Interaction)
        for k, v in where.items():
            stmt = stmt.where(getattr(Interaction, k) == v)
        return s.exec(stmt).one().status


@pytest.mark.parametrize(("now", "to"), list(itertools.product(Status, Status)))
def test_the_transition_table(now: Status, to: Status) -> None:
    allowed = {
        (Status.PENDING, Status.VISIBLE), (Status.PENDING, Status.HIDDEN), (Status.PENDING, Status.DELETED),
        (Status.VISIBLE, Status.HIDDEN), (Status.VISIBLE, Status.DELETED),
        (Status.HIDDEN, Status.VISIBLE), (Status.HIDDEN, Status.DELETED),
        (Status.PENDING, Status.SPAM), (Status.VISIBLE, Status.SPAM), (Status.HIDDEN, Status.SPAM),
        (Status.SPAM, Status.VISIBLE), (Status.SPAM, Status.DELETED),
    }
    item = Interaction(id=7, post_id=1, kind="comment", via="form", status=now.value, author_name="A",
                       content_html="<p>words</p>", published_at=WHEN)
    if now == to or (now, to) in allowed:
        recorder.change_status(item, to)
        assert item.status == to.value
        assert item.content_html == ("" if to is Status.DELETED else "<p>words</p>")
    else:
        with pytest.raises(IllegalTransition, match=f"comment 7 is {now.value}; it cannot become {to.value}"):
            recorder.change_status(item, to)
        assert item.status == now.value


async def test_a_comment_its_author_deleted_cannot_be_approved(
    services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient, post_id: int,
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str],
) -> None:
    object.__setattr__(services.settings, "moderation", "first-contact")
    masto = FakeInstance("mastodon.test", fediverse)
    alice = masto.actor("alice", "Alice A.")
    create, note = builders.reply(alice, POST, "<p>regretted words</p>", services.clock.now())
    assert (await masto.post(alice, INBOX, create)).status_code == 202
    assert _status(services, ap_id=note["id"]) == "pending"
    assert (await masto.post(alice, INBOX, builders.delete(alice, note["id"]))).status_code == 202
    assert _status(services, ap_id=note["id"]) == "deleted"
    with Session(services.engine) as s:
        comment_id = s.exec(select(Interaction.id).where(Interaction.ap_id == note["id"])).one()
    assert main(["moderation", "approve", str(comment_id)]) == 2
    assert f"comment {comment_id} is deleted; it cannot become visible" in capsys.readouterr().err
    assert _status(services, ap_id=note["id"]) == "deleted"
    assert "regretted words" not in (await client.get("/posts/hello")).text


async def test_web_comments_without_an_email_are_always_first_contacts(
    services: Services, client: httpx.AsyncClient, post_id: int
) -> None:
    """A website is public: anyone may type an approved one, so it earns no trust (docs/comments.md)."""
    with session_scope(services.engine) as session:
        add_rule(session, "approve", "trusted.example", WHEN)
        for name, url in (("Trusted T.", "https://www.trusted.example/me"), ("Stranger S.", "https://new.example/"),
                          ("Nobody N.", None)):
            recorder.record_web_comment(session, "first-contact", author=Author(name, url=url), post_id=post_id,
                                        parent_id=None, content_html=f"<p>said {name}</p>", published_at=WHEN)
    assert _status(services, author_name="Trusted T.", via="form", kind="comment") == "pending"
    assert _status(services, author_name="Stranger S.") == "pending"
    assert _status(services, author_name="Nobody N.") == "pending"
    page = (await client.get("/posts/hello")).text
    assert "said Trusted T." not in page and "said Stranger S." not in page and "said Nobody N." not in page


async def test_linkbacks_are_moderated_by_their_source(
    services: Services, client: httpx.AsyncClient, post_id: int
) -> None:
    with session_scope(services.engine) as session:
        add_rule(session, "approve", "friend.example", WHEN)
        recorder.record_pingback(session, "first-contact", post_id=post_id, source_url="https://friend.example/a",
                                 site_name="Friend's blog", title="A friendly link", published_at=WHEN)
        recorder.record_webmention(session, "first-contact", post_id=post_id,
                                   source_url="https://unknown.example/b", author=Author("Unknown U."),
                                   title="An unknown mention", content_html="<p>mentioned</p>", published_at=WHEN)
        recorder.record_webmention(session, "approve-all", post_id=post_id, source_url="https://other.example/c",
                                   author=Author("Other O."), title=None, content_html="", published_at=WHEN)
        recorder.record_pingback(session, "hold-all", post_id=post_id, source_url="https://friend.example/d",
                                 site_name="Friend's blog", title="Held anyway", published_at=WHEN)
    assert _status(services, source_url="https://friend.example/a", kind="pingback", via="pingback") == "visible"
    assert _status(services, source_url="https://unknown.example/b", kind="webmention") == "pending"
    assert _status(services, source_url="https://other.example/c") == "visible"
    assert _status(services, source_url="https://friend.example/d") == "pending"
    page = (await client.get("/posts/hello")).text
    assert "A friendly link" in page and "An unknown mention" not in page and "Held anyway" not in page


async def test_imports_are_shown_and_threaded(services: Services, post_id: int) -> None:
    with session_scope(services.engine) as session:
        [first] = recorder.record_imports(session, [recorder.Imported(
            post_id=post_id, kind="comment", via="import", author_name="A" * 600, published_at=WHEN)])
        ids = recorder.record_imports(session, [
            recorder.Imported(post_id=post_id, kind="comment", via="import", author_name="B", published_at=WHEN,
                              parent_id=first),
            recorder.Imported(post_id=post_id, kind="trackback", via="trackback", author_name="C",
                              published_at=WHEN, source_url="https://c.example/"),
        ])
    with Session(services.engine) as s:
        rows = {r.id: r for r in s.exec(select(Interaction)).all()}
    assert [rows[i].author_name for i in ids] == ["B", "C"] and rows[ids[0]].parent_id == first
    assert len(rows[first].author_name) == 500
    assert {r.status for r in rows.values()} == {"visible"}
