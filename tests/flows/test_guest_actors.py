"""Guest and site actors over HTTP: their documents, pages, WebFinger names, a Follow of one
rejected by the actor itself, the handle rule; and fediverse replies stored with the evidence of
their HTTP signature.

Fake Mastodon and GoToSocial servers (tests/fediverse) verify what we send with their own code,
fetching the guest's key from ``/guests/{n}`` over the fake network as a real server would.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from sqlmodel import Session, func, select

from fedblog.admin.auth import set_password
from fedblog.app import create_app
from fedblog.blog import interactions as recorder
from fedblog.blog.posts import parse_post_source
from fedblog.federation.guests import guest_actor, site_actor
from fedblog.federation.publishing import publish
from fedblog.jobs.runner import DeliveryRunner
from fedblog.services import Services, build_services
from fedblog.settings import Settings, SettingsError, load_settings
from fedblog.store.db import session_scope
from fedblog.store.tables import Activity, Actor, BlogState, Follower, InboxItem, Interaction
from fedblog.urls import guest_ref
from tests.admin_http import csrf_of, login
from tests.fediverse import builders, signing
from tests.fediverse.instance import FakeInstance, follow
from tests.fediverse.network import FakeFediverse
from tests.fediverse.secure import GoToSocial
from tests.flows.test_jsonld import _check as check_jsonld
from tests.helpers import find_all, parse_html

pytestmark = pytest.mark.anyio
AP = "application/activity+json"
BLOG = "https://blog.test"
POST = BLOG + "/posts/hello"
PASSWORD = "correct horse battery staple"
B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(moderation="approve-all")


def _b58decode(text: str) -> bytes:
    """base58btc, written here from its definition (not the blog's own decoder)."""
    number = 0
    for ch in text:
        number = number * 58 + B58.index(ch)
    body = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body


def _setup(services: Services) -> dict[str, int]:
    """A post; a guest with a visible and a held comment; a site with a visible pingback; a remote actor."""
    now = services.clock.now()
    ids: dict[str, int] = {}
    with session_scope(services.engine) as session:
        post = publish(session, services, parse_post_source("---\ntitle: Hello\nslug: hello\n---\nBody.\n")).post
        assert post.id is not None
        gus = guest_actor(session, services, name="Gus Guest", email="gus@mail.example",
                          website="https://gus.example/", now=now)
        site = site_actor(session, services, source_url="https://linker.example/a/b", name="Linker", now=now)
        assert gus.id is not None and site.id is not None
        shown = recorder.record_web_comment(
            session, "approve-all", author=recorder.Author("Gus Guest", url="https://gus.example/", actor_id=gus.id),
            post_id=post.id, parent_id=None, content_html="<p>Lovely <b>post</b></p>", published_at=now,
            federated=True)
        held = recorder.record_web_comment(
            session, "hold-all", author=recorder.Author("Gus Guest", url="https://gus.example/", actor_id=gus.id),
            post_id=post.id, parent_id=None, content_html="<p>not yet shown</p>", published_at=now)
        ping = recorder.record_pingback(session, "approve-all", post_id=post.id, source_url="https://linker.example/a/b",
                                        site_name="Linker", title="A linking page", published_at=now)
        ping.actor_id = site.id
        session.add(ping)
        remote = Actor(ap_id="https://mastodon.test/users/zed", host="mastodon.test", name="Zed",
                       preferred_username="zed", is_local=False)
        session.add(remote)
        session.flush()
        assert shown.id and held.id and ping.id and remote.id
        assert held.status == "pending" and shown.status == "visible"
        ids.update(post=post.id, guest=gus.id, site=site.id, shown=shown.id, held=held.id, ping=ping.id,
                   remote=remote.id)
    return ids


async def test_guest_and_site_documents_through_http(services: Services, client: httpx.AsyncClient) -> None:
    ids = _setup(services)
    n, s = ids["guest"], ids["site"]
    assert services.keys.keys_for(guest_ref(n)).rsa is None  # an Ed25519 key only, so far

    r = await client.get(f"/guests/{n}", headers={"Accept": AP})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(AP) and r.headers["vary"] == "Accept"
    doc = r.json()
    check_jsonld(doc)
    actor_id = f"{BLOG}/guests/{n}"
    assert doc["id"] == actor_id and doc["type"] == "Person"
    assert doc["preferredUsername"] == f"guest-{n}" and doc["name"] == "Gus Guest"
    assert doc["url"] == "https://gus.example/"
    assert "guest commenter" in doc["summary"] and "Test Blog" in doc["summary"]
    assert doc["inbox"] == doc["endpoints"]["sharedInbox"] == BLOG + "/inbox"
    assert doc["manuallyApprovesFollowers"] is False and doc["discoverable"] is False and doc["indexable"] is False
    assert doc["webfinger"] == f"guest-{n}@blog.test"
    assert "PRIVATE" not in r.text and "gus@mail.example" not in r.text  # the email is never shown
    # the RSA key was made for this first document, stored, and served the same ever after
    keys = services.keys.keys_for(guest_ref(n))
    assert keys.rsa is not None
    assert doc["publicKey"] == {"id": actor_id + "#main-key", "owner": actor_id, "publicKeyPem": keys.rsa_public_pem}
    again = (await client.get(f"/guests/{n}", headers={"Accept": "application/ld+json"})).json()
    assert again["publicKey"]["publicKeyPem"] == doc["publicKey"]["publicKeyPem"]
    # FEP-521a: the Multikey decodes to the stored Ed25519 key
    [method] = doc["assertionMethod"]
    assert method["id"] == actor_id + "#ed25519-key" and method["type"] == "Multikey"
    assert method["controller"] == actor_id
    decoded = _b58decode(method["publicKeyMultibase"].removeprefix("z"))
    raw = keys.ed25519.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert decoded == b"\xed\x01" + raw
    # the outbox it names answers
    box = await client.get(doc["outbox"].removeprefix(BLOG), headers={"Accept": AP})
    assert box.status_code == 200 and box.json()["type"] == "OrderedCollection" and box.json()["totalItems"] == 0
    check_jsonld(box.json())

    site = (await client.get(f"/guests/{s}", headers={"Accept": AP})).json()
    check_jsonld(site)
    assert site["type"] == "Service" and site["preferredUsername"] == f"site-{s}" and site["name"] == "Linker"
    assert site["url"] == "https://linker.example"
    assert "website that linked to posts on" in site["summary"] and "Test Blog" in site["summary"]
    assert site["publicKey"]["id"] == f"{BLOG}/guests/{s}#main-key"
    assert site["publicKey"]["publicKeyPem"] != doc["publicKey"]["publicKeyPem"]


async def test_the_guest_page_lists_its_visible_comments(services: Services, client: httpx.AsyncClient) -> None:
    ids = _setup(services)
    r = await client.get(f"/guests/{ids['guest']}", headers={"Accept": "text/html"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.headers["x-robots-tag"] == "noindex" and r.headers["vary"] == "Accept"
    root = parse_html(r.text)
    assert any(m.get("name") == "robots" and m.get("content") == "noindex" for m in find_all(root, "meta"))
    assert not find_all(root, "script")
    hrefs = {a.get("href"): a for a in find_all(root, "a")}
    assert f"{POST}#comment-{ids['shown']}" in hrefs
    assert f"{POST}#comment-{ids['held']}" not in hrefs and "not yet shown" not in r.text
    assert "Lovely post" in r.text and "<b>post</b>" not in r.text  # a text excerpt
    website = hrefs["https://gus.example/"]
    assert set((website.get("rel") or "").split()) >= {"nofollow", "ugc"}
    assert "Gus Guest" in r.text and f"@guest-{ids['guest']}@blog.test" in r.text

    site = await client.get(f"/guests/{ids['site']}")
    assert site.status_code == 200 and "A website that linked to posts on" in site.text
    assert f"{POST}#comment-{ids['ping']}" in site.text


async def test_only_a_shown_guest_with_a_web_url_is_linked(services: Services, client: httpx.AsyncClient) -> None:
    ids = _setup(services)
    now = services.clock.now()
    with session_scope(services.engine) as session:
        odd = guest_actor(session, services, name="Odd", email=None, website="javascript:alert(1)", now=now)
        held = guest_actor(session, services, name="Spammy", email=None, website="https://spam.example/", now=now)
        assert odd.id and held.id
        for who in (odd, held):
            recorder.record_web_comment(
                session, "approve-all" if who is odd else "hold-all",
                author=recorder.Author(who.name or "", url=who.url, actor_id=who.id), post_id=ids["post"],
                parent_id=None, content_html="<p>hello</p>", published_at=now, federated=True)
        numbers = {"odd": odd.id, "held": held.id}
    doc = (await client.get(f"/guests/{numbers['odd']}", headers={"Accept": AP})).json()
    assert doc["url"] == doc["id"] == f"{BLOG}/guests/{numbers['odd']}"  # not a javascript: URL
    page = await client.get(f"/guests/{numbers['odd']}")
    assert page.status_code == 200 and "javascript:" not in page.text
    for accept in ("text/html", AP):  # held only: nothing public, so not served at all
        spam = await client.get(f"/guests/{numbers['held']}", headers={"Accept": accept})
        assert spam.status_code == 404 and "spam.example" not in spam.text, accept


async def test_unknown_and_remote_ids_are_404(services: Services, client: httpx.AsyncClient) -> None:
    ids = _setup(services)
    for path in (f"/guests/{ids['remote']}", "/guests/9999", "/guests/abc", f"/guests/0{ids['guest']}",
                 f"/guests/{ids['remote']}/outbox", "/guests/9999/outbox"):
        for accept in (AP, "text/html"):
            r = await client.get(path, headers={"Accept": accept})
            assert r.status_code == 404, (path, accept, r.status_code)
    r = await client.get(f"/guests/{ids['remote']}", headers={"Accept": AP})
    assert "no guest or site actor" in r.text


async def test_webfinger_names_guests_and_sites(services: Services, client: httpx.AsyncClient) -> None:
    ids = _setup(services)
    n, s = ids["guest"], ids["site"]
    for resource, name, number in (
        (f"acct:guest-{n}@blog.test", f"guest-{n}", n), (f"guest-{n}@blog.test", f"guest-{n}", n),
        (f"acct:GUEST-{n}@Blog.Test.", f"guest-{n}", n), (f"{BLOG}/guests/{n}", f"guest-{n}", n),
        (f"acct:site-{s}@blog.test", f"site-{s}", s),
    ):
        r = await client.get("/.well-known/webfinger", params={"resource": resource})
        assert r.status_code == 200, resource
        assert r.headers["content-type"].startswith("application/jrd+json")
        doc = r.json()
        assert doc["subject"] == f"acct:{name}@blog.test", resource
        assert {"rel": "self", "type": AP, "href": f"{BLOG}/guests/{number}"} in doc["links"]
        assert doc["aliases"] == [f"{BLOG}/guests/{number}"]
        actor = (await client.get(f"/guests/{number}", headers={"Accept": AP})).json()
        assert actor["preferredUsername"] == name  # the name Mastodon checks back (acct:{preferredUsername}@host)
    for resource in (f"acct:site-{n}@blog.test", f"acct:guest-{s}@blog.test", "acct:guest-9999@blog.test",
                     f"acct:guest-{ids['remote']}@blog.test", f"acct:guest-{n}@elsewhere.test",
                     f"acct:guest-0{n}@blog.test", f"{BLOG}/guests/{ids['remote']}", f"{BLOG}/guests/{n}#main-key"):
        r = await client.get("/.well-known/webfinger", params={"resource": resource})
        assert r.status_code == 404, resource


async def test_on_a_split_domain_guests_are_named_on_the_handle_domain(
    settings: Settings, services: Services, fediverse: FakeFediverse, clock: Any
) -> None:
    ids = _setup(services)
    split = build_services(settings.replace(domain="example.test"), clock=clock, transport=fediverse.transport())
    fediverse.add("blog.test", create_app(split))
    try:
        async with fediverse.client(BLOG) as c:
            for host in ("example.test", "blog.test"):
                r = await c.get("/.well-known/webfinger", params={"resource": f"acct:guest-{ids['guest']}@{host}"})
                assert r.status_code == 200 and r.json()["subject"] == f"acct:guest-{ids['guest']}@example.test"
            doc = (await c.get(f"/guests/{ids['guest']}", headers={"Accept": AP})).json()
            assert doc["webfinger"] == f"guest-{ids['guest']}@example.test"
    finally:
        await split.aclose()


async def test_a_follow_of_a_guest_is_rejected_by_the_guest(
    services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient
) -> None:
    ids = _setup(services)
    masto = FakeInstance("mastodon.test", fediverse)
    alice = masto.actor("alice")
    assert (await masto.post(alice, BLOG + "/inbox", follow(alice, BLOG + "/users/blog"))).status_code == 202
    follows = {}
    for key in ("guest", "site"):
        follows[key] = follow(alice, f"{BLOG}/guests/{ids[key]}")
        r = await masto.post(alice, BLOG + "/inbox", follows[key])
        assert r.status_code == 202, r.text
    nobody = follow(alice, f"{BLOG}/guests/9999")
    assert (await masto.post(alice, BLOG + "/inbox", nobody)).status_code == 202

    await DeliveryRunner(services, concurrency=4).run_until_idle()

    assert all(r.signature_ok for r in masto.received), [r.why for r in masto.received]
    rejects = {r.json["actor"]: r for r in masto.received if r.json["type"] == "Reject"}
    assert set(rejects) == {f"{BLOG}/guests/{ids['guest']}", f"{BLOG}/guests/{ids['site']}"}
    for key in ("guest", "site"):
        actor_id = f"{BLOG}/guests/{ids[key]}"
        got = rejects[actor_id]
        assert f'keyId="{actor_id}#main-key"' in got.headers["signature"]  # signed by the guest itself
        assert got.json["object"] == follows[key]  # the Follow, embedded as received
        assert ("GET", actor_id) in fediverse.log  # the fake fetched the guest's key to verify
    assert [a["type"] for a in masto.activities()].count("Accept") == 1  # the blog's own follow
    with Session(services.engine) as session:
        assert session.exec(select(Follower.actor_ap_id)).all() == [alice.id]  # no guest follower stored
        item = session.exec(select(InboxItem).where(InboxItem.ap_id == nobody["id"])).one()
        assert item.state == "ignored" and "no such guest" in (item.error or "")
        senders = session.exec(select(Activity.actor).where(Activity.type == "Reject")).all()
        assert sorted(senders) == sorted([guest_ref(ids["guest"]), guest_ref(ids["site"])])

    # an Undo of the guest Follow leaves the blog's follower alone
    undo = {"@context": follows["guest"]["@context"], "id": alice.id + "#undo/" + uuid.uuid4().hex[:6],
            "type": "Undo", "actor": alice.id, "object": follows["guest"]}
    assert (await masto.post(alice, BLOG + "/inbox", undo)).status_code == 202
    with Session(services.engine) as session:
        assert session.exec(select(func.count()).select_from(Follower)).one() == 1


def test_the_blog_handle_may_not_look_like_a_guest(tmp_path: Any) -> None:
    base = {"FEDBLOG_BASE_URL": BLOG, "FEDBLOG_DATA_DIR": str(tmp_path), "FEDBLOG_SECRET_KEY": "x"}
    for handle in ("guest-1", "site-2", "Guest-x", "SITE-"):
        with pytest.raises(SettingsError, match="guest"):
            load_settings({**base, "FEDBLOG_HANDLE": handle})
    assert load_settings({**base, "FEDBLOG_HANDLE": "guests"}).handle == "guests"


async def test_the_admin_cannot_take_a_guest_handle(services: Services, client: httpx.AsyncClient) -> None:
    set_password(services, PASSWORD)
    assert (await login(client, PASSWORD, "/admin/profile")).status_code == 303
    csrf = csrf_of((await client.get("/admin/profile")).text)
    empty = {"avatar": ("", b"", "application/octet-stream")}
    for handle in ("guest-3", "Site-3"):
        r = await client.post("/admin/profile", files=empty,
                              data={"csrf": csrf, "name": "", "description": "", "author": "", "handle": handle})
        assert r.status_code == 400 and "is taken" in r.text, r.text
    with Session(services.engine) as session:
        assert session.exec(select(BlogState).where(BlogState.key == "profile.handle")).first() is None
    assert (await client.get("/.well-known/webfinger", params={"resource": "acct:blog@blog.test"})).status_code == 200


def _evidence(services: Services, note_id: str) -> dict[str, Any]:
    with Session(services.engine) as session:
        item = session.exec(select(Interaction).where(Interaction.ap_id == note_id)).one()
    assert item.evidence is not None
    return dict(json.loads(item.evidence))


async def test_replies_are_stored_with_their_signature_evidence(services: Services, fediverse: FakeFediverse) -> None:
    _setup(services)
    now = services.clock.now()
    masto = FakeInstance("mastodon.test", fediverse)
    alice = masto.actor("alice")
    gts = GoToSocial("gts.test", fediverse)
    bob = gts.actor("bob")

    create, note = builders.reply(alice, POST, "<p>from Mastodon</p>", now)
    assert (await masto.post(alice, BLOG + "/inbox", create)).status_code == 202
    assert _evidence(services, note["id"]) == {
        "type": "http-signature", "scheme": "draft-cavage", "algorithm": "rsa-sha256", "keyId": alice.key_id,
        "headers": ["(request-target)", "host", "date", "digest"], "signer": alice.id,
    }

    create, note = builders.reply(bob, POST, "<p>from GoToSocial</p>", now)
    assert (await gts.post(bob, BLOG + "/inbox", create)).status_code == 202
    assert _evidence(services, note["id"]) == {
        "type": "http-signature", "scheme": "draft-cavage", "algorithm": "hs2019", "keyId": bob.key_id,
        "headers": ["(request-target)", "host", "date", "digest"], "signer": bob.id,
    }

    # hs2019 with signed (created) and (expires): both times are kept
    created = int(now.timestamp()) - 5
    expires = int((now + timedelta(minutes=5)).timestamp())
    create, note = builders.reply(alice, POST, "<p>with created</p>", now)
    body = json.dumps(create).encode()
    headers = signing.sign("POST", BLOG + "/inbox", body, alice.key, alice.key_id, now=now, algorithm="hs2019",
                           created=created, expires=expires)
    async with httpx.AsyncClient(transport=fediverse.transport()) as c:
        assert (await c.post(BLOG + "/inbox", content=body, headers=headers)).status_code == 202
    evidence = _evidence(services, note["id"])
    assert evidence["algorithm"] == "hs2019" and evidence["keyId"] == alice.key_id
    assert evidence["headers"] == ["(request-target)", "(created)", "(expires)", "host", "date", "digest"]
    assert (evidence["created"], evidence["expires"]) == (created, expires)

    # a reply that does not verify is stored nowhere, with or without evidence
    create, note = builders.reply(alice, POST, "<p>forged</p>", now)
    r = await masto.post(alice, BLOG + "/inbox", create, key=bob.key)
    assert r.status_code == 401
    with Session(services.engine) as session:
        assert session.exec(select(Interaction).where(Interaction.ap_id == note["id"])).first() is None
