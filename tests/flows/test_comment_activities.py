"""Every comment an activity: web comments, linkbacks and imports as signed activities of local
guest and site actors, in one thread with fediverse replies.

Comments are recorded through the recorder (``fedblog.blog.interactions``) and published with
``local_comments.publish``, as the channels do; everything is then read back over HTTP. Proofs are
checked with an implementation of eddsa-jcs-2022 written here from the specification (JCS with the
``rfc8785`` package, Ed25519 with ``cryptography``), not with ``fedblog.activitypub.integrity``.
"""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from sqlmodel import Session, func, select

from fedblog.admin import queue
from fedblog.blog import interactions as recorder
from fedblog.blog.posts import parse_post_source
from fedblog.cli import main
from fedblog.federation import local_comments
from fedblog.federation.publishing import publish as publish_post
from fedblog.jobs.runner import DeliveryRunner
from fedblog.services import Services
from fedblog.settings import Settings
from fedblog.store.db import session_scope
from fedblog.store.tables import Activity, Actor, Delivery, Follower, Interaction, LocalKey, ModerationRule, Post
from tests.admin_http import csrf_of, login
from tests.fediverse import builders
from tests.fediverse.instance import PUBLIC, FakeInstance
from tests.fediverse.network import FakeFediverse
from tests.flows.test_admin import PASSWORD, owner  # noqa: F401  (the fixture)
from tests.helpers import NS, classes, parse_html, text_of

pytestmark = pytest.mark.anyio
AP = {"Accept": "application/activity+json"}
POST = "https://blog.test/posts/hello"
INBOX = "https://blog.test/inbox"
B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


# -- an independent eddsa-jcs-2022 verifier (W3C vc-di-eddsa §3.3, FEP-8b32) ---------------------
def b58decode(text: str) -> bytes:
    n = 0
    for ch in text:
        n = n * 58 + B58.index(ch)
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body


def proof_ok(doc: dict[str, Any], public: Ed25519PublicKey) -> bool:
    proof = dict(doc["proof"])
    assert proof["type"] == "DataIntegrityProof" and proof["cryptosuite"] == "eddsa-jcs-2022"
    assert proof["proofPurpose"] == "assertionMethod"
    value = proof.pop("proofValue")
    unsecured = {k: v for k, v in doc.items() if k != "proof"}
    digest = hashlib.sha256(rfc8785.dumps(proof)).digest() + hashlib.sha256(rfc8785.dumps(unsecured)).digest()
    try:
        public.verify(b58decode(value[1:]), digest)
    except InvalidSignature:
        return False
    return True


def public_key_of(services: Services, actor_row_id: int) -> Ed25519PublicKey:
    """The actor's Ed25519 public key, from the keys table."""
    with Session(services.engine) as s:
        row = s.exec(select(LocalKey).where(LocalKey.owner == f"guest:{actor_row_id}")).one()
    key = load_pem_private_key(row.ed25519_private_pem.encode(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key.public_key()


# -- fixtures and helpers ---------------------------------------------------------------------------
@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(moderation="approve-all")


@pytest.fixture
def post(services: Services) -> str:
    with session_scope(services.engine) as session:
        publish_post(session, services, parse_post_source("---\ntitle: Hello\nslug: hello\n---\nA post to answer.\n"))
    return POST


def web_comment(services: Services, text: str, *, name: str = "Gus Guest", email: str | None = "gus@mail.example",
                url: str | None = "https://gus.example/", parent: int | None = None, federated: bool = True,
                minutes: int = 0, mode: str = "approve-all") -> int:
    """A web comment as the form records it, then published in the same transaction."""
    with session_scope(services.engine) as session:
        pid = session.exec(select(Post.id).where(Post.slug == "hello")).one()
        assert pid is not None
        item = recorder.record_web_comment(
            session, mode, author=recorder.Author(name, url=url), post_id=pid, parent_id=parent,
            content_html=f"<p>{text}</p>", published_at=services.clock.now() + timedelta(minutes=minutes))
        item.author_email, item.federated = email, federated
        local_comments.publish(session, services, item)
        assert item.id is not None
        return item.id


def pingback(services: Services, source: str, title: str, *, minutes: int = 0) -> int:
    with session_scope(services.engine) as session:
        pid = session.exec(select(Post.id).where(Post.slug == "hello")).one()
        assert pid is not None
        item = recorder.record_pingback(  # as the linkback verifier records it: the excerpt in its evidence
            session, "approve-all", post_id=pid, source_url=source, site_name="Other", title=title,
            published_at=services.clock.now() + timedelta(minutes=minutes),
            evidence=json.dumps({"type": "linkback", "excerpt": "[…] a post worth reading […]"}))
        local_comments.publish(session, services, item)
        assert item.id is not None
        return item.id


def row(services: Services, item_id: int) -> Interaction:
    with Session(services.engine) as s:
        item = s.get(Interaction, item_id)
        assert item is not None
        return item


def count(services: Services, table: Any) -> int:
    with Session(services.engine) as s:
        return s.exec(select(func.count()).select_from(table)).one()


def guest_activities(services: Services) -> int:
    with Session(services.engine) as s:
        return s.exec(select(func.count()).select_from(Activity).where(Activity.actor != "blog")).one()


async def collection(client: httpx.AsyncClient, path: str) -> list[str]:
    return (await client.get(f"{path}?page=1", headers=AP)).json()["orderedItems"]


# -- tests ------------------------------------------------------------------------------------------
async def test_web_comment_is_a_signed_note_of_its_guest(
    services: Services, client: httpx.AsyncClient, post: str
) -> None:
    cid = web_comment(services, "Thanks for writing this.")
    item = row(services, cid)
    assert item.actor_id is not None and item.ap_id == f"https://blog.test/comments/{cid}"
    guest = f"https://blog.test/guests/{item.actor_id}"

    r = await client.get(f"/comments/{cid}", headers=AP)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/activity+json")
    note = r.json()
    assert (note["type"], note["id"], note["attributedTo"], note["inReplyTo"]) == ("Note", item.ap_id, guest, post)
    assert note["to"] == [PUBLIC] and note["content"] == "<p>Thanks for writing this.</p>"
    assert note["cc"] == ["https://blog.test/users/blog"]  # a reply to the post: the blog is addressed
    assert note["context"] == post + "/context" and note["url"] == f"{post}#comment-{cid}"
    assert "gus@mail.example" not in r.text  # the email is never federated
    assert note["proof"]["verificationMethod"] == guest + "#ed25519-key"
    key = public_key_of(services, item.actor_id)
    assert proof_ok(note, key)
    # the same key as the guest's actor document publishes it (FEP-521a Multikey, multibase base58-btc)
    actor = (await client.get(guest, headers=AP)).json()
    method = next(m for m in actor["assertionMethod"] if m["id"] == note["proof"]["verificationMethod"])
    raw = b58decode(method["publicKeyMultibase"].removeprefix("z"))
    assert method["controller"] == guest and raw[:2] == b"\xed\x01"
    assert proof_ok(note, Ed25519PublicKey.from_public_bytes(raw[2:]))
    tampered = copy.deepcopy(note)
    tampered["content"] = "<p>Something else.</p>"
    assert not proof_ok(tampered, key)
    assert json.loads(item.evidence or "{}")["integrity_proof"]["proof"] == note["proof"]

    # the Create, served at its own id, is signed too and embeds the same signed Note
    create = (await client.get(item.activity_ap_id or "", headers=AP)).json()
    assert (create["type"], create["actor"], create["object"]) == ("Create", guest, note)
    assert proof_ok(create, key) and proof_ok(create["object"], key)
    with Session(services.engine) as s:
        stored = s.exec(select(Activity).where(Activity.ap_id == create["id"])).one()
    assert stored.actor == f"guest:{item.actor_id}" and count(services, Delivery) == 0  # answers the post: no one

    # browsers still go to the anchor; the same commenter again is the same guest
    html = await client.get(f"/comments/{cid}")
    assert (html.status_code, html.headers["location"]) == (302, f"{post}#comment-{cid}")
    again = web_comment(services, "And another thought.", minutes=1)
    assert row(services, again).actor_id == item.actor_id


async def test_comments_without_consent_or_not_visible_are_not_published(
    services: Services, client: httpx.AsyncClient, post: str, cli_env: dict[str, str]
) -> None:
    private = web_comment(services, "Do not federate me.", federated=False)
    held = web_comment(services, "Hold me.", name="Hal", email="hal@mail.example", url=None, mode="hold-all",
                       minutes=1)
    assert row(services, private).ap_id is None and row(services, private).actor_id is None
    assert row(services, held).status == "pending" and row(services, held).ap_id is None
    for cid in (private, held, 999):
        r = await client.get(f"/comments/{cid}", headers=AP)
        assert r.status_code == 404 and r.headers["content-type"].startswith("application/activity+json"), cid
        assert "error" in r.json()
    assert await collection(client, "/posts/hello/replies") == []
    assert guest_activities(services) == 0

    # the admin approves the held comment: it is published then
    assert main(["moderation", "approve", str(held)]) == 0
    note = (await client.get(f"/comments/{held}", headers=AP)).json()
    assert note["content"] == "<p>Hold me.</p>"
    assert proof_ok(note, public_key_of(services, row(services, held).actor_id or 0))
    assert await collection(client, "/posts/hello/replies") == [f"https://blog.test/comments/{held}"]
    # rejected again: no longer served nor listed
    assert main(["moderation", "reject", str(held)]) == 0
    assert (await client.get(f"/comments/{held}", headers=AP)).status_code == 404
    assert (await client.get(row(services, held).activity_ap_id or "", headers=AP)).status_code == 404
    assert await collection(client, "/posts/hello/replies") == []


async def test_replies_and_context_interleave_local_comments_with_fediverse_replies(
    services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient, post: str
) -> None:
    masto = FakeInstance("mastodon.test", fediverse)
    alice = masto.actor("alice", "Alice A.")
    first = web_comment(services, "First, from the web.", minutes=-10)
    create, note = builders.reply(alice, post, "<p>Second, from Mastodon.</p>",
                                  services.clock.now() - timedelta(minutes=5))
    assert (await masto.post(alice, INBOX, create)).status_code == 202
    pb = pingback(services, "https://other.example/a-post", "A post about yours", minutes=-1)
    web_comment(services, "Not federated.", federated=False, minutes=-3)
    web_comment(services, "Later, not federated.", federated=False, minutes=2)
    mine = [f"https://blog.test/comments/{first}", note["id"], f"https://blog.test/comments/{pb}"]

    assert await collection(client, "/posts/hello/replies") == mine
    assert (await client.get("/posts/hello/replies", headers=AP)).json()["totalItems"] == 3
    assert await collection(client, "/posts/hello/context") == [post, *mine]
    article = (await client.get("/posts/hello", headers=AP)).json()
    assert article["replies"]["totalItems"] == 3 and article["replies"]["first"]["items"] == mine

    # the pingback is a Note of the linking site, saying what the page says, and the page is unchanged
    pb_note = (await client.get(f"/comments/{pb}", headers=AP)).json()
    site = row(services, pb).actor_id
    with Session(services.engine) as s:
        site_row = s.get(Actor, site)
        assert site_row is not None and site_row.type == "Service" and site_row.is_local
        assert site_row.name == "Other"  # as the pingback names its site, not its host
    assert pb_note["attributedTo"] == site_row.ap_id and pb_note["inReplyTo"] == post
    assert pb_note["url"] == "https://other.example/a-post"
    assert 'Pingback: <a href="https://other.example/a-post"' in pb_note["content"]
    assert "A post about yours" in pb_note["content"] and "a post worth reading" in pb_note["content"]
    assert proof_ok(pb_note, public_key_of(services, site or 0))
    page = parse_html((await client.get("/posts/hello")).text)
    lines = [text_of(e) for e in page.iter(NS + "li") if "pingback" in classes(e)]
    assert len(lines) == 1 and lines[0].startswith("Pingback: A post about yours · Other")
    # on the page it sits at its date among the top-level comments and the fediverse reply
    thread = [e for e in page.iter(NS + "ol") if "thread" in classes(e)][0]
    tops = [text_of(li) for li in thread if li.tag == NS + "li"]
    assert len(tops) == 5 and tops[3].startswith("Pingback: A post about yours")
    assert "Later, not federated." in tops[4] and "First, from the web." in tops[0]


async def test_a_reply_answers_its_nearest_published_ancestor_and_ccs_whom_it_answers(
    services: Services, client: httpx.AsyncClient, post: str
) -> None:
    top = web_comment(services, "Published top.")
    private = web_comment(services, "Not federated.", name="Pat", email="pat@mail.example", parent=top,
                          federated=False, minutes=1)
    held = web_comment(services, "Held.", name="Hal", email="hal@mail.example", parent=top, mode="hold-all",
                       minutes=2)
    under_private = web_comment(services, "Under a private one.", name="Ria", email="ria@mail.example",
                                parent=private, minutes=3)
    under_held = web_comment(services, "Under a held one.", name="Ria", email="ria@mail.example", parent=held,
                             minutes=4)
    lone = web_comment(services, "A private top comment.", name="Lou", email="lou@mail.example", federated=False,
                       minutes=5)
    under_lone = web_comment(services, "Under it.", name="Ria", email="ria@mail.example", parent=lone, minutes=6)
    gus = f"https://blog.test/guests/{row(services, top).actor_id}"
    for cid in (under_private, under_held):
        note = (await client.get(f"/comments/{cid}", headers=AP)).json()
        assert (note["inReplyTo"], note["cc"]) == (f"https://blog.test/comments/{top}", [gus]), cid
    note = (await client.get(f"/comments/{under_lone}", headers=AP)).json()
    assert (note["inReplyTo"], note["cc"]) == (post, ["https://blog.test/users/blog"])
    for cid in (private, held, lone):  # what is not published has no replies collection either
        assert (await client.get(f"/comments/{cid}/replies", headers=AP)).status_code == 404, cid
    assert (await client.get(f"/comments/{top}/replies", headers=AP)).status_code == 200


async def test_fediverse_reply_to_a_web_comment_threads_under_it(
    services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient, post: str
) -> None:
    cid = web_comment(services, "A web comment.")
    masto = FakeInstance("mastodon.test", fediverse)
    alice = masto.actor("alice", "Alice A.")
    create, note = builders.reply(alice, f"https://blog.test/comments/{cid}", "<p>Replying to Gus.</p>",
                                  services.clock.now() + timedelta(minutes=1))
    assert (await masto.post(alice, INBOX, create)).status_code == 202
    with Session(services.engine) as s:
        reply = s.exec(select(Interaction).where(Interaction.ap_id == note["id"])).one()
    assert reply.parent_id == cid
    page = parse_html((await client.get("/posts/hello")).text)
    nested = [text_of(e) for e in page.iter(NS + "ol") if "replies" in classes(e)]
    assert any("Replying to Gus." in t for t in nested)
    assert await collection(client, f"/comments/{cid}/replies") == [note["id"]]
    assert await collection(client, "/posts/hello/replies") == [f"https://blog.test/comments/{cid}", note["id"]]


async def test_web_reply_to_a_fediverse_comment_is_delivered_to_its_author_only(
    services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient, post: str
) -> None:
    masto, other = FakeInstance("mastodon.test", fediverse), FakeInstance("follower.test", fediverse)
    alice, fran = masto.actor("alice", "Alice A."), other.actor("fran", "Fran F.")
    with session_scope(services.engine) as session:  # a follower of the blog: guests never write to them
        session.add(Follower(actor_ap_id=fran.id, inbox=fran.inbox, shared_inbox=fran.shared_inbox,
                             created_at=services.clock.now()))
    create, note = builders.reply(alice, post, "<p>What do you think?</p>", services.clock.now())
    assert (await masto.post(alice, INBOX, create)).status_code == 202
    with Session(services.engine) as s:
        parent = s.exec(select(Interaction).where(Interaction.ap_id == note["id"])).one()
    cid = web_comment(services, "I think it is right.", parent=parent.id, minutes=1)
    ref = f"guest:{row(services, cid).actor_id}"
    # the fake fetches the guest's actor document from the blog, as Mastodon would, and verifies with its key

    stats = await DeliveryRunner(services, concurrency=2).run_until_idle()
    assert stats.sent == 1 and other.received == []
    got = masto.received[0]
    assert got.path == "/inbox" and got.signature_ok, got.why
    assert f'keyId="{services.urls.local_actor(ref)}#main-key"' in got.headers["signature"]
    sent = got.json
    assert sent["type"] == "Create" and sent["actor"] == services.urls.local_actor(ref)
    assert sent["object"]["inReplyTo"] == note["id"] and sent["object"]["cc"] == [alice.id]
    assert sent["object"]["tag"] == [{"type": "Mention", "href": alice.id, "name": "@alice@mastodon.test"}]
    key = public_key_of(services, row(services, cid).actor_id or 0)
    assert proof_ok(sent, key) and proof_ok(sent["object"], key)

    # the admin deletes it: a Delete of the Note goes to the same inbox, signed by the guest
    assert queue.act(services, "delete", [cid]) == 1
    assert (await DeliveryRunner(services, concurrency=2).run_until_idle()).sent == 1
    deleted = masto.received[1]
    assert deleted.signature_ok, deleted.why
    assert deleted.json["type"] == "Delete" and deleted.json["object"]["id"] == f"https://blog.test/comments/{cid}"
    assert proof_ok(deleted.json, key) and other.received == []
    assert (await client.get(f"/comments/{cid}", headers=AP)).status_code == 410
    assert row(services, cid).raw is None


async def test_hiding_before_delivery_cancels_it(
    services: Services, fediverse: FakeFediverse, post: str
) -> None:
    masto = FakeInstance("mastodon.test", fediverse)
    alice = masto.actor("alice", "Alice A.")
    create, note = builders.reply(alice, post, "<p>Hello?</p>", services.clock.now())
    assert (await masto.post(alice, INBOX, create)).status_code == 202
    with Session(services.engine) as s:
        parent = s.exec(select(Interaction).where(Interaction.ap_id == note["id"])).one()
    cid = web_comment(services, "Spam spam spam.", parent=parent.id, minutes=1)
    assert queue.act(services, "spam", [cid]) == 1
    with Session(services.engine) as s:
        states = s.exec(select(Delivery.state)).all()
        types = s.exec(select(Activity.type).where(Activity.actor != "blog")).all()
    assert states == ["cancelled"] and types == ["Create"]  # never sent: no Delete needed
    assert (await DeliveryRunner(services, concurrency=2).run_until_idle()).sent == 0
    assert masto.received == []


async def test_demo_thread_becomes_quiet_activities(
    services: Services, client: httpx.AsyncClient
) -> None:
    with session_scope(services.engine) as session:
        demo = local_comments.load_demo(session, services)
        assert demo is not None
    path = f"/posts/{demo.slug}"
    with Session(services.engine) as s:
        items = s.exec(select(Interaction).where(Interaction.post_id == demo.id)).all()
        guests = s.exec(select(func.count()).select_from(Actor).where(Actor.is_local)).one()
    assert len(items) == 44 and all(i.ap_id == f"https://blog.test/comments/{i.id}" for i in items)
    assert count(services, Delivery) == 0 and guest_activities(services) == 44  # stored, never delivered
    assert 1 < guests < 44  # a commenter who wrote several comments is one guest
    total = (await client.get(f"{path}/replies", headers=AP)).json()["totalItems"]
    assert total == 44
    pb = next(i for i in items if i.kind == "pingback")
    pb_note = (await client.get(f"/comments/{pb.id}", headers=AP)).json()
    assert pb_note["content"].startswith("<p>Pingback: <a href=\"https://globalvoices.org/")
    gv = (await client.get(pb_note["attributedTo"], headers=AP)).json()
    assert (gv["type"], gv["name"], gv["url"]) == ("Service", "Global Voices", "https://globalvoices.org")
    reply = next(i for i in items if i.parent_id is not None)
    note = (await client.get(f"/comments/{reply.id}", headers=AP)).json()
    assert note["inReplyTo"] == f"https://blog.test/comments/{reply.parent_id}"
    assert proof_ok(note, public_key_of(services, reply.actor_id or 0))
    page = (await client.get(path)).text
    assert "Pingback:" in page and "43 comments" in page
    with session_scope(services.engine) as session:  # loading again adds nothing
        assert local_comments.load_demo(session, services) is None
    assert guest_activities(services) == 44


async def test_webmention_like_and_reply_are_the_sites_activities(
    services: Services, client: httpx.AsyncClient, post: str
) -> None:
    ids = {}
    evidence = json.dumps({"type": "linkback", "protocol": "webmention", "excerpt": "around the link"})
    with session_scope(services.engine) as session:
        pid = session.exec(select(Post.id).where(Post.slug == "hello")).one()
        assert pid is not None
        kinds: tuple[recorder.WebmentionKind, ...] = ("like", "reply")
        for kind in kinds:
            item = recorder.record_webmention(
                session, "approve-all", post_id=pid, source_url=f"https://indie.example/{kind}/1", kind=kind,
                author=recorder.Author("Ida Indie", url="https://indie.example/"), title=None,
                content_html="<p>Nice one.</p>", published_at=services.clock.now(), evidence=evidence)
            local_comments.publish(session, services, item)  # as the linkback verifier does
            ids[kind] = item.id
    like = (await client.get(f"/comments/{ids['like']}", headers=AP)).json()
    site = row(services, ids["like"]).actor_id
    assert row(services, ids["reply"]).actor_id == site  # one site actor per origin
    site_id = f"https://blog.test/guests/{site}"
    assert (like["type"], like["actor"], like["object"]) == ("Like", site_id, post)
    assert proof_ok(like, public_key_of(services, site or 0))
    reply = (await client.get(f"/comments/{ids['reply']}", headers=AP)).json()
    assert reply["type"] == "Note" and reply["attributedTo"] == site_id
    assert '<a href="https://indie.example/" rel="nofollow noopener">Ida Indie</a> replied' in reply["content"]
    assert reply["content"].endswith("<p>Nice one.</p>") and reply["url"] == "https://indie.example/reply/1"
    kept = json.loads(row(services, ids["reply"]).evidence or "{}")  # the verifier's record stays, the proof joins it
    assert kept["type"] == "linkback" and kept["integrity_proof"]["proof"] == reply["proof"]
    # a Like is not a reply: only the Note is listed
    assert await collection(client, "/posts/hello/replies") == [f"https://blog.test/comments/{ids['reply']}"]

    # the source is sent again with new words: the Note follows, signed again, and an Update is kept
    services.clock.advance(60)  # type: ignore[attr-defined]
    with session_scope(services.engine) as session:
        item = session.get(Interaction, ids["reply"])
        assert item is not None
        recorder.update_webmention(item, kind="reply", author=recorder.Author("Ida Indie", url="https://indie.example/"),
                                   title=None, content_html="<p>Nicer now.</p>", updated_at=services.clock.now())
        local_comments.refresh(session, services, item)
    again = (await client.get(f"/comments/{ids['reply']}", headers=AP)).json()
    assert again["content"].endswith("<p>Nicer now.</p>") and again["proof"] != reply["proof"]
    assert proof_ok(again, public_key_of(services, site or 0))
    with Session(services.engine) as s:
        updates = s.exec(select(Activity).where(Activity.type == "Update", Activity.actor == f"guest:{site}")).all()
    assert len(updates) == 1 and json.loads(updates[0].body)["object"] == again
    assert count(services, Delivery) == 0  # linkbacks go to no one


async def test_admin_queue_over_http_publishes_on_approve_and_blocks_by_the_authors_site(
    services: Services, client: httpx.AsyncClient, post: str, owner: str  # noqa: F811
) -> None:
    held = web_comment(services, "Held until the owner agrees.", url="https://gus.example/", mode="hold-all")
    other = web_comment(services, "Another one from Gus's site.", url="https://gus.example/about", mode="hold-all",
                        name="Gus Again", minutes=1)
    assert (await login(client, PASSWORD)).status_code == 303
    page = await client.get("/admin/moderation")
    assert "gus.example" in page.text and "Block gus.example" in page.text
    assert "Block blog.test" not in page.text  # the guest actor is ours: the author's site is named
    r = await client.post("/admin/moderation", data={"csrf": csrf_of(page.text), "id": str(held),
                                                     "action": "approve"})
    assert r.status_code == 303
    note = (await client.get(f"/comments/{held}", headers=AP)).json()
    assert note["content"] == "<p>Held until the owner agrees.</p>"
    assert await collection(client, "/posts/hello/replies") == [f"https://blog.test/comments/{held}"]

    page = await client.get("/admin/moderation")
    r = await client.post("/admin/moderation/author", data={"csrf": csrf_of(page.text), "id": str(other),
                                                            "what": "block-domain"})
    assert r.status_code == 303
    with Session(services.engine) as s:
        rules = s.exec(select(ModerationRule.target).where(ModerationRule.action == "block")).all()
    assert rules == ["gus.example"]
    assert row(services, held).status == "hidden" and row(services, other).status == "hidden"
    assert (await client.get(f"/comments/{held}", headers=AP)).status_code == 404
    assert await collection(client, "/posts/hello/replies") == []


async def test_a_deleted_posts_comments_are_gone_too(
    services: Services, client: httpx.AsyncClient, post: str, cli_env: dict[str, str]
) -> None:
    cid = web_comment(services, "On a post about to go.")
    create_id = row(services, cid).activity_ap_id or ""
    assert (await client.get(f"/comments/{cid}", headers=AP)).status_code == 200
    assert (await client.get(create_id, headers=AP)).status_code == 200
    assert main(["post", "delete", "hello"]) == 0
    r = await client.get(f"/comments/{cid}", headers=AP)
    assert r.status_code == 410 and r.json()["type"] == "Tombstone"
    assert (await client.get(create_id, headers=AP)).status_code == 404
