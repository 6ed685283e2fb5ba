"""Keys per local actor: a delivery is signed by its activity's own actor.

A guest actor (a local ``Actor`` row with keys made through ``fedblog.federation.keys``) sends an
activity next to one of the blog's; the real delivery worker POSTs both to a fake Mastodon, which
verifies each signature with its own verifier, fetching each signer's actor document (the blog's
``/users/blog``, the guest's ``/guests/<n>``) over the fake network.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlmodel import Session, select

from fedblog.blog import interactions as recorder
from fedblog.blog.posts import parse_post_source
from fedblog.federation import outbox
from fedblog.federation.keys import KeyRing, UnknownActorKeys, create_actor_keys
from fedblog.federation.publishing import publish
from fedblog.jobs.runner import DeliveryRunner
from fedblog.services import Services
from fedblog.store.db import session_scope
from fedblog.store.tables import Actor, Delivery
from fedblog.urls import BLOG_ACTOR, guest_ref
from tests.fediverse.instance import AS, FakeInstance
from tests.fediverse.network import FakeFediverse

pytestmark = pytest.mark.anyio


def _guest(services: Services, name: str = "Gus") -> tuple[str, str]:
    """A local guest actor row with an Ed25519 key only; returns (reference, actor id)."""
    with session_scope(services.engine) as session:
        row = Actor(ap_id=f"urn:uuid:{uuid.uuid4()}", type="Person", host="blog.test", name=name, is_local=True)
        session.add(row)
        session.flush()
        assert row.id is not None
        row.ap_id = services.urls.guest_actor(row.id)
        ref = guest_ref(row.id)
        create_actor_keys(session, ref, services.clock.now())
        # a public comment: a guest actor is served only once it has one (docs/guest-actors.md)
        post = publish(session, services, parse_post_source(f"---\ntitle: T\nslug: t-{row.id}\n---\nBody.\n")).post
        assert post.id is not None
        recorder.record_web_comment(session, "approve-all", author=recorder.Author(name, actor_id=row.id),
                                    post_id=post.id, parent_id=None, content_html="<p>hi</p>",
                                    published_at=services.clock.now(), federated=True)
        return ref, row.ap_id


def _note(services: Services, actor_id: str, text: str) -> dict[str, Any]:
    token = uuid.uuid4().hex
    return {"@context": AS, "id": services.urls.activity(token), "type": "Create", "actor": actor_id,
            "object": {"id": services.urls.activity(token) + "/note", "type": "Note", "attributedTo": actor_id,
                       "content": f"<p>{text}</p>", "to": [AS + "#Public"]}}


async def test_each_delivery_is_signed_by_its_own_actor(services: Services, fediverse: FakeFediverse) -> None:
    inst = FakeInstance("mastodon.test", fediverse)
    alice = inst.actor("alice")
    ref, guest_id = _guest(services)
    assert services.keys.keys_for(ref).rsa is None  # an Ed25519 key only, until it first signs

    with session_scope(services.engine) as session:
        outbox.enqueue(session, _note(services, guest_id, "from a guest"), [alice.inbox], now=services.clock.now(),
                       actor=ref)
        outbox.enqueue(session, _note(services, services.urls.actor(), "from the blog"), [alice.inbox],
                       now=services.clock.now())  # no actor given: the blog, as before

    stats = await DeliveryRunner(services, concurrency=4).run_until_idle()

    assert stats.sent == 2
    by_text = {r.json["object"]["content"]: r for r in inst.received}
    guest, blog = by_text["<p>from a guest</p>"], by_text["<p>from the blog</p>"]
    assert f'keyId="{guest_id}#main-key"' in guest.headers["signature"]
    assert guest.signature_ok, guest.why
    assert ("GET", guest_id) in fediverse.log  # the guest's key came from its served document
    assert f'keyId="{services.urls.key_id()}"' in blog.headers["signature"]
    assert blog.signature_ok, blog.why
    # the RSA key was made for the first signature and stored: every process signs with it
    assert KeyRing(services.engine, services.clock.now).keys_for(ref).rsa is not None


async def test_an_actor_without_keys_gives_up_with_a_reason(services: Services, fediverse: FakeFediverse) -> None:
    inst = FakeInstance("mastodon.test", fediverse)
    alice = inst.actor("alice")
    with session_scope(services.engine) as session:
        outbox.enqueue(session, _note(services, services.urls.guest_actor(404), "orphan"), [alice.inbox],
                       now=services.clock.now(), actor=guest_ref(404))

    stats = await DeliveryRunner(services, concurrency=4).run_until_idle()

    assert stats.gave_up == 1 and inst.received == []
    with Session(services.engine) as session:
        row = session.exec(select(Delivery)).one()
    assert row.state == "gave_up" and "no keys for the local actor 'guest:404'" in (row.last_error or "")


async def test_two_processes_making_the_rsa_key_at_once_use_one(services: Services) -> None:
    ref, _ = _guest(services)
    first, second = KeyRing(services.engine, services.clock.now), KeyRing(services.engine, services.clock.now)
    assert first.keys_for(ref).rsa is None  # cached without an RSA key in the first process
    made = second.signing_key(ref)
    used = first.signing_key(ref)  # its cache has none: it must find the other's, not make another
    assert used.private_numbers() == made.private_numbers()
    assert services.keys.keys_for(BLOG_ACTOR).rsa_public_pem == services.keys.get().rsa_public_pem


async def test_the_key_cache_is_bounded_and_unknown_actors_raise(services: Services) -> None:
    refs = [_guest(services, f"G{i}")[0] for i in range(3)]
    ring = KeyRing(services.engine, services.clock.now, cache_size=2)
    keys = [ring.keys_for(r) for r in refs]
    assert ring.cached_for(refs[0]) is None  # the least recently used went first
    assert ring.cached_for(refs[2]) is keys[2]
    assert ring.keys_for(refs[0]).ed25519_multibase == keys[0].ed25519_multibase  # read again
    with pytest.raises(UnknownActorKeys):
        ring.keys_for(guest_ref(999))
