"""Every JSON-LD document we serve expands with pyld (an independent JSON-LD processor) and keeps
every term we set. Contexts come from tests/data/jsonld-contexts.json: nothing is fetched."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from pyld import jsonld

from fedblog.blog.posts import parse_post_source
from fedblog.federation.publishing import publish
from fedblog.services import Services
from fedblog.settings import Settings
from fedblog.store.db import session_scope
from tests.fediverse import builders
from tests.fediverse.instance import FakeInstance
from tests.fediverse.network import FakeFediverse

pytestmark = pytest.mark.anyio
AP = "application/activity+json"
CONTEXTS = json.loads((Path(__file__).parents[1] / "data" / "jsonld-contexts.json").read_text())


def _loader(url: str, options: Any = None) -> dict[str, Any]:
    if url not in CONTEXTS:
        raise AssertionError(f"document refers to a context we do not bundle: {url}")
    return {"contextUrl": None, "documentUrl": url, "document": CONTEXTS[url]}


jsonld.set_document_loader(_loader)


def _keys(value: Any) -> set[str]:
    out: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            if k != "@context":
                out.add(k)
                out |= _keys(v)
    elif isinstance(value, list):
        for v in value:
            out |= _keys(v)
    return out


def _iris(value: Any) -> set[str]:
    out: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            out.add(k)
            out |= _iris(v)
    elif isinstance(value, list):
        for v in value:
            out |= _iris(v)
    return out


def _check(doc: dict[str, Any]) -> None:
    expanded = jsonld.expand(doc)
    assert expanded, "expansion produced nothing"
    # the AS2 context maps unknown terms to blank-node IRIs ("@vocab": "_:"): none may be left
    undefined = sorted(k for k in _iris(expanded) if k.startswith("_:"))
    assert not undefined, f"terms not defined by the document's @context: {undefined}"
    back = jsonld.compact(expanded, {"@context": doc["@context"]})
    lost = _keys(doc) - _keys(back)
    assert not lost, f"terms dropped by JSON-LD processing: {sorted(lost)}"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(moderation="approve-all")


async def test_every_document_expands_and_keeps_its_terms(
    services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient
) -> None:
    with session_scope(services.engine) as session:
        publish(session, services, parse_post_source("---\ntitle: LD\nslug: ld\ntags: [json, ld]\n---\nBody.\n"))
    masto = FakeInstance("mastodon.test", fediverse)
    alice = masto.actor("alice")
    create, _ = builders.reply(alice, "https://blog.test/posts/ld", "<p>hi</p>", services.clock.now())
    assert (await masto.post(alice, "https://blog.test/inbox", create)).status_code == 202
    assert (
        await masto.post(alice, "https://blog.test/inbox", builders.like(alice, "https://blog.test/posts/ld"))
    ).status_code == 202
    paths = [
        "/users/blog", "/users/blog/outbox", "/users/blog/outbox?page=1", "/users/blog/followers",
        "/users/blog/followers?page=1", "/users/blog/following", "/users/blog/featured", "/posts/ld",
        "/posts/ld/replies", "/posts/ld/replies?page=1", "/posts/ld/context", "/posts/ld/context?page=1",
        "/posts/ld/likes", "/posts/ld/shares",
    ]
    checked = 0
    for path in paths:
        r = await client.get(path, headers={"Accept": AP})
        assert r.status_code == 200, path
        assert r.headers["content-type"].startswith(AP)
        _check(r.json())
        checked += 1
    # delivered activities: the Create we queued, and the Tombstone of a deleted post
    from sqlmodel import Session, select

    from fedblog.federation.publishing import unpublish
    from fedblog.store.tables import Activity

    with session_scope(services.engine) as session:
        unpublish(session, services, "ld")
    with Session(services.engine) as s:
        for row in s.exec(select(Activity)).all():
            _check(json.loads(row.body))
            checked += 1
    gone = await client.get("/posts/ld", headers={"Accept": AP})
    assert gone.status_code == 410
    _check(gone.json())
    assert checked >= len(paths) + 2


def test_the_checker_notices_a_dropped_term() -> None:
    with pytest.raises(AssertionError, match="notATerm"):
        _check({"@context": "https://www.w3.org/ns/activitystreams", "type": "Note", "notATerm": 1})
