"""How we fetch and trust remote keys, through the real inbox, over the fake fediverse.

GoToSocial (key-id URL answering an actor stub, every GET signed) and Mastodon in secure mode
follow, reply and like end to end; hosts compare case- and IDNA-insensitively; key fetches that
redirect off the signer's origin or to other schemes are refused with a reason; a stalled key
server gets 503 + Retry-After (one fetch for many POSTs); a rotated key is refetched once.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlmodel import Session, col, func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from fedblog.blog.posts import parse_post_source
from fedblog.clock import FrozenClock
from fedblog.federation.publishing import publish
from fedblog.jobs.runner import DeliveryRunner
from fedblog.services import Services
from fedblog.settings import Settings
from fedblog.store.db import session_scope
from fedblog.store.tables import Actor, Follower, InboxItem, Interaction
from tests.fediverse import builders, signing
from tests.fediverse.instance import AS, FakeActor, FakeInstance, follow
from tests.fediverse.network import FakeFediverse
from tests.fediverse.secure import GoToSocial, SecureMastodon

pytestmark = pytest.mark.anyio
BLOG = "https://blog.test/users/blog"
INBOX = "https://blog.test/users/blog/inbox"
POST = "https://blog.test/posts/hello"
AP = "application/activity+json"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # 3 s, not 10: the stalled-server test waits for it (1 s proved too tight on a busy machine)
    return settings.replace(moderation="approve-all", fetch_deadline=3)


@pytest.fixture
def post(services: Services) -> str:
    with session_scope(services.engine) as session:
        publish(session, services, parse_post_source("---\ntitle: Hello\nslug: hello\n---\nA post to reply to.\n"))
    return POST


def _count(services: Services, table: Any) -> int:
    with Session(services.engine) as s:
        return s.exec(select(func.count()).select_from(table)).one()


async def _deliver(services: Services) -> None:
    await DeliveryRunner(services, concurrency=4).run_until_idle()


async def _signed_post(fediverse: FakeFediverse, activity: dict[str, Any], key: Any, key_id: str,
                       algorithm: str = "rsa-sha256") -> httpx.Response:
    body = json.dumps(activity).encode()
    headers = signing.sign("POST", INBOX, body, key, key_id, now=fediverse.clock.now(), algorithm=algorithm)
    async with fediverse.client("https://blog.test") as c:
        return await c.post(INBOX, content=body, headers=headers)


# -- A. GoToSocial and secure-mode Mastodon --------------------------------------------------------
@pytest.mark.parametrize("kind", ["gotosocial", "secure-mastodon"])
async def test_signed_fetch_servers_follow_reply_and_like(
    services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient, post: str, kind: str
) -> None:
    """Every GET to these servers must be signed: their key, actor and objects answer 401 otherwise."""
    inst: GoToSocial | SecureMastodon = (
        GoToSocial("gts.test", fediverse) if kind == "gotosocial" else SecureMastodon("secure.test", fediverse)
    )
    alice = inst.actor("alice", "Alice A.")
    unsigned = httpx.AsyncClient(transport=fediverse.transport())
    async with unsigned:  # the fake really is strict
        assert (await unsigned.get(alice.key_id.split("#")[0], headers={"Accept": AP})).status_code == 401
    inst.gets.clear()

    r = await inst.post(alice, INBOX, follow(alice, BLOG))
    assert r.status_code == 202, r.text
    await _deliver(services)
    accepts = inst.activities("Accept")
    assert len(accepts) == 1 and accepts[0]["object"]["actor"] == alice.id
    with Session(services.engine) as s:
        assert s.exec(select(Follower)).one().actor_ap_id == alice.id

    create, note = builders.reply(alice, post, "<p>Signed fetches all the way down.</p>", services.clock.now(),
                                  flavour="gotosocial" if kind == "gotosocial" else "mastodon")
    assert (await inst.post(alice, INBOX, create)).status_code == 202
    page = (await client.get("/posts/hello")).text
    assert "Signed fetches all the way down." in page and "Alice A." in page

    assert (await inst.post(alice, INBOX, builders.like(alice, post))).status_code == 202
    assert "1 like" in (await client.get("/posts/hello")).text

    assert inst.gets and inst.unsigned_gets() == []  # we fetched, always signed, always verified
    assert {status for _, _, status in inst.gets} == {200}
    if kind == "gotosocial":  # the stub, then the full actor at its owner
        paths = [path for path, _, _ in inst.gets]
        assert paths[:2] == ["/users/alice/main-key", "/users/alice"]


async def test_key_stub_on_another_host_naming_someone_else_is_refused(
    services: Services, fediverse: FakeFediverse, post: str
) -> None:
    gts = GoToSocial("gts.test", fediverse)
    alice = gts.actor("alice")
    mallory_key = signing.new_key()
    stub_url = "https://evil.test/users/mallory/main-key"

    async def stub(request: Request) -> Response:  # claims to be alice's key, served by evil.test
        return JSONResponse({"@context": AS, "id": alice.id, "type": "Person", "preferredUsername": "alice",
                             "publicKey": {"id": stub_url, "owner": alice.id,
                                           "publicKeyPem": signing.public_pem(mallory_key)}},
                            media_type=AP)

    fediverse.add("evil.test", Starlette(routes=[Route("/users/mallory/main-key", stub)]))
    r = await _signed_post(fediverse, builders.like(alice, post), mallory_key, stub_url, "hs2019")
    assert r.status_code == 401, r.text
    assert "evil.test" in r.text
    assert _count(services, InboxItem) == 0 and _count(services, Interaction) == 0
    assert not [u for m, u in fediverse.log if u.startswith("https://gts.test/")]  # no fetch on its word


async def test_key_stub_owner_must_be_the_activitys_actor(
    services: Services, fediverse: FakeFediverse, post: str
) -> None:
    gts = GoToSocial("gts.test", fediverse)
    alice, bob = gts.actor("alice"), gts.actor("bob")
    r = await _signed_post(fediverse, builders.like(alice, post), bob.key, bob.key_id, "hs2019")
    assert r.status_code == 401 and f"signed by {bob.id}" in r.text, r.text
    # the refusal depended on that request only: bob's own key is not refused for it
    assert (await gts.post(bob, INBOX, builders.like(bob, post))).status_code == 202
    assert _count(services, InboxItem) == 1


# -- B. hosts compare after normalisation ---------------------------------------------------------
@pytest.mark.parametrize(("actor_host", "key_host", "route_host"), [
    ("GOOD.test", "good.test", "good.test"),
    ("bücher.test", "xn--bcher-kva.test", "bücher.test"),
])
async def test_actor_and_key_on_two_spellings_of_one_host_are_accepted(
    services: Services, fediverse: FakeFediverse, actor_host: str, key_host: str, route_host: str
) -> None:
    inst = FakeInstance(key_host, fediverse)
    fediverse.add(route_host, inst.app)  # the network routes by httpx's (Unicode, lower-case) host
    alice = inst.actor("alice")
    actor = f"https://{actor_host}/users/alice"  # the activity spells the host another way
    activity = {"@context": AS, "id": f"{actor}#follows/{uuid.uuid4().hex[:8]}", "type": "Follow",
                "actor": actor, "object": BLOG}
    r = await _signed_post(fediverse, activity, alice.key, alice.key_id)
    assert r.status_code == 202, r.text
    await _deliver(services)
    assert len(inst.activities("Accept")) == 1
    with Session(services.engine) as s:
        assert s.exec(select(Follower)).one().actor_ap_id == alice.id
    # normalising the host does not make another host the same: good.test.evil.test is not good.test
    other = "https://good.test.evil.test/users/alice"
    r = await _signed_post(fediverse, follow(alice, BLOG) | {"actor": other, "id": other + "#follows/1"},
                           alice.key, alice.key_id)
    assert r.status_code == 401 and "signed by" in r.text


# -- C. key fetch rules ---------------------------------------------------------------------------
def _redirecting_key_host(fediverse: FakeFediverse, location: str) -> tuple[FakeActor, str]:
    """keys.test/users/alice redirects to ``location``; other.test serves a key document claiming
    to be keys.test's alice (what an open redirect would let anyone do)."""
    alice = FakeActor("keys.test", "alice", "Alice")

    async def redirect(request: Request) -> Response:
        return RedirectResponse(location, status_code=302)

    async def impostor(request: Request) -> Response:
        return JSONResponse(alice.document(), media_type=AP)

    fediverse.add("keys.test", Starlette(routes=[Route("/users/alice", redirect)]))
    fediverse.add("other.test", Starlette(routes=[Route("/alice", impostor)]))
    return alice, alice.key_id


@pytest.mark.parametrize(("location", "reason"), [
    ("data:application/activity+json,{}", "not a URL we follow"),
    ("ftp://keys.test/users/alice", "scheme 'ftp'"),
    ("https://other.test/alice", "other.test"),
    ("http://[::1", "invalid"),
])
async def test_key_fetch_redirects_off_origin_or_scheme_are_refused(
    services: Services, fediverse: FakeFediverse, location: str, reason: str
) -> None:
    alice, key_id = _redirecting_key_host(fediverse, location)
    r = await _signed_post(fediverse, follow(alice, BLOG), alice.key, key_id)
    assert r.status_code == 401, r.text
    assert reason in r.text
    assert _count(services, InboxItem) == 0 and _count(services, Follower) == 0


async def test_a_key_id_that_is_not_a_url_is_refused_with_a_reason(
    services: Services, fediverse: FakeFediverse
) -> None:
    """An unparsable key id (here an unclosed IPv6 literal) used to escape as a 500."""
    alice = FakeActor("keys.test", "alice", "Alice")
    r = await _signed_post(fediverse, follow(alice, BLOG), alice.key, "http://[::1")
    assert r.status_code == 401 and "refused" in r.text.lower(), r.text
    assert _count(services, InboxItem) == 0


async def test_stalled_key_server_gets_503_and_one_fetch_then_the_retry_is_accepted(
    services: Services, fediverse: FakeFediverse, clock: FrozenClock, post: str
) -> None:
    inst = FakeInstance("slow.test", fediverse)
    alice = inst.actor("alice")
    recovered = asyncio.Event()
    key_gets = 0
    answer = inst._actor

    async def slow_actor(request: Request) -> Response:
        nonlocal key_gets
        key_gets += 1
        await recovered.wait()  # stalls past our fetch deadline until the test lets it recover
        return await answer(request)

    inst.app.router.routes.insert(0, Route("/users/{name}", slow_actor))
    likes = [builders.like(alice, post) for _ in range(50)]
    answers = await asyncio.gather(*(inst.post(alice, INBOX, like) for like in likes))
    assert [r.status_code for r in answers] == [503] * 50, {r.text for r in answers}
    assert all(r.headers.get("retry-after", "").isdigit() for r in answers)
    assert key_gets == 1
    assert _count(services, InboxItem) == 0

    recovered.set()
    clock.advance(int(answers[0].headers["retry-after"]))  # the sender retries when told to
    r = await inst.post(alice, INBOX, likes[0])
    assert r.status_code == 202, r.text
    assert key_gets >= 2 and _count(services, InboxItem) == 1


async def test_rotated_key_is_refetched_once_per_five_minutes(
    services: Services, fediverse: FakeFediverse, clock: FrozenClock, post: str
) -> None:
    inst = FakeInstance("mastodon.test", fediverse)
    alice = inst.actor("alice")
    assert (await inst.post(alice, INBOX, follow(alice, BLOG))).status_code == 202

    alice.key = signing.new_key()  # rotated: the actor document now carries the new key
    r = await inst.post(alice, INBOX, builders.like(alice, post))
    assert r.status_code == 202, r.text

    alice.key = signing.new_key()  # rotated again at once: no second refetch within 5 minutes
    like = builders.like(alice, post)
    r = await inst.post(alice, INBOX, like)
    assert r.status_code == 401, r.text
    clock.advance(301)
    r = await inst.post(alice, INBOX, like)
    assert r.status_code == 202, r.text


async def test_the_gotosocial_fake_signs_its_gets_hs2019_too(fediverse: FakeFediverse, services: Services,
                                                             post: str) -> None:
    """GoToSocial signs every request with ``algorithm="hs2019"`` (its docs,
    federation/http_signatures.md), GETs as well as POSTs; our post answers such a signed GET."""
    seen: list[str] = []

    async def record(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(dict(scope["headers"]).get(b"signature", b"").decode())
        await Response("{}", media_type=AP)(scope, receive, send)

    fediverse.add("rec.test", record)
    gts = GoToSocial("gts.test", fediverse)
    bob = gts.actor("bob")
    await gts.get_signed(bob, "https://rec.test/x")
    await gts.post(bob, "https://rec.test/inbox", {"id": "https://gts.test/x", "type": "Like"})
    assert len(seen) == 2 and all('algorithm="hs2019"' in s for s in seen), seen
    r = await gts.get_signed(bob, POST)
    assert r.status_code == 200 and r.json()["id"] == POST


async def test_a_burst_from_a_new_actor_costs_one_actor_and_one_webfinger_lookup(
    services: Services, fediverse: FakeFediverse, post: str
) -> None:
    """40 likes at once from an actor never seen before: the key, the actor document and the
    WebFinger confirmation of its handle are each fetched once, not once per activity."""
    inst = FakeInstance("burst.test", fediverse)
    alice = inst.actor("alice")
    counts = {"actor": 0, "webfinger": 0}
    actor_answer, webfinger_answer = inst._actor, inst._webfinger

    async def counted_actor(request: Request) -> Response:
        counts["actor"] += 1
        await asyncio.sleep(0.05)  # a real server takes a moment: the burst arrives meanwhile
        return await actor_answer(request)

    async def counted_webfinger(request: Request) -> Response:
        counts["webfinger"] += 1
        await asyncio.sleep(0.05)
        return await webfinger_answer(request)

    inst.app.router.routes.insert(0, Route("/users/{name}", counted_actor))
    inst.app.router.routes.insert(0, Route("/.well-known/webfinger", counted_webfinger))
    likes = [builders.like(alice, post) for _ in range(40)]
    answers = await asyncio.gather(*(inst.post(alice, INBOX, like) for like in likes))
    assert [r.status_code for r in answers] == [202] * 40, {r.text for r in answers}
    assert counts == {"actor": 1, "webfinger": 1}
    with Session(services.engine) as s:
        handles = s.exec(select(Interaction.author_handle).where(Interaction.kind == "like")).all()
    assert handles == ["alice@burst.test"]  # one actor liking one post is one like, however often sent


async def test_a_burst_from_many_new_actors_of_one_server_is_fetched_a_few_at_a_time_and_stored_once(
    services: Services, fediverse: FakeFediverse, post: str
) -> None:
    """Replies at once from 12 actors of one server, none seen before: each actor's document and
    WebFinger answer are fetched once, never more than the per-host limit at a time (8,
    net/hostgate.py), and each actor is stored once, with its confirmed handle."""
    inst = FakeInstance("crowd.test", fediverse)
    people = [inst.actor(f"user{i}") for i in range(12)]
    counts = {"actor": 0, "webfinger": 0}
    in_flight = {"now": 0, "peak": 0}
    actor_answer, webfinger_answer = inst._actor, inst._webfinger

    async def slow(answer: Any, kind: str, request: Request) -> Response:
        counts[kind] += 1
        in_flight["now"] += 1
        in_flight["peak"] = max(in_flight["peak"], in_flight["now"])
        try:
            await asyncio.sleep(0.05)  # the other requests arrive meanwhile
            return await answer(request)  # type: ignore[no-any-return]
        finally:
            in_flight["now"] -= 1

    async def actor(request: Request) -> Response:
        return await slow(actor_answer, "actor", request)

    async def webfinger(request: Request) -> Response:
        return await slow(webfinger_answer, "webfinger", request)

    inst.app.router.routes.insert(0, Route("/users/{name}", actor))
    inst.app.router.routes.insert(0, Route("/.well-known/webfinger", webfinger))
    writes: list[str] = []  # the statements that write the actor table

    def watch(conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        if statement.lstrip().upper().startswith(("INSERT INTO ACTOR", "UPDATE ACTOR")):
            writes.append(statement.split()[0].upper())

    replies = [(person, builders.reply(person, post, f"<p>Reply {i}</p>", services.clock.now())[0])
               for person in people for i in range(3)]
    event.listen(services.engine, "before_cursor_execute", watch)
    try:
        answers = await asyncio.gather(*(inst.post(person, INBOX, create) for person, create in replies))
    finally:
        event.remove(services.engine, "before_cursor_execute", watch)
    assert [a.status_code for a in answers] == [202] * len(replies), {a.text for a in answers}
    assert counts == {"actor": 12, "webfinger": 12}
    assert 1 < in_flight["peak"] <= 8, in_flight
    # each new actor written once, with its handle, in transactions shared by the actors of a turn
    batches = services.batches["actors.store"]
    assert batches.items == 12 and batches.batches < 12, (batches.items, batches.batches)
    # one INSERT per actor (PostgreSQL: one per batch, SQLAlchemy's insertmanyvalues) and nothing else;
    # before, each actor was inserted, read back and updated with its handle
    assert set(writes) == {"INSERT"} and batches.batches <= len(writes) <= 12, writes
    with Session(services.engine) as s:
        handles = sorted(str(h) for h in s.exec(select(Interaction.author_handle).where(Interaction.kind == "reply")))
        actors = s.exec(select(func.count()).select_from(Actor).where(col(Actor.host) == "crowd.test")).one()
    assert handles == sorted(f"user{i}@crowd.test" for i in range(12) for _ in range(3))
    assert actors == 12


async def test_a_key_refetched_while_webfinger_is_down_keeps_the_confirmed_handle(
    services: Services, fediverse: FakeFediverse, post: str
) -> None:
    """After a key rotation the key's owner is fetched and stored again, with its handle confirmed
    again by WebFinger; if WebFinger fails this time, the handle confirmed before stays."""
    inst = FakeInstance("mastodon.test", fediverse)
    alice = inst.actor("alice")
    assert (await inst.post(alice, INBOX, builders.like(alice, post))).status_code == 202

    async def down(request: Request) -> Response:
        return Response("maintenance", status_code=503)

    inst.app.router.routes.insert(0, Route("/.well-known/webfinger", down))
    alice.key = signing.new_key()  # rotated: the next activity makes us refetch the key
    r = await inst.post(alice, INBOX, builders.like(alice, "https://blog.test/posts/hello"))
    assert r.status_code == 202, r.text
    with Session(services.engine) as s:
        row = s.exec(select(Actor).where(Actor.ap_id == alice.id)).one()
        handles = set(s.exec(select(Interaction.author_handle).where(Interaction.kind == "like")).all())
    assert row.handle == "alice@mastodon.test" and row.public_key_pem == signing.public_pem(alice.key)
    assert handles == {"alice@mastodon.test"}


async def test_an_actor_whose_webfinger_fails_is_asked_once_not_per_activity(
    services: Services, fediverse: FakeFediverse, post: str
) -> None:
    """An actor whose server answers no WebFinger is stored without a handle, and its next
    activities use that (no WebFinger GET per activity; it is asked again when the memory expires)."""
    inst = FakeInstance("nofinger.test", fediverse)
    carol = inst.actor("carol")
    asked = [0]

    async def missing(request: Request) -> Response:
        asked[0] += 1
        return Response(status_code=404)

    inst.app.router.routes.insert(0, Route("/.well-known/webfinger", missing))
    for i in range(3):
        create, _ = builders.reply(carol, post, f"<p>reply {i}</p>", services.clock.now())
        r = await inst.post(carol, INBOX, create)
        assert r.status_code == 202, r.text
    assert asked[0] == 1
    with Session(services.engine) as s:
        rows = s.exec(select(Actor).where(Actor.ap_id == carol.id)).all()
        replies = s.exec(select(func.count()).select_from(Interaction).where(Interaction.actor_id == rows[0].id)).one()
    assert len(rows) == 1 and rows[0].handle is None and replies == 3


async def test_a_delete_from_an_actor_we_never_knew_is_accepted_each_time_and_stores_nothing(
    services: Services, fediverse: FakeFediverse
) -> None:
    """Mastodon sends ``Delete`` of an account to every server it ever talked to, signed with the
    deleted account's key, whose document now answers 410. We never knew the actor: nothing to do,
    202 (not a 401 the sender would retry), the second copy too, and nothing is stored."""
    inst = FakeInstance("gone.test", fediverse)
    dave = inst.actor("dave")
    inst.gone = True
    for _ in range(2):
        delete = {"@context": AS, "id": f"{dave.id}#delete-{uuid.uuid4().hex[:6]}", "type": "Delete",
                  "actor": dave.id, "object": dave.id, "to": [f"{AS}#Public"]}
        r = await inst.post(dave, INBOX, delete)
        assert (r.status_code, r.text) == (202, "Ignored: a Delete of an actor we never knew.")
    with Session(services.engine) as s:
        assert s.exec(select(func.count()).select_from(Actor).where(Actor.host == "gone.test")).one() == 0
        assert s.exec(select(func.count()).select_from(InboxItem).where(
            col(InboxItem.actor_ap_id) == dave.id)).one() == 0


async def test_an_actor_another_process_stores_first_is_updated_not_duplicated(
    services: Services, fediverse: FakeFediverse, post: str
) -> None:
    """Another process stores the same new actor between our read and our write (two `fedblog
    serve` processes, one burst): our INSERT meets the unique ``ap_id``, the batch is read again
    and that row updated. 202 at once, one row, with the name of the document we fetched and the
    handle WebFinger confirmed."""
    inst = FakeInstance("race.test", fediverse)
    erin = inst.actor("erin", "Erin E.")
    raced = [False]

    def race(conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        if not raced[0] and statement.lstrip().upper().startswith("INSERT INTO ACTOR"):
            raced[0] = True
            with Session(services.engine.execution_options(isolation_level="AUTOCOMMIT")) as other:
                other.add(Actor(ap_id=erin.id, host="race.test", name="stored by the other process"))
                other.commit()

    create, _ = builders.reply(erin, post, "<p>first</p>", services.clock.now())
    event.listen(services.engine, "before_cursor_execute", race)
    try:
        r = await inst.post(erin, INBOX, create)
    finally:
        event.remove(services.engine, "before_cursor_execute", race)
    assert raced[0]
    assert r.status_code == 202, r.text
    with Session(services.engine) as s:
        rows = s.exec(select(Actor).where(Actor.ap_id == erin.id)).all()
        reply = s.exec(select(Interaction).where(Interaction.content_html.contains("first"))).one()  # type: ignore[union-attr]
    assert [(a.name, a.handle) for a in rows] == [("Erin E.", "erin@race.test")]
    assert reply.actor_id == rows[0].id
