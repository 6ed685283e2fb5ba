"""The admin area over HTTP with a real database: login, sessions, CSRF, rate limit, dashboard.

Followers, replies, likes and failing deliveries are made through the real inbox and delivery
worker with fake fediverse servers; only the remote world is fake.
"""

from __future__ import annotations

import re
from datetime import timedelta
from http.cookies import SimpleCookie

import httpx
import pytest
from sqlalchemy import event
from sqlmodel import Session, select

from fedblog.admin.auth import PER_ACCOUNT, PER_IP, set_password
from fedblog.app import create_app
from fedblog.blog.posts import parse_post_source
from fedblog.clock import utc
from fedblog.federation.publishing import publish
from fedblog.jobs.queue import record_host_failure
from fedblog.jobs.runner import DeliveryRunner
from fedblog.services import Services
from fedblog.store.db import session_scope
from fedblog.store.tables import AdminSession, Delivery, HostHealth
from tests.admin_http import csrf_of, login
from tests.fediverse import builders
from tests.fediverse.instance import FakeInstance, follow
from tests.fediverse.network import FakeFediverse
from tests.helpers import NS, find_all, parse_html, text_of

pytestmark = pytest.mark.anyio
PASSWORD = "correct horse battery staple"
INBOX = "https://blog.test/inbox"
BLOG = "https://blog.test/users/blog"


@pytest.fixture
def owner(services: Services) -> str:
    set_password(services, PASSWORD)
    return PASSWORD


async def _dashboard_csrf(client: httpx.AsyncClient) -> str:
    r = await client.get("/admin")
    assert r.status_code == 200
    return csrf_of(r.text)


async def deliver(services: Services) -> None:
    await DeliveryRunner(services, concurrency=4).run_until_idle()


async def _followers_and_interactions(
    services: Services, fediverse: FakeFediverse, hosts: tuple[str, str] = ("mastodon.test", "gts.test"),
    slug: str = "hello",
) -> tuple[FakeInstance, ...]:
    """Three followers on two servers (through the inbox), a post, a reply, a like, and a failing inbox."""
    masto, gts = FakeInstance(hosts[0], fediverse), FakeInstance(hosts[1], fediverse, "gotosocial")
    alice, bob, carol = masto.actor("alice", "Alice A."), masto.actor("bob", "Bob B."), gts.actor("carol", "Carol C.")
    for inst, who in ((masto, alice), (masto, bob), (gts, carol)):
        assert (await inst.post(who, BLOG + "/inbox", follow(who, BLOG))).status_code == 202
    await deliver(services)
    with session_scope(services.engine) as session:
        publish(session, services, parse_post_source(f"---\ntitle: Hello admin\nslug: {slug}\n---\nA post.\n"))
    gts.respond_with(503, times=1)  # gts.test refuses the Create once: a failing inbox
    await deliver(services)
    now = services.clock.now()
    create, _note = builders.reply(alice, f"https://blog.test/posts/{slug}", "<p>Nice one</p>", now)
    assert (await masto.post(alice, INBOX, create)).status_code == 202
    assert (await gts.post(carol, INBOX, builders.like(carol, f"https://blog.test/posts/{slug}"))).status_code == 202
    return masto, gts


async def test_admin_pages_redirect_to_login_and_next_stays_local(
    services: Services, client: httpx.AsyncClient, owner: str
) -> None:
    for path in ("/admin", "/admin/followers?page=2", "/admin?days=90"):
        r = await client.get(path)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/admin/login?next=/admin"), r.headers["location"]
        assert r.headers["cache-control"] == "no-store"
    r = await client.get("/admin/followers?page=2")
    login = await client.get(r.headers["location"])
    assert 'name="next" value="/admin/followers?page=2"' in login.text
    for evil in ("https://evil.example/admin", "//evil.example/admin", "/\\evil.example", "/posts/x", "/admin/logout"):
        page = await client.get("/admin/login", params={"next": evil})
        assert 'name="next" value="/admin"' in page.text, evil
    # a POST without a session is refused, not redirected, and changes nothing
    r = await client.post("/admin/deliveries/retry", data={"csrf": "x", "host": "gts.test"})
    assert r.status_code == 403 and "not logged in" in r.text


async def test_login_sets_a_session_cookie_and_lands_on_next(
    services: Services, client: httpx.AsyncClient, owner: str
) -> None:
    r = await login(client, PASSWORD, "/admin/followers")
    assert r.status_code == 303 and r.headers["location"] == "/admin/followers"
    cookies = [SimpleCookie(h) for h in r.headers.get_list("set-cookie")]
    session = [c["fedblog_admin"] for c in cookies if "fedblog_admin" in c][0]
    assert session["httponly"] and session["secure"] and session["samesite"].lower() == "lax"
    assert session["path"] == "/admin" and int(session["max-age"]) == 168 * 3600
    assert len(session.value) >= 40
    with Session(services.engine) as s:  # only a hash of the token is stored
        row = s.exec(select(AdminSession)).one()
        assert row.token_hash != session.value and session.value not in row.token_hash
    assert (await client.get("/admin/followers")).status_code == 200
    # logged in, the login page sends you on
    assert (await client.get("/admin/login")).status_code == 303


async def test_no_secure_flag_on_plain_http(services: Services, owner: str) -> None:
    plain = create_app(services.__class__(**{**services.__dict__, "settings": services.settings.replace(
        base_url="http://127.0.0.1:8000")}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=plain), base_url="http://127.0.0.1:8000") as c:
        r = await login(c, PASSWORD)
        assert r.status_code == 303
        cookie = [h for h in r.headers.get_list("set-cookie") if h.startswith("fedblog_admin=")][0]
        assert "Secure" not in cookie and "HttpOnly" in cookie


async def test_wrong_password_is_401_and_too_many_failures_are_429(
    services: Services, client: httpx.AsyncClient, owner: str
) -> None:
    for _ in range(PER_IP):
        r = await login(client, "not the password at all")
        assert r.status_code == 401 and "That password is not right." in r.text
        assert "fedblog_admin=" not in r.headers.get("set-cookie", "").replace("fedblog_admin_login=", "")
    r = await login(client, PASSWORD)  # even the right password: the limit is checked first
    assert r.status_code == 429 and "Too many failed logins" in r.text
    assert 0 < int(r.headers["retry-after"]) <= 15 * 60
    # another address is not limited by this one's failures
    other = create_app(services)
    transport = httpx.ASGITransport(app=other, client=("198.51.100.7", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="https://blog.test") as c2:
        assert (await login(c2, PASSWORD)).status_code == 303
    services.clock.advance(int(r.headers["retry-after"]) - 1)  # type: ignore[attr-defined]
    assert (await login(client, PASSWORD)).status_code == 429  # not yet
    services.clock.advance(1)  # type: ignore[attr-defined]
    assert (await login(client, PASSWORD)).status_code == 303  # Retry-After was exact


async def test_account_wide_limit_across_addresses(services: Services, owner: str) -> None:
    app = create_app(services)
    failures = 0
    for n in range(PER_ACCOUNT // PER_IP + 1):
        transport = httpx.ASGITransport(app=app, client=(f"203.0.113.{n + 1}", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="https://blog.test") as c:
            for _ in range(PER_IP):
                r = await login(c, "wrong wrong wrong wrong")
                if r.status_code == 401:
                    failures += 1
                else:
                    assert r.status_code == 429
    assert failures == PER_ACCOUNT
    transport = httpx.ASGITransport(app=app, client=("192.0.2.200", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="https://blog.test") as c:
        assert (await login(c, PASSWORD)).status_code == 429


async def test_login_form_needs_its_token(services: Services, client: httpx.AsyncClient, owner: str) -> None:
    await client.get("/admin/login")
    for data in ({"password": PASSWORD}, {"password": PASSWORD, "csrf": "0" * 64}):
        r = await client.post("/admin/login", data=data)
        assert r.status_code == 403 and "security token" in r.text
    with Session(services.engine) as s:
        assert s.exec(select(AdminSession)).all() == []
    # a form body that is not urlencoded, or too large, is refused with a reason
    r = await client.post("/admin/login", content=b'{"password": "x"}', headers={"Content-Type": "application/json"})
    assert r.status_code == 415
    r = await client.post("/admin/login", data={"password": "x" * 20_000})
    assert r.status_code == 413


async def test_no_password_yet_says_how_to_set_one(client: httpx.AsyncClient) -> None:
    page = await client.get("/admin/login")
    assert "fedblog admin set-password" in page.text and 'type="password"' not in page.text
    assert (await client.get("/admin")).status_code == 303


async def test_dashboard_shows_followers_deliveries_and_interactions(
    services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient, owner: str
) -> None:
    await _followers_and_interactions(services, fediverse)
    assert (await login(client, PASSWORD)).status_code == 303
    r = await client.get("/admin")
    assert r.status_code == 200
    assert r.headers["x-frame-options"] == "DENY" and r.headers["cache-control"] == "no-store"
    doc = parse_html(r.text)  # strict HTML5: any parse error fails
    stat = {e.get("id"): text_of(e) for e in doc.iter() if (e.get("id") or "").startswith("stat-")}
    assert stat["stat-followers"] == "3"
    assert stat["stat-failing"] == "1" and stat["stat-pending"] == "1"
    hosts = {text_of(tr[0]): text_of(tr[1]) for tr in find_all(doc, "tr") if tr[0].tag == NS + "td"
             and "admin-mono" in (tr[0].get("class") or "") and len(tr) == 2}
    assert hosts == {"mastodon.test": "2", "gts.test": "1"}
    failing = [text_of(tr) for tr in find_all(doc, "tr") if "gts.test/inbox" in text_of(tr)]
    assert len(failing) == 1 and "HTTP 503" in failing[0] and "Retry now" in failing[0]
    interactions = find_all(doc, "ul", "admin-interactions")[0]
    items = [text_of(li) for li in interactions]
    assert any("Alice A. replied to Hello admin" in t for t in items), items
    assert any("Carol C. liked Hello admin" in t for t in items), items
    links = [a.get("href") for a in interactions.iter(NS + "a")]
    assert any(re.fullmatch(r"https://blog\.test/posts/hello#comment-\d+", h or "") for h in links), links
    assert "https://blog.test/posts/hello" in links  # the like links to the post
    svgs = list(doc.iter("{http://www.w3.org/2000/svg}svg"))
    assert len(svgs) == 2
    bars = list(svgs[1].iter("{http://www.w3.org/2000/svg}rect"))
    assert len(bars) == 30
    today = services.clock.now().date().isoformat()
    assert any(text_of(b) == f"{today}: 2 interactions" for b in bars)
    assert "Followers: 0 30 days ago, 3 now" in text_of(svgs[0])
    assert (await client.get("/admin?days=90")).status_code == 200
    assert (await client.get("/admin?days=7")).status_code == 400
    followers = await client.get("/admin/followers")
    assert followers.status_code == 200 and "@carol@gts.test" in followers.text
    assert "3 accounts follow" in followers.text
    rows = [[text_of(td) for td in tr] for tr in find_all(parse_html(followers.text), "tr")][1:]
    assert sorted(r[1] for r in rows) == ["gts.test", "mastodon.test", "mastodon.test"], rows
    assert (await client.get("/admin/followers?page=2")).status_code == 404
    assert (await client.get("/admin/followers?page=x")).status_code == 400


async def test_dashboard_costs_the_same_number_of_queries_with_more_data(
    services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient, owner: str
) -> None:
    assert (await login(client, PASSWORD)).status_code == 303
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    await _followers_and_interactions(services, fediverse)
    event.listen(services.engine, "before_cursor_execute", count)
    try:
        assert (await client.get("/admin")).status_code == 200
        before = len(statements)
        event.remove(services.engine, "before_cursor_execute", count)
        await _followers_and_interactions(services, fediverse, ("social.test", "pleroma.test"), "second")
        event.listen(services.engine, "before_cursor_execute", count)
        statements.clear()
        r = await client.get("/admin")
        assert r.status_code == 200 and 'id="stat-followers">6<' in r.text and 'id="stat-failing">2<' in r.text
        assert len(statements) == before <= 12, statements
    finally:
        event.remove(services.engine, "before_cursor_execute", count)


def _pending(services: Services, host: str) -> list[Delivery]:
    with Session(services.engine) as s:
        return list(s.exec(select(Delivery).where(Delivery.host == host, Delivery.state == "pending")).all())


async def test_retry_now_makes_the_failing_inbox_due_and_needs_csrf(
    services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient, owner: str
) -> None:
    _masto, gts = await _followers_and_interactions(services, fediverse)
    [row] = _pending(services, "gts.test")
    now = services.clock.now()
    assert utc(row.next_attempt_at) > now and row.attempts == 1
    assert (await login(client, PASSWORD)).status_code == 303
    csrf = await _dashboard_csrf(client)
    for bad in ({}, {"csrf": ""}, {"csrf": csrf[:-2] + "xx"}):
        r = await client.post("/admin/deliveries/retry", data={**bad, "inbox": row.inbox})
        assert r.status_code == 403 and "security token" in r.text
        assert utc(_pending(services, "gts.test")[0].next_attempt_at) == utc(row.next_attempt_at)
    r = await client.post("/admin/deliveries/retry", data={"csrf": csrf, "inbox": row.inbox, "host": "gts.test"})
    assert r.status_code == 400
    r = await client.post("/admin/deliveries/retry", data={"csrf": csrf, "inbox": row.inbox})
    assert r.status_code == 303 and r.headers["location"].startswith("/admin?retried=1")
    assert utc(_pending(services, "gts.test")[0].next_attempt_at) == now
    page = await client.get(r.headers["location"])
    assert "1 delivery to" in page.text
    await deliver(services)  # due now: the worker sends it without waiting for the backoff
    assert _pending(services, "gts.test") == [] and len(gts.activities("Create")) == 2


async def test_unavailable_host_is_listed_and_can_be_retried(
    services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient, owner: str
) -> None:
    await _followers_and_interactions(services, fediverse)
    start = services.clock.now()
    with session_scope(services.engine) as session:
        for day in range(7):
            record_host_failure(session, "gts.test", start - timedelta(days=day), days_for_unavailable=7)
    with Session(services.engine) as s:
        assert s.get(HostHealth, "gts.test").unavailable  # type: ignore[union-attr]
    assert (await login(client, PASSWORD)).status_code == 303
    page = await client.get("/admin")
    hosts = [text_of(li) for li in find_all(parse_html(page.text), "li", "admin-host")]
    assert len(hosts) == 1 and hosts[0].startswith("gts.test failed on 7 days")
    r = await client.post("/admin/deliveries/retry", data={"csrf": csrf_of(page.text), "host": "gts.test"})
    assert r.status_code == 303
    assert [utc(d.next_attempt_at) for d in _pending(services, "gts.test")] == [start]


async def test_logout_ends_the_session_everywhere(services: Services, client: httpx.AsyncClient, owner: str) -> None:
    assert (await login(client, PASSWORD)).status_code == 303
    token = client.cookies.get("fedblog_admin", path="/admin")
    csrf = await _dashboard_csrf(client)
    r = await client.post("/admin/logout", data={})  # no token: refused, still logged in
    assert r.status_code == 403 and (await client.get("/admin")).status_code == 200
    r = await client.post("/admin/logout", data={"csrf": csrf})
    assert r.status_code == 303 and r.headers["location"] == "/admin/login"
    assert (await client.get("/admin")).status_code == 303
    # the old cookie, replayed by hand, no longer works
    async with httpx.AsyncClient(transport=client._transport, base_url="https://blog.test") as thief:
        r = await thief.get("/admin", headers={"Cookie": f"fedblog_admin={token}"})
        assert r.status_code == 303
    with Session(services.engine) as s:
        assert s.exec(select(AdminSession)).all() == []


async def test_session_expires(services: Services, client: httpx.AsyncClient, owner: str) -> None:
    assert (await login(client, PASSWORD)).status_code == 303
    services.clock.advance(168 * 3600 - 60)  # type: ignore[attr-defined]
    assert (await client.get("/admin")).status_code == 200
    services.clock.advance(120)  # type: ignore[attr-defined]
    assert (await client.get("/admin")).status_code == 303
