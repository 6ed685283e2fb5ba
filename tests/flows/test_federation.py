"""Federation core through HTTP: discovery, follow/accept, Create/Update/Delete, delivery policy.

A fake Mastodon at mastodon.test follows the blog; it verifies every delivery with its own
verifier (tests/fediverse/signing.py) after fetching our actor's key over the network.
"""

from __future__ import annotations

import json

import httpx
import pytest
from sqlmodel import Session, func, select

from fedblog.blog.posts import parse_post_source
from fedblog.federation.publishing import publish, unpublish
from fedblog.jobs.runner import DeliveryRunner
from fedblog.services import Services
from fedblog.store.db import session_scope
from fedblog.store.tables import Delivery, Follower, InboxItem
from tests.fediverse.instance import FakeInstance, follow
from tests.fediverse.network import FakeFediverse

pytestmark = pytest.mark.anyio
AP = "application/activity+json"


async def deliver(services: Services) -> None:
    await DeliveryRunner(services, concurrency=4).run_until_idle()


def _publish(services: Services, text: str) -> None:
    with session_scope(services.engine) as session:
        publish(session, services, parse_post_source(text))


async def _followed_by(services: Services, fediverse: FakeFediverse, host: str = "mastodon.test", user: str = "alice"):  # type: ignore[no-untyped-def]
    inst = FakeInstance(host, fediverse)
    alice = inst.actor(user)
    r = await inst.post(alice, "https://blog.test/users/blog/inbox", follow(alice, "https://blog.test/users/blog"))
    assert r.status_code == 202, r.text
    await deliver(services)
    return inst, alice


async def test_webfinger_and_actor(client: httpx.AsyncClient) -> None:
    for resource in ("acct:blog@blog.test", "acct%3Ablog%40blog.test", "blog@blog.test", "https://blog.test/users/blog"):
        r = await client.get(f"/.well-known/webfinger?resource={resource}")
        assert r.status_code == 200, resource
        assert r.headers["content-type"].startswith("application/jrd+json")
        assert r.headers["access-control-allow-origin"] == "*"
        self_link = [link for link in r.json()["links"] if link["rel"] == "self"][0]
        assert self_link == {"rel": "self", "type": "application/activity+json", "href": "https://blog.test/users/blog"}
        for link in r.json()["links"]:  # everything we advertise answers here (no template to a missing route)
            assert "href" in link, link
            assert (await client.get(link["href"].removeprefix("https://blog.test"))).status_code == 200, link
    assert (await client.get("/.well-known/webfinger?resource=acct:nobody@blog.test")).status_code == 404
    r = await client.get("/users/blog", headers={"Accept": AP})
    assert r.headers["content-type"].startswith(AP) and r.headers["vary"] == "Accept"
    actor = r.json()
    assert actor["id"] == "https://blog.test/users/blog"
    for field in ("preferredUsername", "name", "summary", "url", "icon", "image", "inbox", "outbox", "followers",
                  "following", "featured", "endpoints", "publicKey", "manuallyApprovesFollowers", "discoverable",
                  "indexable", "published", "attributionDomains", "assertionMethod"):
        assert field in actor, field
    assert actor["publicKey"]["owner"] == actor["id"]
    assert actor["publicKey"]["publicKeyPem"].startswith("-----BEGIN PUBLIC KEY-----")
    assert "PRIVATE" not in r.text
    assert actor["assertionMethod"][0]["publicKeyMultibase"].startswith("z6Mk")
    assert actor["endpoints"]["sharedInbox"] == "https://blog.test/inbox"
    assert actor["attributionDomains"] == ["blog.test"]
    html = await client.get("/users/blog", headers={"Accept": "text/html"})
    assert html.headers["content-type"].startswith("text/html") and "@blog@blog.test" in html.text


async def test_host_meta_and_nodeinfo(client: httpx.AsyncClient) -> None:
    r = await client.get("/.well-known/host-meta")
    assert 'template="https://blog.test/.well-known/webfinger?resource={uri}"' in r.text
    assert (await client.get("/.well-known/host-meta.json")).json()["links"][0]["rel"] == "lrdd"
    links = (await client.get("/.well-known/nodeinfo")).json()["links"]
    for link in links:
        doc = (await client.get(link["href"].removeprefix("https://blog.test"))).json()
        assert doc["software"]["name"] == "fedblog" and doc["protocols"] == ["activitypub"]
        assert doc["usage"]["users"]["total"] == 1 and "localPosts" in doc["usage"]


async def test_follow_is_accepted_with_the_follow_embedded(
    services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient
) -> None:
    inst, alice = await _followed_by(services, fediverse)
    accepts = inst.activities("Accept")
    assert len(accepts) == 1
    assert all(r.signature_ok for r in inst.received), [r.why for r in inst.received]
    accept = accepts[0]
    assert accept["actor"] == "https://blog.test/users/blog"
    assert accept["object"]["type"] == "Follow" and accept["object"]["actor"] == alice.id
    followers = (await client.get("/users/blog/followers?page=1", headers={"Accept": AP})).json()
    assert followers["orderedItems"] == [alice.id] and followers["totalItems"] == 1


async def test_duplicate_follow_is_idempotent(services: Services, fediverse: FakeFediverse) -> None:
    inst = FakeInstance("mastodon.test", fediverse)
    alice = inst.actor("alice")
    activity = follow(alice, "https://blog.test/users/blog")
    for _ in range(2):
        assert (await inst.post(alice, "https://blog.test/users/blog/inbox", activity)).status_code == 202
    await deliver(services)
    with Session(services.engine) as s:
        assert s.exec(select(func.count()).select_from(Follower)).one() == 1
        assert s.exec(select(func.count()).select_from(InboxItem)).one() == 1
    assert len(inst.activities("Accept")) == 1


async def test_publish_edit_delete_reach_followers(
    services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient
) -> None:
    inst, alice = await _followed_by(services, fediverse)
    _publish(services, "---\ntitle: Hello fediverse\nslug: hello\ntags: [intro]\n---\nFirst *post*.\n")
    await deliver(services)
    creates = inst.activities("Create")
    assert len(creates) == 1
    article = creates[0]["object"]
    assert article["type"] == "Article" and article["id"] == "https://blog.test/posts/hello"
    assert article["name"] == "Hello fediverse" and "<em>post</em>" in article["content"]
    assert creates[0]["to"] == ["https://www.w3.org/ns/activitystreams#Public"]
    assert creates[0]["cc"] == ["https://blog.test/users/blog/followers"]
    assert article["tag"] == [{"type": "Hashtag", "name": "#intro", "href": "https://blog.test/tags/intro"}]
    # the same URL serves the Article to fediverse servers and HTML to browsers
    r = await client.get("/posts/hello", headers={"Accept": 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'})
    assert r.json()["id"] == article["id"] and r.headers["vary"] == "Accept"
    page = await client.get("/posts/hello", headers={"Accept": "text/html"})
    assert (
        'rel="alternate"' in page.headers["link"]
        and '<link rel="alternate" type="application/activity+json"' in page.text
    )
    # edit: Update with a newer `updated`
    services.clock.advance(3600)  # type: ignore[attr-defined]
    _publish(services, "---\ntitle: Hello fediverse\nslug: hello\ntags: [intro]\n---\nEdited.\n")
    await deliver(services)
    updates = inst.activities("Update")
    assert len(updates) == 1 and "Edited." in updates[0]["object"]["content"]
    assert updates[0]["object"]["updated"] > updates[0]["object"]["published"]
    # delete: Delete(Tombstone), and the URL answers 410 with a Tombstone
    with session_scope(services.engine) as session:
        unpublish(session, services, "hello")
    await deliver(services)
    deletes = inst.activities("Delete")
    assert len(deletes) == 1 and deletes[0]["object"]["type"] == "Tombstone"
    assert deletes[0]["object"]["id"] == "https://blog.test/posts/hello"
    gone = await client.get("/posts/hello", headers={"Accept": AP})
    assert gone.status_code == 410 and gone.json()["type"] == "Tombstone"
    assert all(r.signature_ok for r in inst.received)


async def test_undo_follow_stops_deliveries(services: Services, fediverse: FakeFediverse) -> None:
    inst, alice = await _followed_by(services, fediverse)
    f = inst.activities("Accept")[0]["object"]
    undo = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f["id"] + "/undo",
        "type": "Undo",
        "actor": alice.id,
        "object": f,
    }
    assert (await inst.post(alice, "https://blog.test/inbox", undo)).status_code == 202
    _publish(services, "---\ntitle: After undo\n---\nNobody gets this.\n")
    await deliver(services)
    assert inst.activities("Create") == []


async def test_shared_inbox_gets_one_copy(services: Services, fediverse: FakeFediverse) -> None:
    inst = FakeInstance("mastodon.test", fediverse)
    for name in ("alice", "bob", "carol"):
        a = inst.actor(name)
        assert (
            await inst.post(a, "https://blog.test/users/blog/inbox", follow(a, "https://blog.test/users/blog"))
        ).status_code == 202
    await deliver(services)
    _publish(services, "---\ntitle: One copy\n---\nText.\n")
    await deliver(services)
    creates = [r for r in inst.received if r.json["type"] == "Create"]
    assert len(creates) == 1 and creates[0].path == "/inbox"


async def test_gone_inbox_removes_follower_and_retry_after_is_honoured(
    services: Services, fediverse: FakeFediverse
) -> None:
    inst, alice = await _followed_by(services, fediverse)
    inst.respond_with(503, {"Retry-After": "600"})
    _publish(services, "---\ntitle: Retry me\n---\nText.\n")
    await deliver(services)
    assert len(inst.received) == 2  # the Accept, then the refused Create
    services.clock.advance(599)  # type: ignore[attr-defined]
    await deliver(services)
    assert len(inst.received) == 2  # not yet: Retry-After was 600 s
    services.clock.advance(2)  # type: ignore[attr-defined]
    await deliver(services)
    assert len(inst.activities("Create")) == 2 and inst.received[-1].signature_ok
    with Session(services.engine) as s:
        assert s.exec(select(Delivery).where(Delivery.state == "pending")).all() == []
    # now the inbox is gone: the follower is removed
    inst.respond_with(410)
    _publish(services, "---\ntitle: Gone\n---\nText.\n")
    await deliver(services)
    with Session(services.engine) as s:
        assert s.exec(select(Follower)).all() == []
        gave_up = s.exec(select(Delivery).where(Delivery.state == "gave_up")).all()
        assert len(gave_up) == 1 and gave_up[0].last_status == 410


async def test_permanent_4xx_is_not_retried(services: Services, fediverse: FakeFediverse) -> None:
    inst, alice = await _followed_by(services, fediverse)
    inst.respond_with(403)
    _publish(services, "---\ntitle: Forbidden\n---\nText.\n")
    await deliver(services)
    services.clock.advance(7 * 86400)  # type: ignore[attr-defined]
    await deliver(services)
    assert len(inst.received) == 2
    with Session(services.engine) as s:
        row = s.exec(select(Delivery).where(Delivery.last_status == 403)).one()
        assert row.state == "gave_up" and row.last_error == "HTTP 403"
        assert s.exec(select(Follower)).one().actor_ap_id == alice.id  # a 403 does not remove the follower


async def test_inbox_refusals_store_nothing(
    services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient
) -> None:
    inst = FakeInstance("mastodon.test", fediverse)
    alice, mallory = inst.actor("alice"), inst.actor("mallory")
    act = follow(alice, "https://blog.test/users/blog")
    body = json.dumps(act).encode()
    # signed by mallory, actor alice
    r = await inst.post(alice, "https://blog.test/users/blog/inbox", act, key=mallory.key, key_id=mallory.key_id)
    assert r.status_code == 401 and "actor" in r.text
    # unsigned
    r = await client.post("/users/blog/inbox", content=body, headers={"Content-Type": AP})
    assert r.status_code == 401 and "missing_signature" in r.text
    # too large
    r = await client.post("/users/blog/inbox", content=b"{" + b" " * 1_100_000 + b"}", headers={"Content-Type": AP})
    assert r.status_code == 413
    # too deep
    deep: dict = {"id": inst.new_id(), "type": "Note", "actor": alice.id}
    cur = deep
    for _ in range(40):
        cur["x"] = {}
        cur = cur["x"]
    r = await inst.post(alice, "https://blog.test/inbox", deep)
    assert r.status_code == 400 and "deeper" in r.text
    # not JSON
    r = await inst.post(alice, "https://blog.test/inbox", {}, body=b"not json")
    assert r.status_code == 400
    with Session(services.engine) as s:
        assert s.exec(select(func.count()).select_from(InboxItem)).one() == 0
        assert s.exec(select(func.count()).select_from(Follower)).one() == 0


async def test_outbox_and_collections(services: Services, client: httpx.AsyncClient) -> None:
    for i in range(3):
        _publish(services, f"---\ntitle: Post {i}\ndate: 2026-01-0{i + 1}\n---\nBody {i}.\n")
    outbox = (await client.get("/users/blog/outbox", headers={"Accept": AP})).json()
    assert outbox["type"] == "OrderedCollection" and outbox["totalItems"] == 3
    page = (await client.get(outbox["first"].removeprefix("https://blog.test"), headers={"Accept": AP})).json()
    assert [a["object"]["name"] for a in page["orderedItems"]] == ["Post 2", "Post 1", "Post 0"]
    for path in ("following", "featured", "followers"):
        doc = (await client.get(f"/users/blog/{path}", headers={"Accept": AP})).json()
        assert doc["totalItems"] == 0
