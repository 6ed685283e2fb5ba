"""Profile and settings from the admin, over HTTP with a real database: the effective profile
reaches the actor, pages, feeds, WebFinger and NodeInfo; followers get a verified Update(Person);
the moderation policy and the handle follow the admin; pinned posts fill `featured`."""

from __future__ import annotations

import io
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlmodel import Session, select

from fedblog.admin.auth import set_password
from fedblog.app import create_app
from fedblog.blog.posts import parse_post_source
from fedblog.federation.profile import announce_profile_change
from fedblog.federation.publishing import publish
from fedblog.jobs.runner import DeliveryRunner
from fedblog.services import Services, build_services
from fedblog.settings import Settings
from fedblog.store.db import session_scope
from fedblog.store.tables import BlogState, Interaction, Post
from tests.admin_http import csrf_of, login
from tests.fediverse import builders
from tests.fediverse.instance import FakeInstance, follow
from tests.fediverse.network import FakeFediverse
from tests.flows.test_jsonld import _check as check_jsonld

pytestmark = pytest.mark.anyio
PASSWORD = "correct horse battery staple"
AP = "application/activity+json"
ACTOR = "https://blog.test/users/blog"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(moderation="approve-all")  # the env default; the admin changes it below


@pytest.fixture
def owner(services: Services) -> str:
    set_password(services, PASSWORD)
    return PASSWORD


async def _login(client: httpx.AsyncClient) -> str:
    r = await login(client, PASSWORD, "/admin/profile")
    assert r.status_code == 303, r.text
    profile = await client.get("/admin/profile")
    assert profile.status_code == 200
    return csrf_of(profile.text)


def _png(width: int, height: int, color: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, format="PNG")
    return buf.getvalue()


async def _save(client: httpx.AsyncClient, csrf: str | None, files: dict[str, Any] | None = None,
                **fields: str) -> httpx.Response:
    data = {"name": "", "description": "", "author": "", "handle": "", **fields}
    if csrf is not None:
        data["csrf"] = csrf
    # always multipart, as the browser sends this form
    empty = {"avatar": ("", b"", "application/octet-stream")}
    return await client.post("/admin/profile", data=data, files=files or empty)


async def _follower(services: Services, fediverse: FakeFediverse, name: str = "alice") -> tuple[FakeInstance, Any]:
    inst = FakeInstance("mastodon.test", fediverse)
    who = inst.actor(name)
    assert (await inst.post(who, ACTOR + "/inbox", follow(who, ACTOR))).status_code == 202
    await DeliveryRunner(services, concurrency=4).run_until_idle()
    return inst, who


def _state(services: Services) -> dict[str, str]:
    with Session(services.engine) as session:
        return {r.key: r.value for r in session.exec(select(BlogState)).all()}


async def test_saved_profile_reaches_actor_pages_feeds_webfinger_and_followers(
    services: Services, client: httpx.AsyncClient, fediverse: FakeFediverse, owner: str
) -> None:
    inst, _alice = await _follower(services, fediverse)
    received = len(inst.received)
    csrf = await _login(client)
    r = await _save(client, csrf, files={"avatar": ("me.png", _png(600, 600), "image/png")},
                    name="Garden Notes", author="Ada", description="Plants and *soil*. See <https://example.org/>",
                    field_name_1="Home", field_value_1="https://ada.example/", field_name_2="Pronouns",
                    field_value_2="she/her")
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/admin/profile?saved=1"

    actor = (await client.get("/users/blog", headers={"Accept": AP})).json()
    assert actor["name"] == "Garden Notes"
    assert "<em>soil</em>" in actor["summary"] and 'href="https://example.org/"' in actor["summary"]
    icon = actor["icon"]
    assert (icon["mediaType"], icon["width"], icon["height"]) == ("image/png", 400, 400)  # Mastodon's avatar size
    served = await client.get(icon["url"].removeprefix("https://blog.test"))
    assert served.status_code == 200 and served.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(served.content)).size == (400, 400)
    assert actor["image"]["url"] == "https://blog.test/static/header.png"  # no header uploaded: the default
    fields = {a["name"]: a["value"] for a in actor["attachment"] if a["type"] == "PropertyValue"}
    assert 'href="https://ada.example/"' in fields["Home"] and 'rel="nofollow noopener me"' in fields["Home"]
    assert fields["Pronouns"] == "she/her"
    check_jsonld(actor)  # PropertyValue, width and height are defined terms

    home = (await client.get("/")).text
    assert "<title>Garden Notes</title>" in home
    about = (await client.get("/about")).text
    assert 'href="https://ada.example/"' in about and icon["url"] in about and "Ada" in about
    assert "<title>Garden Notes</title>" in (await client.get("/feed.atom")).text
    assert "<title>Garden Notes</title>" in (await client.get("/feed.rss")).text
    node = (await client.get("/nodeinfo/2.1")).json()
    assert node["metadata"]["nodeName"] == "Garden Notes"
    wf = (await client.get("/.well-known/webfinger", params={"resource": "acct:blog@blog.test"})).json()
    assert wf["subject"] == "acct:blog@blog.test"

    await DeliveryRunner(services, concurrency=4).run_until_idle()
    new = inst.received[received:]
    assert len(new) == 1 and new[0].signature_ok, [(x.path, x.why) for x in new]
    update = new[0].json
    assert update["type"] == "Update" and update["actor"] == ACTOR and update["object"]["id"] == ACTOR
    assert update["object"]["name"] == "Garden Notes"
    assert update["object"]["icon"] == icon
    check_jsonld(update)
    # the start-up check finds the same fingerprint: no second Update
    with session_scope(services.engine) as session:
        assert announce_profile_change(session, services).outcome == "unchanged"


async def test_a_non_image_avatar_is_a_form_error_and_nothing_changes(
    services: Services, client: httpx.AsyncClient, owner: str, settings: Settings
) -> None:
    csrf = await _login(client)
    before = _state(services)
    r = await _save(client, csrf, files={"avatar": ("evil.png", b"<script>alert(1)</script>", "image/png")},
                    name="Should not stick")
    assert r.status_code == 400
    assert "not an image" in r.text
    assert 'value="Should not stick"' in r.text  # the form keeps what was typed
    assert _state(services) == before
    actor = (await client.get("/users/blog", headers={"Accept": AP})).json()
    assert actor["name"] == settings.name and actor["icon"]["url"] == "https://blog.test/static/avatar.png"


async def test_profile_and_settings_need_the_csrf_token(
    services: Services, client: httpx.AsyncClient, owner: str
) -> None:
    await _login(client)
    before = _state(services)
    r = await _save(client, None, name="No token")
    assert r.status_code == 403 and "security token" in r.text
    r = await client.post("/admin/settings", data={"moderation": "hold-all"})
    assert r.status_code == 403
    r = await client.post("/admin/settings", data={"moderation": "hold-all", "csrf": "wrong"})
    assert r.status_code == 403
    assert _state(services) == before


async def test_hold_all_from_the_admin_holds_the_next_reply(
    services: Services, client: httpx.AsyncClient, fediverse: FakeFediverse, owner: str
) -> None:
    with session_scope(services.engine) as session:
        publish(session, services, parse_post_source("---\ntitle: Held\nslug: held\n---\nBody.\n"))
    masto = FakeInstance("mastodon.test", fediverse)
    alice = masto.actor("alice")

    async def reply(text: str) -> str:
        create, note = builders.reply(alice, "https://blog.test/posts/held", f"<p>{text}</p>", services.clock.now())
        assert (await masto.post(alice, "https://blog.test/inbox", create)).status_code == 202
        with Session(services.engine) as session:
            row = session.exec(select(Interaction).where(Interaction.ap_id == note["id"])).one()
            return row.status

    assert await reply("first") == "visible"  # FEDBLOG_MODERATION=approve-all
    csrf = await _login(client)
    settings_page = await client.get("/admin/settings")
    assert 'value="approve-all" checked' in settings_page.text
    r = await client.post("/admin/settings", data={"csrf": csrf, "moderation": "hold-all"})
    assert r.status_code == 303
    assert 'value="hold-all" checked' in (await client.get("/admin/settings")).text
    assert await reply("second") == "pending"
    bad = await client.post("/admin/settings", data={"csrf": csrf, "moderation": "anything-goes"})
    assert bad.status_code == 400 and "Choose a moderation policy" in bad.text


async def test_handle_changes_until_the_first_follower(
    services: Services, client: httpx.AsyncClient, fediverse: FakeFediverse, owner: str
) -> None:
    csrf = await _login(client)
    r = await _save(client, csrf, handle="garden")
    assert r.status_code == 303, r.text
    wf = await client.get("/.well-known/webfinger", params={"resource": "acct:garden@blog.test"})
    assert wf.status_code == 200 and wf.json()["subject"] == "acct:garden@blog.test"
    assert {"rel": "self", "type": AP, "href": "https://blog.test/users/garden"} in wf.json()["links"]
    assert (await client.get("/.well-known/webfinger", params={"resource": "acct:blog@blog.test"})).status_code == 404
    assert (await client.get("/users/blog", headers={"Accept": AP})).status_code == 404
    actor = (await client.get("/users/garden", headers={"Accept": AP})).json()
    assert actor["id"] == "https://blog.test/users/garden" and actor["preferredUsername"] == "garden"
    assert actor["publicKey"]["id"] == "https://blog.test/users/garden#main-key"
    assert "@garden@blog.test" in (await client.get("/")).text
    bad = await _save(client, csrf, handle="no spaces")
    assert bad.status_code == 400 and "not a valid username" in bad.text

    # a follower of the new actor: now the handle is fixed
    inst = FakeInstance("mastodon.test", fediverse)
    alice = inst.actor("alice")
    new_actor = "https://blog.test/users/garden"
    assert (await inst.post(alice, new_actor + "/inbox", follow(alice, new_actor))).status_code == 202
    await DeliveryRunner(services, concurrency=4).run_until_idle()
    accepts = [r for r in inst.received if r.json.get("type") == "Accept"]
    assert len(accepts) == 1 and accepts[0].signature_ok, [(r.path, r.why) for r in accepts]  # keyId: new actor
    assert accepts[0].json["actor"] == new_actor
    before = _state(services)
    r = await _save(client, csrf, handle="other")
    assert r.status_code == 409
    assert "can no longer change" in r.text and "1 account(s) follow @garden@blog.test" in r.text
    assert _state(services) == before
    assert (await client.get("/users/garden", headers={"Accept": AP})).status_code == 200


async def test_pinned_post_is_featured_and_followers_get_add_then_remove(
    services: Services, client: httpx.AsyncClient, fediverse: FakeFediverse, owner: str
) -> None:
    with session_scope(services.engine) as session:
        publish(session, services, parse_post_source("---\ntitle: Pin me\nslug: pin-me\n---\nBody.\n"))
    inst, _alice = await _follower(services, fediverse)
    with Session(services.engine) as session:
        post_id = session.exec(select(Post.id).where(Post.slug == "pin-me")).one()
    featured_url = "https://blog.test/users/blog/featured"
    empty = (await client.get("/users/blog/featured", headers={"Accept": AP})).json()
    assert empty["totalItems"] == 0 and empty["orderedItems"] == []

    csrf = await _login(client)
    assert "Pin me" in (await client.get("/admin/profile")).text
    assert (await client.post(f"/admin/posts/{post_id}/pin", data={})).status_code == 403  # no token
    r = await client.post(f"/admin/posts/{post_id}/pin", data={"csrf": csrf})
    assert r.status_code == 303
    featured = (await client.get("/users/blog/featured", headers={"Accept": AP})).json()
    # ids, not embedded Articles: Mastodon's FetchFeaturedCollectionService keeps only URIs and Notes
    assert featured["orderedItems"] == ["https://blog.test/posts/pin-me"] and featured["totalItems"] == 1
    assert (await client.post(f"/admin/posts/{post_id}/pin", data={"csrf": csrf})).status_code == 303  # idempotent
    await DeliveryRunner(services, concurrency=4).run_until_idle()
    adds = inst.activities("Add")
    assert len(adds) == 1
    add = adds[0]
    assert add["actor"] == ACTOR and add["object"] == "https://blog.test/posts/pin-me"
    assert add["target"] == featured_url  # what Mastodon's Activity::Add matches on
    check_jsonld(add)

    assert (await client.post(f"/admin/posts/{post_id}/unpin", data={"csrf": csrf})).status_code == 303
    assert (await client.get("/users/blog/featured", headers={"Accept": AP})).json()["orderedItems"] == []
    await DeliveryRunner(services, concurrency=4).run_until_idle()
    removes = inst.activities("Remove")
    assert len(removes) == 1 and removes[0]["target"] == featured_url
    assert removes[0]["object"] == "https://blog.test/posts/pin-me"
    assert (await client.post("/admin/posts/99999/pin", data={"csrf": csrf})).status_code == 404


async def test_another_process_serves_the_saved_profile_after_its_check(
    services: Services, client: httpx.AsyncClient, fediverse: FakeFediverse, settings: Settings, owner: str
) -> None:
    other = build_services(settings, clock=services.clock, transport=fediverse.transport())  # a second process
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(other)),
                                     base_url="https://blog.test") as second:
            assert "<title>" + settings.name + "</title>" in (await second.get("/")).text
            csrf = await _login(client)
            assert (await _save(client, csrf, name="Saved Elsewhere")).status_code == 303
            other.site.ttl = 0  # its next request re-checks the version row (the TTL has passed)
            assert "<title>Saved Elsewhere</title>" in (await second.get("/")).text
            assert (await second.get("/users/blog", headers={"Accept": AP})).json()["name"] == "Saved Elsewhere"
    finally:
        await other.aclose()


async def test_a_saved_title_reaches_cached_post_pages_at_once(
    services: Services, client: httpx.AsyncClient, owner: str
) -> None:
    """The post page cache is keyed by the post's version and by the profile's: the blog's title is
    on every page, so a cached page must not outlive a profile save."""
    with session_scope(services.engine) as session:
        publish(session, services, parse_post_source("---\ntitle: Cached\nslug: cached\n---\nBody.\n"))
    first = await client.get("/posts/cached")
    assert first.status_code == 200 and "Test Blog" in first.text
    again = await client.get("/posts/cached", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304  # served from the cache
    csrf = await _login(client)
    assert (await _save(client, csrf, name="Renamed Notebook")).status_code == 303
    after = await client.get("/posts/cached", headers={"If-None-Match": first.headers["ETag"]})
    assert after.status_code == 200, "the old ETag must not match once the profile changed"
    assert '<meta property="og:site_name" content="Renamed Notebook">' in after.text
    assert '<meta property="og:site_name" content="Test Blog">' in first.text
