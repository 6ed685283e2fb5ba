"""The admin area in a real browser: a real ``fedblog serve``, headless Chromium, JavaScript off.

Logs in through the form, sees the dashboard (figures, SVG charts), presses "Retry now", logs
out. Screenshots (desktop, dark, phone) land in ``test-artifacts/`` for a human to look at.
The followers, deliveries and comments shown are written into the database before the server
starts (this test is about what the browser shows; tests/flows/test_admin.py makes the same kind
of data through the real inbox and worker).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session

from fedblog.store.tables import Activity, Actor, Delivery, Follower, HostHealth, Interaction, Post
from tests.browser import PASSWORD, admin_serve, assert_fits_phone, chromium, desktop_page, phone_page, save_shot
from tests.flows.test_browser import ARTIFACTS

pytestmark = pytest.mark.browser


def _seed(s: Session, now: datetime) -> None:
    hosts = ["mastodon.social"] * 9 + ["hachyderm.io"] * 5 + ["gts.example"] * 3 + ["fosstodon.org"] * 2
    for i, host in enumerate(hosts):
        ap_id = f"https://{host}/users/reader{i}"
        s.add(Actor(ap_id=ap_id, host=host, handle=f"reader{i}@{host}", name=f"Reader {i}",
                    inbox=ap_id + "/inbox"))
        s.add(Follower(actor_ap_id=ap_id, inbox=ap_id + "/inbox", shared_inbox=f"https://{host}/inbox",
                       created_at=now - timedelta(days=(i * 7) % 29, hours=i)))
    post = Post(slug="hello", ap_path="/posts/hello", title="Hello, fediverse", content_md="x",
                content_html="<p>x</p>",
                author_name="Owner", published_at=now - timedelta(days=30), updated_at=now - timedelta(days=30))
    s.add(post)
    s.flush()
    assert post.id is not None
    for i in range(24):
        kind = ("reply", "like", "repost", "comment")[i % 4]
        s.add(Interaction(post_id=post.id, kind=kind, via="activitypub", author_name=f"Reader {i % 7}",
                          author_url=f"https://mastodon.social/@reader{i % 7}", content_html="<p>Nice</p>",
                          published_at=now - timedelta(days=(i * 5) % 27, minutes=i)))
    act = Activity(ap_id="http://127.0.0.1/activities/x", type="Create", body="{}", created_at=now)
    s.add(act)
    s.flush()
    assert act.id is not None
    s.add(Delivery(activity_id=act.id, inbox="https://gts.example/inbox", host="gts.example", attempts=3,
                   next_attempt_at=now + timedelta(hours=2), last_status=503,
                   last_error="HTTP 503", created_at=now - timedelta(hours=3)))
    s.add(HostHealth(host="dead.example", failure_days="2026-11-01,2026-11-02,2026-11-03,2026-11-04,"
                     "2026-11-05,2026-11-06,2026-11-07", unavailable=True, last_failure_at=now))


@pytest.fixture
def admin_server(tmp_path: Path, database_url: str) -> Iterator[str]:
    with admin_serve(tmp_path, database_url, _seed) as base:
        yield base


def test_admin_login_dashboard_retry_logout_without_javascript(admin_server: str) -> None:
    with chromium() as browser:
        page = desktop_page(browser)
        page.goto(admin_server + "/admin", wait_until="load")
        assert page.url.startswith(admin_server + "/admin/login?next=/admin")
        save_shot(page, "admin-login.png")
        page.fill("#password", "wrong password, long enough")
        page.click("button[type=submit]")
        assert page.locator(".admin-error").inner_text() == "That password is not right."
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        assert page.url == admin_server + "/admin"
        assert page.locator("h1").inner_text() == "Dashboard"
        assert page.locator("#stat-followers").inner_text() == "19"
        assert page.locator("#stat-failing").inner_text() == "1"
        assert page.locator("#stat-unavailable").inner_text() == "1"
        charts = page.locator("svg.chart")
        assert charts.count() == 2
        for i in range(2):
            box = charts.nth(i).bounding_box()
            assert box is not None and box["width"] > 250 and box["height"] > 60
        assert page.locator("svg.chart-bars rect.bar").count() == 30
        assert page.locator(".admin-interactions li").count() == 15
        # nothing that a "default-src 'self'" Content-Security-Policy would block
        assert page.locator("script, [style], style").count() == 0
        bg = page.eval_on_selector(".admin-stats li", "e => getComputedStyle(e).borderRadius")
        assert bg == "10px", "the admin styles did not apply"
        save_shot(page, "admin-dashboard.png")

        page.locator("table.admin-failing button", has_text="Retry now").click()
        assert "1 delivery to https://gts.example/inbox is due now" in page.locator(".admin-notice").inner_text()
        state = page.context.storage_state()

        dark = browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 900},
                                   color_scheme="dark", storage_state=state)
        dpage = dark.new_page()
        dpage.goto(admin_server + "/admin?days=90", wait_until="load")
        assert dpage.locator("h1").inner_text() == "Dashboard"
        save_shot(dpage, "admin-dashboard-dark.png")
        dark.close()

        ppage = phone_page(browser, state)
        shots = (("/admin", "admin-dashboard-mobile.png"), ("/admin/followers", "admin-followers-mobile.png"))
        for path, shot in shots:
            ppage.goto(admin_server + path, wait_until="load")
            assert_fits_phone(ppage, path)
            save_shot(ppage, shot)
            ppage.screenshot(path=str(ARTIFACTS / shot.replace(".png", "-top.png")))  # one screen, legible
        ppage.goto(admin_server + "/admin", wait_until="load")
        ppage.locator("#deliveries").screenshot(path=str(ARTIFACTS / "admin-deliveries-mobile.png"))
        ppage.context.close()

        page.goto(admin_server + "/admin/followers", wait_until="load")
        assert page.locator("table.admin-table tbody tr").count() == 19
        assert page.locator("table.admin-table tbody tr td.admin-col-host").first.inner_text() == "mastodon.social"
        save_shot(page, "admin-followers.png")
        page.click("text=Log out")
        assert page.url == admin_server + "/admin/login"
        page.goto(admin_server + "/admin", wait_until="load")
        assert "/admin/login" in page.url
        page.context.close()
