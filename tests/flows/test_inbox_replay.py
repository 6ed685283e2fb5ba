"""A signed POST replayed to another inbox path is refused before anything is looked up.

The signature covers ``(request-target)``; the same bytes and headers sent to a different path do
not verify, so the sender must get 401, not the "Already received." that would tell an
unauthenticated party which activity ids we hold.
"""

from __future__ import annotations

import json

import httpx
import pytest
from sqlmodel import Session, func, select

from fedblog.services import Services
from fedblog.store.tables import InboxItem
from tests.fediverse import signing
from tests.fediverse.instance import FakeInstance, follow
from tests.fediverse.network import FakeFediverse

pytestmark = pytest.mark.anyio


async def test_replay_to_another_inbox_path_is_refused_before_dedupe(
    services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient
) -> None:
    inst = FakeInstance("mastodon.test", fediverse)
    alice = inst.actor("alice")
    activity = follow(alice, "https://blog.test/users/blog")
    body = json.dumps(activity).encode()
    headers = signing.sign("POST", "https://blog.test/inbox", body, alice.key, alice.key_id, now=fediverse.clock.now())

    first = await client.post("/inbox", content=body, headers=headers)
    assert first.status_code == 202 and first.text == "Accepted.", first.text

    replay = await client.post("/users/blog/inbox", content=body, headers=headers)
    assert replay.status_code == 401, replay.text
    assert replay.text.startswith("Signature refused"), replay.text
    assert "Already" not in replay.text

    again = await client.post("/inbox", content=body, headers=headers)  # a genuine redelivery
    assert again.status_code == 202 and again.text == "Already received.", again.text
    resigned = await inst.post(alice, "https://blog.test/users/blog/inbox", activity)
    assert resigned.status_code == 202 and resigned.text == "Already received.", resigned.text
    with Session(services.engine) as s:
        assert s.exec(select(func.count()).select_from(InboxItem)).one() == 1


async def test_unverifiable_duplicate_learns_nothing(
    services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient
) -> None:
    """A known activity id under a wrong key gets the same 401 as an unknown one."""
    inst = FakeInstance("mastodon.test", fediverse)
    alice, mallory = inst.actor("alice"), inst.actor("mallory")
    activity = follow(alice, "https://blog.test/users/blog")
    assert (await inst.post(alice, "https://blog.test/inbox", activity)).status_code == 202
    forged = await inst.post(alice, "https://blog.test/inbox", activity, key=mallory.key)
    assert forged.status_code == 401 and "Already" not in forged.text, forged.text
