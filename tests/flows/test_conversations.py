"""Conversations: fediverse replies, edits, deletes, likes and boosts, on the page and in collections.

Each fake instance signs with its own code; replies are shaped like Mastodon's, GoToSocial's
and Misskey's. Everything goes through our real inbox over HTTP and a real database.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from sqlmodel import Session, func, select

from fedblog.blog.demo import load_demo
from fedblog.blog.posts import parse_post_source
from fedblog.cli import main
from fedblog.federation.publishing import publish
from fedblog.services import Services
from fedblog.settings import Settings
from fedblog.store.db import session_scope
from fedblog.store.tables import Interaction
from tests.fediverse import builders
from tests.fediverse.instance import FakeInstance
from tests.fediverse.network import FakeFediverse
from tests.helpers import NS, classes, parse_html, text_of

pytestmark = pytest.mark.anyio
AP = "application/activity+json"
POST = "https://blog.test/posts/hello"
INBOX = "https://blog.test/inbox"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(moderation="approve-all")


@pytest.fixture
def post(services: Services) -> str:
    with session_scope(services.engine) as session:
        publish(session, services, parse_post_source("---\ntitle: Hello\nslug: hello\n---\nA post to reply to.\n"))
    return POST


def _count(services: Services, **where: object) -> int:
    with Session(services.engine) as s:
        stmt = select(func.count()).select_from(Interaction)
        for k, v in where.items():
            stmt = stmt.where(getattr(Interaction, k) == v)
        return s.exec(stmt).one()


def _comments(html: str) -> dict[str, dict[str, object]]:
    """author name -> {text, handle, avatar, original, parent author} from the rendered page."""
    doc = parse_html(html)
    out: dict[str, dict[str, object]] = {}
    def walk(el, parent_name=None):  # type: ignore[no-untyped-def]
        for child in el:
            if child.tag == NS + "li" and "comment" in classes(child):
                art = [c for c in child if c.tag == NS + "article"][0]
                name = text_of([e for e in art.iter() if "p-name" in classes(e)][0])
                handle = [text_of(e) for e in art.iter() if "p-nickname" in classes(e)]
                avatar = [e.get("src") for e in art.iter(NS + "img")]
                original = [e.get("href") for e in art.iter(NS + "a") if "original" in classes(e)]
                body = [e for e in art.iter() if "e-content" in classes(e)][0]
                out[name] = {"text": text_of(body), "handle": handle[0] if handle else None,
                             "avatar": avatar[0] if avatar else None, "original": original[0] if original else None,
                             "parent": parent_name}
                for sub in child:
                    if sub.tag == NS + "ol":
                        walk(sub, name)
            else:
                walk(child, parent_name)
    walk(doc)
    return out


async def test_replies_from_three_servers_show_threaded(
    services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient, post: str
) -> None:
    now = services.clock.now()
    masto, gts, misskey = (FakeInstance("mastodon.test", fediverse), FakeInstance("gts.test", fediverse, "gotosocial"),
                           FakeInstance("misskey.test", fediverse, "misskey"))
    alice, bob, chika = masto.actor("alice", "Alice A."), gts.actor("bob", "Bob B."), misskey.actor("chika", "Chika C.")
    c1, n1 = builders.reply(alice, post, "<p>Great post!</p>", now)
    assert (await masto.post(alice, INBOX, c1)).status_code == 202
    c2, n2 = builders.reply(bob, n1["id"], "<p>Agreed with Alice.</p>", now)  # reply to a reply
    assert (await gts.post(bob, "https://blog.test/users/blog/inbox", c2)).status_code == 202
    c3, n3 = builders.reply(chika, n2["id"], "<p>And a reply to the reply.</p>", now)  # Misskey: not addressed to us
    assert (await misskey.post(chika, INBOX, c3)).status_code == 202
    page = (await client.get("/posts/hello")).text
    comments = _comments(page)
    assert comments["Alice A."]["parent"] is None
    assert comments["Bob B."]["parent"] == "Alice A."
    assert comments["Chika C."]["parent"] == "Bob B."
    assert comments["Alice A."]["text"] == "Great post!"
    assert comments["Alice A."]["handle"] == "@alice@mastodon.test"
    assert comments["Bob B."]["handle"] == "@bob@gts.test"
    assert comments["Alice A."]["avatar"] == "https://mastodon.test/avatars/alice.png"
    assert comments["Alice A."]["original"] == n1["url"]
    assert comments["Chika C."]["original"] == n3["id"]  # Misskey sent no url: link the id


async def test_reply_addressed_to_another_spelling_of_our_origin_is_kept(
    services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient, post: str
) -> None:
    """``https://blog.test:443/posts/hello`` is the same URL as ``https://blog.test/posts/hello``
    (RFC 3986 section 6.2.3): a reply addressed that way is a reply to the post, not dropped."""
    masto = FakeInstance("mastodon.test", fediverse)
    alice = masto.actor("alice", "Alice A.")
    create, _ = builders.reply(alice, "https://blog.test:443/posts/hello", "<p>Via the default port</p>",
                               services.clock.now())
    assert (await masto.post(alice, INBOX, create)).status_code == 202
    gts = FakeInstance("gts.test", fediverse, "gotosocial")
    bob = gts.actor("bob", "Bob B.")
    create, _ = builders.reply(bob, "https://BLOG.test./posts/hello", "<p>Via a trailing dot</p>", services.clock.now())
    assert (await gts.post(bob, INBOX, create)).status_code == 202
    comments = _comments((await client.get("/posts/hello")).text)
    assert comments["Alice A."]["text"] == "Via the default port"
    assert comments["Bob B."]["text"] == "Via a trailing dot"
    assert _count(services, kind="reply", status="visible") == 2


async def test_reply_to_an_imported_comment_and_object_by_reference(
    services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient
) -> None:
    with session_scope(services.engine) as session:
        load_demo(session)
    with Session(services.engine) as s:
        first = s.exec(select(Interaction).where(Interaction.author_name == "redwhitedude")).one()
    masto = FakeInstance("mastodon.test", fediverse)
    alice = masto.actor("alice", "Alice A.")
    create, note = builders.reply(alice, f"https://blog.test/comments/{first.id}", "<p>Late to this thread.</p>",
                                  services.clock.now(), embed=False)
    masto.objects[note["id"]] = note  # the Create carries only the id: we fetch it from its origin
    assert (await masto.post(alice, INBOX, create)).status_code == 202
    comments = _comments((await client.get("/posts/china-sent-back-north-korean-defectors")).text)
    assert comments["Alice A."]["parent"] == "redwhitedude"


async def test_edit_and_delete(
    services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient, post: str
) -> None:
    masto = FakeInstance("mastodon.test", fediverse)
    alice = masto.actor("alice", "Alice A.")
    create, note = builders.reply(alice, post, "<p>First version</p>", services.clock.now())
    assert (await masto.post(alice, INBOX, create)).status_code == 202
    services.clock.advance(60)  # type: ignore[attr-defined]
    assert (
        await masto.post(alice, INBOX, builders.update(alice, note, "<p>Second version</p>", services.clock.now()))
    ).status_code == 202
    assert _comments((await client.get("/posts/hello")).text)["Alice A."]["text"] == "Second version"
    # an older edit arriving late changes nothing
    old = builders.update(alice, note, "<p>Stale</p>", services.clock.now().replace(year=2020))
    assert (await masto.post(alice, INBOX, old)).status_code == 202
    assert _comments((await client.get("/posts/hello")).text)["Alice A."]["text"] == "Second version"
    assert (await masto.post(alice, INBOX, builders.delete(alice, note["id"]))).status_code == 202
    assert "Alice A." not in _comments((await client.get("/posts/hello")).text)
    replies = (await client.get("/posts/hello/replies?page=1", headers={"Accept": AP})).json()
    assert replies["orderedItems"] == []


async def test_delete_before_create_drops_the_late_create(
    services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient, post: str
) -> None:
    masto = FakeInstance("mastodon.test", fediverse)
    alice = masto.actor("alice", "Alice A.")
    create, note = builders.reply(alice, post, "<p>Deleted before it arrived</p>", services.clock.now())
    assert (await masto.post(alice, INBOX, builders.delete(alice, note["id"]))).status_code == 202
    assert (await masto.post(alice, INBOX, create)).status_code == 202
    assert _count(services, kind="reply") == 0


async def test_likes_boosts_and_undo(
    services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient, post: str
) -> None:
    masto, misskey = FakeInstance("mastodon.test", fediverse), FakeInstance("misskey.test", fediverse, "misskey")
    alice, dan, chika = (
        masto.actor("alice", "Alice A."),
        masto.actor("dan", "Dan D."),
        misskey.actor("chika", "Chika C."),
    )
    l1 = builders.like(alice, post)
    for _ in range(2):  # the same Like twice: counted once
        assert (await masto.post(alice, INBOX, l1)).status_code == 202
    assert (
        await masto.post(alice, INBOX, builders.like(alice, post))
    ).status_code == 202  # a second Like id, same actor
    assert (await misskey.post(chika, INBOX, builders.like(chika, post, misskey=True))).status_code == 202
    b1 = builders.announce(dan, post, services.clock.now())
    assert (await masto.post(dan, INBOX, b1)).status_code == 202
    doc = parse_html((await client.get("/posts/hello")).text)
    counts = [text_of(e) for e in doc.iter() if "reaction-count" in classes(e)]
    assert counts == ["2 likes", "1 boost"]
    faces = {e.get("href") for e in doc.iter(NS + "a") if "h-card" in classes(e) and "p-author" in classes(e)}
    assert {alice.document()["url"], chika.document()["url"], dan.document()["url"]} <= faces
    article = (await client.get("/posts/hello", headers={"Accept": AP})).json()
    assert article["likes"]["totalItems"] == 2 and article["shares"]["totalItems"] == 1
    assert (await client.get("/posts/hello/likes", headers={"Accept": AP})).json()["totalItems"] == 2
    assert (await masto.post(alice, INBOX, builders.undo(alice, l1))).status_code == 202
    assert (await masto.post(dan, INBOX, builders.undo(dan, b1))).status_code == 202
    counts = [
        text_of(e) for e in parse_html((await client.get("/posts/hello")).text).iter() if "reaction-count" in classes(e)
    ]
    assert counts == ["1 like"]


async def test_same_activity_twice_at_once_has_one_effect(
    services: Services, fediverse: FakeFediverse, post: str
) -> None:
    masto = FakeInstance("mastodon.test", fediverse)
    alice = masto.actor("alice")
    create, _ = builders.reply(alice, post, "<p>Once</p>", services.clock.now())
    await masto.post(alice, INBOX, create)  # warm the key cache so both copies race on the insert
    create2, _ = builders.reply(alice, post, "<p>Twice</p>", services.clock.now())
    results = await asyncio.gather(*[masto.post(alice, INBOX, create2) for _ in range(5)])
    assert all(r.status_code == 202 for r in results)
    assert _count(services, kind="reply") == 2


async def test_forged_input_is_refused_and_leaves_nothing(
    services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient, post: str
) -> None:
    masto, evil = FakeInstance("mastodon.test", fediverse), FakeInstance("evil.test", fediverse)
    alice, mallory = masto.actor("alice", "Alice A."), evil.actor("mallory")
    bob = masto.actor("bob")
    # 1. actor is not the signer
    create, _ = builders.reply(alice, post, "<p>forged</p>", services.clock.now())
    r = await evil.post(alice, INBOX, create, key=mallory.key, key_id=mallory.key_id)
    assert r.status_code == 401
    # 2. an object from another host embedded by mallory
    c2, n2 = builders.reply(mallory, post, "<p>x</p>", services.clock.now())
    c2["object"] = {**n2, "id": "https://mastodon.test/users/alice/statuses/666", "attributedTo": alice.id}
    r = await evil.post(mallory, INBOX, c2)
    assert r.status_code == 400 and "another host" in r.text
    # 3. Bob updates Alice's comment
    real, note = builders.reply(alice, post, "<p>Alice's words</p>", services.clock.now())
    assert (await masto.post(alice, INBOX, real)).status_code == 202
    services.clock.advance(10)  # type: ignore[attr-defined]
    upd = builders.update(bob, {**note, "attributedTo": bob.id}, "<p>Bob was here</p>", services.clock.now())
    r = await masto.post(bob, INBOX, upd)
    assert r.status_code == 403
    r = await masto.post(bob, INBOX, {**builders.delete(bob, note["id"]), "id": bob.id + "#del"})
    assert r.status_code == 403
    assert _comments((await client.get("/posts/hello")).text)["Alice A."]["text"] == "Alice's words"
    assert _count(services) == 1


@pytest.mark.parametrize(
    "payload",
    [
        '<p>hi<script>alert(1)</script></p>',
        '<p><a href="javascript:alert(1)">click</a></p>',
        '<p><img src=x onerror="alert(1)">img</p>',
        '<p style="position:fixed;top:0">styled</p>',
        '<math><mi xlink:href="javascript:alert(1)">x</mi><mtext><table><mglyph><style><img src=x onerror=alert(1)>',
        '<p>unclosed <b><i>tags',
    ],
)
async def test_xss_payloads_are_sanitised(
    services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient, post: str, payload: str
) -> None:
    masto = FakeInstance("mastodon.test", fediverse)
    alice = masto.actor("alice", "Alice A.")
    create, _ = builders.reply(alice, post, payload, services.clock.now())
    assert (await masto.post(alice, INBOX, create)).status_code == 202
    r = await client.get("/posts/hello")
    assert r.status_code == 200
    doc = parse_html(r.text)
    body = [e for e in doc.iter() if "e-content" in classes(e) and "comment-body" in classes(e)][0]
    html = "".join(json.dumps(e.attrib) + (e.tag or "") for e in body.iter())
    for bad in ("script", "javascript:", "onerror", "style", "math", "img"):
        assert bad not in html.lower(), bad


async def test_mastodon_style_crawl_finds_every_reply_and_nothing_hidden(
    services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient, post: str
) -> None:
    masto = FakeInstance("mastodon.test", fediverse)
    people = [masto.actor(f"user{i}", f"User {i}") for i in range(5)]
    ids = []
    parent = post
    for i in range(45):
        create, note = builders.reply(
            people[i % 5], parent if i % 4 else post, f"<p>reply {i}</p>", services.clock.now()
        )
        assert (await masto.post(people[i % 5], INBOX, create)).status_code == 202
        ids.append(note["id"])
        parent = note["id"]
        services.clock.advance(1)  # type: ignore[attr-defined]
    # one held reply must not leak into the collection
    with Session(services.engine) as s:
        held = s.exec(select(Interaction).where(Interaction.ap_id == ids[7])).one()
        held.status = "pending"
        s.add(held)
        s.commit()
    # crawl as Mastodon does: fetch the post (signed GET), read replies, follow first/next on our host
    article = (await masto.get_signed(people[0], post)).json()
    seen: list[str] = []
    page = article["replies"]["first"]
    seen += page["items"]
    url = page.get("next")
    pages = 1
    while url:
        assert url.startswith("https://blog.test/")
        doc = (await masto.get_signed(people[0], url)).json()
        seen += doc.get("orderedItems", doc.get("items", []))
        url = doc.get("next")
        pages += 1
    assert pages >= 2
    shown = {i.ap_id for i in _visible(services)}
    assert set(seen) == shown and len(seen) == len(set(seen)) == 44
    assert ids[7] not in seen
    context = (await client.get("/posts/hello/context", headers={"Accept": AP})).json()
    assert context["totalItems"] == 45


def _visible(services: Services) -> list[Interaction]:
    with Session(services.engine) as s:
        return list(
            s.exec(select(Interaction).where(Interaction.status == "visible", Interaction.kind == "reply")).all()
        )


async def test_actor_update_and_delete(
    services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient, post: str
) -> None:
    masto = FakeInstance("mastodon.test", fediverse)
    alice = masto.actor("alice", "Alice A.")
    create, _ = builders.reply(alice, post, "<p>hello</p>", services.clock.now())
    assert (await masto.post(alice, INBOX, create)).status_code == 202
    alice.name = "Alice Renamed"
    upd = {"@context": "https://www.w3.org/ns/activitystreams", "id": alice.id + "#updates/1", "type": "Update",
           "actor": alice.id, "object": alice.document()}
    assert (await masto.post(alice, INBOX, upd)).status_code == 202
    assert "Alice Renamed" in _comments((await client.get("/posts/hello")).text)
    gone = {"@context": "https://www.w3.org/ns/activitystreams", "id": alice.id + "#delete", "type": "Delete",
            "actor": alice.id, "object": alice.id}
    assert (await masto.post(alice, INBOX, gone)).status_code == 202
    assert _comments((await client.get("/posts/hello")).text) == {}


async def test_ld_signed_reply_is_forwarded_byte_for_byte(
    services: Services, fediverse: FakeFediverse, post: str
) -> None:
    masto, gts = FakeInstance("mastodon.test", fediverse), FakeInstance("gts.test", fediverse, "gotosocial")
    alice, bob = masto.actor("alice"), gts.actor("bob")
    from fedblog.jobs.runner import DeliveryRunner
    from tests.fediverse.instance import follow

    assert (
        await gts.post(bob, "https://blog.test/users/blog/inbox", follow(bob, "https://blog.test/users/blog"))
    ).status_code == 202
    create, _ = builders.reply(alice, post, "<p>signed</p>", services.clock.now())
    create["signature"] = {
        "type": "RsaSignature2017",
        "creator": alice.key_id,
        "created": "2026-01-01T00:00:00Z",
        "signatureValue": "c2ln",
    }
    body = json.dumps(create, separators=(",", ":")).encode()
    assert (await masto.post(alice, INBOX, create, body=body)).status_code == 202
    unsigned, _ = builders.reply(alice, post, "<p>not LD-signed</p>", services.clock.now())
    assert (await masto.post(alice, INBOX, unsigned)).status_code == 202
    await DeliveryRunner(services, concurrency=2).run_until_idle()
    forwarded = [r for r in gts.received if r.json.get("type") == "Create"]
    assert (
        len(forwarded) == 1 and forwarded[0].body == body and forwarded[0].signature_ok is False
    )  # actor != our signer
    assert "blog.test/users/blog#main-key" in forwarded[0].headers["signature"]
    assert masto.received == [] or all(r.json.get("type") != "Create" for r in masto.received)


async def test_first_contact_moderation(
    services: Services,
    fediverse: FakeFediverse,
    client: httpx.AsyncClient,
    post: str,
    cli_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    object.__setattr__(services.settings, "moderation", "first-contact")
    masto = FakeInstance("mastodon.test", fediverse)
    alice = masto.actor("alice", "Alice A.")
    create, note = builders.reply(alice, post, "<p>first words</p>", services.clock.now())
    assert (await masto.post(alice, INBOX, create)).status_code == 202
    assert "Alice A." not in _comments((await client.get("/posts/hello")).text)
    assert (await client.get("/posts/hello/replies?page=1", headers={"Accept": AP})).json()["orderedItems"] == []
    assert main(["moderation", "list"]) == 0
    listing = capsys.readouterr().out
    assert "Alice A." in listing and "first words" in listing
    comment_id = listing.split()[0]
    assert main(["moderation", "approve", comment_id]) == 0
    assert "Alice A." in _comments((await client.get("/posts/hello")).text)
    again, _ = builders.reply(alice, post, "<p>second words</p>", services.clock.now())
    assert (await masto.post(alice, INBOX, again)).status_code == 202
    assert _count(services, status="visible", kind="reply") == 2
    # block the domain: refused before any key fetch
    assert main(["moderation", "block", "evil.test"]) == 0
    evil = FakeInstance("evil.test", fediverse)
    mallory = evil.actor("mallory")
    before = len([u for _, u in fediverse.log if "evil.test/users" in u])
    c, _ = builders.reply(mallory, post, "<p>spam</p>", services.clock.now())
    assert (await evil.post(mallory, INBOX, c)).status_code == 403
    assert len([u for m, u in fediverse.log if "evil.test/users" in u and m == "GET"]) == before


async def test_reply_and_follow_buttons_redirect_to_the_readers_server(
    services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient, post: str
) -> None:
    page = parse_html((await client.get("/posts/hello")).text)
    forms = [f for f in page.iter(NS + "form") if "interact-form" in classes(f)]
    assert forms and forms[0].get("method") == "get"
    r = await client.get("/interact", params={"uri": post, "who": "mastodon.social"})
    assert r.status_code == 303
    assert r.headers["location"] == "https://mastodon.social/authorize_interaction?uri=https%3A%2F%2Fblog.test%2Fposts%2Fhello"
    masto = FakeInstance("mastodon.test", fediverse)
    masto.actor("alice")
    r = await client.get("/interact", params={"uri": "https://blog.test/users/blog", "who": "@alice@mastodon.test"})
    assert r.status_code == 303 and r.headers["location"].startswith("https://mastodon.test/authorize_interaction?uri=")
    for bad in ("", "not a host!", "@@"):
        assert (await client.get("/interact", params={"uri": post, "who": bad})).status_code == 400
    assert (
        await client.get("/interact", params={"uri": "https://evil.test/x", "who": "mastodon.social"})
    ).status_code == 400


async def test_undo_before_like_drops_the_late_like(
    services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient, post: str
) -> None:
    masto = FakeInstance("mastodon.test", fediverse)
    alice = masto.actor("alice", "Alice A.")
    like = builders.like(alice, post)
    assert (await masto.post(alice, INBOX, builders.undo(alice, like))).status_code == 202
    assert (await masto.post(alice, INBOX, like)).status_code == 202
    assert _count(services, kind="like") == 0
