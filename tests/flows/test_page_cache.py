"""Rendered post pages and Articles are cached per post version, with conditional GETs (RFC 9110 §13).

Every change to a post or its interactions (a reply, a like, an edit or delete from the fediverse,
a moderation decision, a CLI edit or delete) bumps the post's version in the same transaction, in
the database, so the next GET shows it, in this process and in any other serving the same database.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select

from fedblog.app import create_app
from fedblog.cli import main
from fedblog.clock import FrozenClock
from fedblog.services import build_services
from fedblog.settings import Settings
from fedblog.store.tables import Interaction
from tests.fediverse import builders
from tests.fediverse.instance import FakeInstance
from tests.fediverse.network import FakeFediverse
from tests.flows.test_conversations import post  # noqa: F401 (the one post, /posts/hello)

pytestmark = [pytest.mark.usefixtures("post")]
PAGE = "/posts/hello"
POST = "https://blog.test/posts/hello"
INBOX = "https://blog.test/inbox"
AP = {"Accept": "application/activity+json"}
_TOKEN = re.compile(r'name="token" value="[^"]*"')


def page_bytes(text: str) -> str:
    """The page without its comment-form token, the one part filled per response."""
    return _TOKEN.sub('name="token" value=""', text)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(moderation="first-contact")  # a newcomer's reply waits for approval


@pytest.mark.anyio
async def test_etag_and_last_modified_round_trip(client: httpx.AsyncClient) -> None:
    r = await client.get(PAGE)
    assert r.status_code == 200
    etag, modified = r.headers["etag"], r.headers["last-modified"]
    # weak (RFC 9110 §8.8.1): the cached bytes are the same, but each response carries its own
    # comment-form token (fedblog/web/comments.py)
    assert etag.startswith('W/"') and "accept" in r.headers["vary"].lower()
    assert r.headers["cache-control"] == "no-cache"
    again = await client.get(PAGE, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    strong = etag.removeprefix("W/")  # If-None-Match compares weakly: either form matches
    assert (await client.get(PAGE, headers={"If-None-Match": f'"nope", {strong}'})).status_code == 304
    assert (await client.get(PAGE, headers={"If-Modified-Since": modified})).status_code == 304
    assert (await client.get(PAGE, headers={"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"})).status_code == 200
    # If-None-Match wins over If-Modified-Since (RFC 9110 §13.1.3)
    r2 = await client.get(PAGE, headers={"If-None-Match": '"other"', "If-Modified-Since": modified})
    assert r2.status_code == 200 and page_bytes(r2.text) == page_bytes(r.text)
    assert (await client.get(PAGE, headers={"If-None-Match": "*"})).status_code == 304


@pytest.mark.anyio
async def test_html_and_json_are_separate_representations(client: httpx.AsyncClient) -> None:
    html = await client.get(PAGE)
    doc = await client.get(PAGE, headers=AP)
    assert html.headers["content-type"].startswith("text/html")
    assert doc.headers["content-type"].startswith("application/activity+json")
    assert doc.json()["type"] == "Article"
    assert html.headers["etag"] != doc.headers["etag"]
    assert "accept" in doc.headers["vary"].lower() and "accept" in html.headers["vary"].lower()
    # the HTML's validator does not validate the JSON, nor the other way round
    assert (await client.get(PAGE, headers={**AP, "If-None-Match": html.headers["etag"]})).status_code == 200
    assert (await client.get(PAGE, headers={"If-None-Match": doc.headers["etag"]})).status_code == 200
    assert (await client.get(PAGE, headers={**AP, "If-None-Match": doc.headers["etag"]})).status_code == 304
    # served from the cache, each is still its own body
    assert page_bytes((await client.get(PAGE)).text) == page_bytes(html.text)
    assert (await client.get(PAGE, headers=AP)).json() == doc.json()


@pytest.mark.anyio
async def test_every_change_shows_at_once(
    services: object, fediverse: FakeFediverse, client: httpx.AsyncClient, cli_env: dict[str, str], tmp_path: Path,
    clock: FrozenClock,
) -> None:
    masto = FakeInstance("mastodon.test", fediverse)
    alice = masto.actor("alice", "Alice A.")

    async def etags() -> tuple[str, str]:
        return (await client.get(PAGE)).headers["etag"], (await client.get(PAGE, headers=AP)).headers["etag"]

    before = await etags()
    # a reply held for moderation: not shown, but approving it shows it at once
    create, note = builders.reply(alice, POST, "<p>first words</p>", clock.now())
    assert (await masto.post(alice, INBOX, create)).status_code == 202
    assert "first words" not in (await client.get(PAGE)).text
    held = await etags()
    assert held != before  # a pending row is a change of the thread too: cheap, and always correct
    assert (await client.get(PAGE, headers={"If-None-Match": before[0]})).status_code == 200
    with Session(services.engine) as s:  # type: ignore[attr-defined]
        item = s.exec(select(Interaction).where(Interaction.ap_id == note["id"])).one()
    assert main(["moderation", "approve", str(item.id)]) == 0
    assert "first words" in (await client.get(PAGE)).text
    assert note["id"] in (await client.get(PAGE, headers=AP)).text  # the Article's first replies page
    # a like: the Article's count and the page's reactions
    assert (await masto.post(alice, INBOX, builders.like(alice, POST))).status_code == 202
    assert (await client.get(PAGE, headers=AP)).json()["likes"]["totalItems"] == 1
    # an edit from the fediverse
    clock.advance(60)
    edit = builders.update(alice, note, "<p>second thoughts</p>", clock.now())
    assert (await masto.post(alice, INBOX, edit)).status_code == 202
    page = (await client.get(PAGE)).text
    assert "second thoughts" in page and "first words" not in page
    # the author edits the post from the command line, then deletes it
    src = tmp_path / "hello.md"
    src.write_text("---\ntitle: Hello again\nslug: hello\n---\nA post, edited.\n")
    assert main(["post", "publish", str(src)]) == 0
    assert "Hello again" in (await client.get(PAGE)).text
    assert (await client.get(PAGE, headers=AP)).json()["name"] == "Hello again"
    assert main(["post", "delete", "hello"]) == 0
    assert (await client.get(PAGE)).status_code == 410
    assert (await client.get(PAGE, headers=AP)).json()["type"] == "Tombstone"


@pytest.fixture
async def second_process(settings: Settings, clock: FrozenClock) -> AsyncIterator[httpx.AsyncClient]:
    """Another server process on the same database: its own Services, app and page cache."""
    other = build_services(settings, clock=clock)
    transport = httpx.ASGITransport(app=create_app(other))
    async with httpx.AsyncClient(transport=transport, base_url="https://blog.test") as c:
        yield c
    await other.aclose()


@pytest.mark.anyio
async def test_a_change_made_through_one_process_shows_in_another(
    services: object, fediverse: FakeFediverse, client: httpx.AsyncClient, second_process: httpx.AsyncClient,
    clock: FrozenClock,
) -> None:
    first = await second_process.get(PAGE)  # cached there
    assert first.status_code == 200 and page_bytes((await second_process.get(PAGE)).text) == page_bytes(first.text)
    masto = FakeInstance("mastodon.test", fediverse)
    alice = masto.actor("alice", "Alice A.")
    assert (await masto.post(alice, INBOX, builders.like(alice, POST))).status_code == 202  # through `client`'s app
    doc = (await second_process.get(PAGE, headers=AP)).json()
    assert doc["likes"]["totalItems"] == 1
    again = await second_process.get(PAGE, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 200 and again.headers["etag"] != first.headers["etag"]


@pytest.mark.anyio
async def test_a_cached_page_is_served_with_the_same_headers_as_a_rendered_one(
    client: httpx.AsyncClient, fediverse: FakeFediverse
) -> None:
    """The second GET is answered from the cache at the edge (web/fastpage.py), the first by the route
    and the middleware: the same page (each with its own form token) and the same headers, CSP and
    validators included."""
    cache = fediverse.apps["blog.test"].state.page_cache
    misses, hits = cache.misses, cache.hits
    rendered = await client.get(PAGE)
    assert (cache.misses, cache.hits) == (misses + 1, hits)  # rendered by the route
    cached = await client.get(PAGE)
    assert cache.hits == hits + 1 and cache.misses == misses + 1  # from the cache
    assert cached.status_code == rendered.status_code == 200
    # each response has its own comment-form token (web/comments.py); everything else is the same
    tokens = [re.findall(rb'name="token" value="([^"]+)"', r.content) for r in (rendered, cached)]
    assert all(len(t) == 1 and not t[0].startswith(b"fedblog:form-token:") for t in tokens)
    assert tokens[0] != tokens[1]
    assert cached.content.replace(tokens[1][0], tokens[0][0]) == rendered.content
    assert sorted(cached.headers.multi_items()) == sorted(rendered.headers.multi_items())
    assert cached.headers["etag"].startswith('W/"')
    assert "script-src" not in cached.headers["content-security-policy"]
    assert cached.headers["content-security-policy"].startswith("default-src 'self'")
    assert cached.headers["x-content-type-options"] == "nosniff"
    assert cached.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert cached.headers["content-length"] == str(len(cached.content))
    # conditional, ActivityPub and HEAD requests still get what the route answers
    assert (await client.get(PAGE, headers={"If-None-Match": cached.headers["etag"]})).status_code == 304
    assert (await client.get(PAGE, headers=AP)).headers["content-type"].startswith("application/activity+json")
    head = await client.head(PAGE)
    assert head.status_code == 200 and head.content == b"" and head.headers["etag"] == cached.headers["etag"]
    assert (await client.get(PAGE + "-missing")).status_code == 404
