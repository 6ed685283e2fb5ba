"""Sending Webmentions and pingbacks (W3C Webmention §3.1, Pingback 1.0) for the pages a post links to.

Posts are published, edited and deleted through the admin editor over HTTP (or imported with
``fedblog import wordpress``); the real delivery worker runs the ``linkback.send`` jobs through its
guarded client against fake websites (tests/fediverse/websites.py): a Webmention receiver that
verifies our source page, a pingback server that parses the XML-RPC call, a page with neither.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, col, select

from fedblog.cli import main
from fedblog.clock import FrozenClock, utc
from fedblog.federation.linkback_jobs import SEND_LINKBACK
from fedblog.federation.linkback_send import SentLinkback, sent_for_post
from fedblog.jobs.runner import DeliveryRunner
from fedblog.services import Services
from fedblog.store.tables import Delivery, Post
from tests.admin_http import csrf_of, login
from tests.fediverse.network import FakeFediverse
from tests.fediverse.websites import Mention, Websites
from tests.flows.test_admin import PASSWORD, owner  # noqa: F401  (owner is a fixture)
from tests.flows.test_editor import _editor, _post, _submit

pytestmark = pytest.mark.anyio
DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.fixture
def web(fediverse: FakeFediverse) -> Websites:
    return Websites(fediverse)


async def _run(services: Services) -> None:
    await DeliveryRunner(services, concurrency=2).run_until_idle()


def _jobs(services: Services) -> list[Delivery]:
    with Session(services.engine) as s:
        return list(s.exec(select(Delivery).where(col(Delivery.kind) == SEND_LINKBACK).order_by(col(Delivery.id))))


def _sent(services: Services, post_id: int | None) -> dict[str, SentLinkback]:
    assert post_id is not None
    with Session(services.engine) as s:
        return {row.target: row for row in sent_for_post(s, post_id)}


async def _publish(client: httpx.AsyncClient, title: str, body: str, **fields: str) -> None:
    r = await _submit(client, await _editor(client), "publish", title=title, body=body, **fields)
    assert r.status_code == 303, r.text


async def _edit(client: httpx.AsyncClient, post_id: int | None, title: str, body: str, **fields: str) -> None:
    path = f"/admin/posts/{post_id}/edit"
    r = await _submit(client, await _editor(client, path), "publish", path=path, title=title, body=body, **fields)
    assert r.status_code == 303, r.text


SOURCE = "https://blog.test/posts/links"


async def test_a_published_post_notifies_each_page_it_links_to_by_webmention_or_pingback(
    services: Services, client: httpx.AsyncClient, web: Websites, owner: str,  # noqa: F811
) -> None:
    web.add_webmention_site("picky.test")
    web.script("picky.test", (400, {}, "target is not a page of this site"))
    await login(client, PASSWORD)
    body = ("Read [this](https://wm.test/article#part-2), [that](https://pb.test/post?id=7) and "
            "[a page](https://plain.test/about), [again](https://wm.test/article), "
            "[picky](https://picky.test/x), [my other post](https://blog.test/posts/other), "
            "[the archive](/archive) and [http too](http://blog.test/about).\n\n"
            "> quoted\n\n<blockquote cite=\"https://plain.test/quoted\">A quote.</blockquote>\n")
    await _publish(client, "Links", body)
    post = _post(services, slug="links")
    queued = [(j.inbox, j.host) for j in _jobs(services)]  # one job per target, in the publishing transaction
    assert queued == [("https://wm.test/article", "wm.test"), ("https://pb.test/post?id=7", "pb.test"),
                      ("https://plain.test/about", "plain.test"), ("https://picky.test/x", "picky.test"),
                      ("https://plain.test/quoted", "plain.test")]

    await _run(services)

    # Webmention: the endpoint from the Link header, its query kept; the receiver finds the link
    assert sorted(web.webmentions(), key=lambda m: m.target) == [
        Mention("webmention", SOURCE, "https://picky.test/x", "key=k1", 200, True),
        Mention("webmention", SOURCE, "https://wm.test/article", "key=k1", 200, True)]
    # Pingback: one pingback.ping(source, target) call, read with xmlrpc.client on the fake's side
    assert web.pingbacks() == [Mention("pingback", SOURCE, "https://pb.test/post?id=7", "")]
    assert sorted(web.requests["plain.test"]) == ["GET /about", "GET /quoted"]  # fetched, nothing to notify
    assert web.requests["wm.test"] == ["GET /article", "POST /webmention"]
    sent = _sent(services, post.id)
    assert [(t, r.state, r.endpoint_kind, r.last_status) for t, r in sent.items()] == [
        ("https://wm.test/article", "sent", "webmention", 202),
        ("https://pb.test/post?id=7", "sent", "pingback", 200),
        ("https://plain.test/about", "no_endpoint", "none", 200),
        ("https://picky.test/x", "gave_up", "webmention", 400),
        ("https://plain.test/quoted", "no_endpoint", "none", 200)]
    assert sent["https://picky.test/x"].last_error == "HTTP 400: target is not a page of this site"
    assert [j.state for j in _jobs(services)] == ["sent", "sent", "sent", "gave_up", "sent"]

    # a second save with nothing changed sends again only where the last send failed
    await _edit(client, post.id, "Links", body)
    await _run(services)
    assert [m.target for m in web.mentions[3:]] == ["https://picky.test/x"] and len(_jobs(services)) == 6
    await _edit(client, post.id, "Links, edited", body)  # the title changed: every receiver refreshes
    await _run(services)  # (a pingback sent twice is "already registered")
    assert sorted((m.via, m.target) for m in web.mentions[4:]) == [
        ("pingback", "https://pb.test/post?id=7"), ("webmention", "https://picky.test/x"),
        ("webmention", "https://wm.test/article")]
    # the two pages' jobs run concurrently: their GETs may interleave in either order
    assert sorted(web.requests["plain.test"]) == ["GET /about"] * 2 + ["GET /quoted"] * 2
    assert _sent(services, post.id)["https://pb.test/post?id=7"].state == "sent"  # fault 0x30 counts as success
    assert "fault 48" in (_sent(services, post.id)["https://pb.test/post?id=7"].last_error or "")


async def test_a_failing_endpoint_is_retried_with_the_queue_policy_and_retry_after(
    services: Services, client: httpx.AsyncClient, web: Websites, clock: FrozenClock, owner: str,  # noqa: F811
) -> None:
    web.add_webmention_site("flaky.test")
    web.script("flaky.test", (500, {}, "oops"), (429, {"Retry-After": "600"}, "slow down"))
    await login(client, PASSWORD)
    await _publish(client, "Flaky", "See [there](https://flaky.test/page).")
    post = _post(services, slug="flaky")

    await _run(services)
    [job] = _jobs(services)
    assert (job.state, job.attempts, job.last_status, job.last_error) == ("pending", 1, 500, "HTTP 500: oops")
    wait = utc(job.next_attempt_at) - clock.now()
    assert timedelta(seconds=30) <= wait <= timedelta(seconds=60)  # the first backoff step
    assert _sent(services, post.id)["https://flaky.test/page"].state == "retrying"

    clock.advance(wait.total_seconds())
    await _run(services)
    [job] = _jobs(services)
    assert (job.state, job.attempts, job.last_status) == ("pending", 2, 429)
    assert timedelta(seconds=600) <= utc(job.next_attempt_at) - clock.now() <= timedelta(seconds=601)

    clock.advance(300)
    await _run(services)  # not due yet: Retry-After is honoured
    assert len(web.webmentions()) == 2
    clock.advance(301)
    await _run(services)
    [job] = _jobs(services)
    assert job.state == "sent" and job.attempts == 3 and len(web.webmentions()) == 3
    row = _sent(services, post.id)["https://flaky.test/page"]
    assert (row.state, row.last_status, row.last_error) == ("sent", 202, None)


async def test_an_edit_notifies_removed_links_and_a_deletion_notifies_the_rest(
    services: Services, client: httpx.AsyncClient, web: Websites, owner: str,  # noqa: F811
) -> None:
    await login(client, PASSWORD)
    await _publish(client, "Links", "[a](https://wm.test/a) [b](https://wm.test/b) [p](https://pb.test/p)")
    post = _post(services, slug="links")
    await _run(services)
    assert sorted((m.via, m.target) for m in web.mentions) == [
        ("pingback", "https://pb.test/p"), ("webmention", "https://wm.test/a"), ("webmention", "https://wm.test/b")]

    # b and p removed: b's receiver is told and finds the link gone; Pingback cannot withdraw: p is left alone
    await _edit(client, post.id, "Links", "[a](https://wm.test/a) and a [new one](https://wm.test/c)")
    await _run(services)
    later = web.mentions[3:]
    assert sorted((m.target, m.links_to_target) for m in later) == [
        ("https://wm.test/a", True), ("https://wm.test/b", False), ("https://wm.test/c", True)]
    assert web.requests["pb.test"] == ["GET /p", "POST /xmlrpc.php"]
    assert {t: r.linked for t, r in _sent(services, post.id).items()} == {
        "https://wm.test/a": True, "https://wm.test/b": False, "https://pb.test/p": False, "https://wm.test/c": True}

    # deleted: the pages it still linked to are told; their receivers find 410 Gone
    confirm = await client.get(f"/admin/posts/{post.id}/delete")
    r = await client.post(f"/admin/posts/{post.id}/delete", data={"csrf": csrf_of(confirm.text)})
    assert r.status_code == 303
    await _run(services)
    gone = web.mentions[6:]
    assert sorted((m.target, m.source_status) for m in gone) == [("https://wm.test/a", 410), ("https://wm.test/c", 410)]
    assert all(m.source == SOURCE for m in web.mentions)


async def test_drafts_and_quiet_posts_send_nothing_until_published(
    services: Services, client: httpx.AsyncClient, web: Websites, owner: str,  # noqa: F811
) -> None:
    await login(client, PASSWORD)
    csrf = await _editor(client)
    r = await _submit(client, csrf, "draft", title="Draft", body="[a](https://wm.test/draft)")
    assert r.status_code == 303
    await _publish(client, "Old", "[o](https://wm.test/old)", date="2025-10-01T09:30")  # quiet: history
    assert _jobs(services) == []
    await _run(services)
    assert web.requests == {} and web.mentions == []

    draft = _post(services, slug="draft")
    await _edit(client, draft.id, "Draft", "[a](https://wm.test/draft)")  # now published
    await _run(services)
    assert [(m.source, m.target) for m in web.mentions] == [("https://blog.test/posts/draft", "https://wm.test/draft")]


async def test_an_import_sends_nothing_and_a_later_edit_sends_only_new_links(
    services: Services, client: httpx.AsyncClient, web: Websites, cli_env: dict[str, str], tmp_path: Path,
    owner: str,  # noqa: F811
) -> None:
    xml = (DATA / "wordpress-6-export.xml").read_text(encoding="utf-8")
    export = tmp_path / "export.xml"
    export.write_text(xml.replace("@@CONTENT@@", 'Imported, see <a href="https://wm.test/imported">this</a>.')
                      .replace("@@COMMENTS@@", ""), encoding="utf-8")
    assert main(["import", "wordpress", str(export), "--quiet"]) == 0
    with Session(services.engine) as s:
        post = s.exec(select(Post).where(col(Post.content_html).contains("https://wm.test/imported"))).one()
    assert _jobs(services) == []
    await _run(services)
    assert web.requests == {}

    await login(client, PASSWORD)
    await _edit(client, post.id, post.title, "See [this](https://wm.test/imported) and [that](https://wm.test/new).")
    await _run(services)
    assert [m.target for m in web.mentions] == ["https://wm.test/new"]


async def test_private_and_loopback_targets_are_refused_by_the_guarded_client(
    services: Services, client: httpx.AsyncClient, web: Websites, owner: str,  # noqa: F811
) -> None:
    web.add_plain("127.0.0.1")
    web.add_plain("10.1.2.3")
    web.add_webmention_site("evil.test", endpoint="http://127.0.0.1/hook")  # an endpoint inside our network
    await login(client, PASSWORD)
    await _publish(client, "Probe", "[1](http://127.0.0.1/admin) [2](http://10.1.2.3/) [3](https://evil.test/p)")
    post = _post(services, slug="probe")
    await _run(services)
    assert web.requests["127.0.0.1"] == [] and web.requests["10.1.2.3"] == [] and web.mentions == []
    assert web.requests["evil.test"] == ["GET /p"]
    sent = _sent(services, post.id)
    assert {t: r.state for t, r in sent.items()} == {
        "http://127.0.0.1/admin": "gave_up", "http://10.1.2.3/": "gave_up", "https://evil.test/p": "gave_up"}
    assert {(r.last_error or "").split(" (")[0] for r in sent.values()} == {
        "blocked: refused to connect to 127.0.0.1", "blocked: refused to connect to 10.1.2.3"}
    assert {j.state for j in _jobs(services)} == {"gave_up"}


async def test_the_cli_publishes_and_deletes_with_linkbacks_and_caps_them_per_post(
    services: Services, web: Websites, clock: FrozenClock, cli_env: dict[str, str], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    many = " ".join(f"[{i}](https://site{i}.test/)" for i in range(60))
    src = tmp_path / "cli.md"
    src.write_text(f"---\ntitle: From the CLI\n---\nSee [this](https://wm.test/cli).\n\n{many}\n", encoding="utf-8")
    assert main(["post", "publish", str(src)]) == 0
    assert "published: https://blog.test/posts/from-the-cli" in capsys.readouterr().out
    jobs = _jobs(services)
    assert len(jobs) == 50 and jobs[0].inbox == "https://wm.test/cli"  # at most 50 targets per post, in order
    assert jobs[-1].inbox == "https://site48.test/"

    clock.advance((utc(jobs[0].created_at) - clock.now()).total_seconds() + 1)  # the CLI ran on the real clock
    await _run(services)
    assert [(m.source, m.target, m.links_to_target) for m in web.webmentions()] == [
        ("https://blog.test/posts/from-the-cli", "https://wm.test/cli", True)]

    assert main(["post", "delete", "from-the-cli"]) == 0
    [job] = _jobs(services)[50:]  # only the Webmention target is told (the others had no endpoint)
    clock.advance((utc(job.created_at) - clock.now()).total_seconds() + 1)
    await _run(services)
    assert [(m.target, m.source_status) for m in web.webmentions()[1:]] == [("https://wm.test/cli", 410)]
