"""The moderation queue in a real browser: a real ``fedblog serve``, headless Chromium, JavaScript off.

Logs in, approves a held reply from the queue, sees it on the post page. Screenshots (desktop,
phone, the reply and import pages) land in ``test-artifacts/`` for a human to look at. The held
replies are written into the database before the server starts (tests/flows/test_admin_moderation.py
makes them through the real inbox).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fedblog.services import build_services
from fedblog.settings import load_settings
from fedblog.store.db import migrate, session_scope
from fedblog.store.tables import Actor, Interaction, Post
from tests.flows.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS
from tests.servers import clean_env, fedblog_serve, free_port

pytestmark = pytest.mark.browser
PASSWORD = "a long browser test passphrase"


def _seed(env: dict[str, str]) -> None:
    svc = build_services(load_settings(env))
    migrate(svc.engine)
    now = datetime.now(UTC)
    with session_scope(svc.engine) as s:
        post = Post(slug="hello", ap_path="/posts/hello", title="Hello, fediverse", content_md="x",
                    content_html="<p>A post to talk about.</p>", author_name="Owner",
                    published_at=now - timedelta(days=3), updated_at=now - timedelta(days=3))
        s.add(post)
        s.flush()
        assert post.id is not None
        texts = ["I really liked this, thank you for writing it up so carefully.",
                 "Cheap watches!!! Visit my site now for the best deals on everything you never needed.",
                 "A question: does this work with GoToSocial as well, or only with Mastodon?"]
        for i, (host, name) in enumerate([("mastodon.social", "Ada Reader"), ("spam.example", "Deal Bot"),
                                          ("gts.example", "Grace")]):
            ap_id = f"https://{host}/users/u{i}"
            actor = Actor(ap_id=ap_id, host=host, handle=f"u{i}@{host}", name=name, inbox=ap_id + "/inbox")
            s.add(actor)
            s.flush()
            s.add(Interaction(post_id=post.id, kind="reply", via="activitypub", status="pending",
                              ap_id=f"https://{host}/notes/{i}", actor_id=actor.id, author_name=name,
                              author_url=f"https://{host}/@u{i}", author_handle=f"u{i}@{host}",
                              content_html=f"<p>{texts[i]}</p>", published_at=now - timedelta(hours=i + 1)))
    svc.engine.dispose()


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[str]:
    if not CHROMIUM.exists():
        pytest.skip("Chromium not installed at /usr/bin/chromium: apt-get install chromium")
    port = free_port()
    env = clean_env(FEDBLOG_BASE_URL=f"http://127.0.0.1:{port}", FEDBLOG_DATA_DIR=str(tmp_path / "data"),
                    FEDBLOG_DATABASE_URL=database_url, FEDBLOG_WORKER="off", FEDBLOG_NAME="Field Notes")
    _seed(env)
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD)
    done = subprocess.run([sys.executable, "-m", "fedblog", "admin", "set-password", "--password-file", str(pw)],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    with fedblog_serve(env, port, tmp_path / "server.log", "/admin/login") as base:
        yield base


def test_approve_a_held_reply_without_javascript(server: str) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.goto(server + "/admin/moderation", wait_until="load")
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            assert page.url == server + "/admin/moderation"
            assert page.locator("table.admin-queue tbody tr").count() == 3
            assert page.locator("script, [style], style").count() == 0
            page.screenshot(path=str(ARTIFACTS / "admin-moderation.png"), full_page=True)
            row = page.locator("table.admin-queue tbody tr", has_text="Ada Reader")
            row.get_by_role("button", name="Approve", exact=True).click()
            assert "1 item(s) approved" in page.locator(".admin-notice").inner_text()
            assert page.locator("table.admin-queue tbody tr").count() == 2
            # bulk: tick the spam, press Spam
            page.locator("table.admin-queue tbody tr", has_text="Deal Bot").locator("input[type=checkbox]").check()
            page.locator(".admin-bulk button", has_text="Spam").click()
            assert "1 item(s) marked as spam" in page.locator(".admin-notice").inner_text()
            assert "spam.example/users/u1" in page.locator("#rules").inner_text()
            page.screenshot(path=str(ARTIFACTS / "admin-moderation-after.png"), full_page=True)

            page.goto(server + "/posts/hello", wait_until="load")
            body = page.locator("main").inner_text()
            assert "I really liked this" in body and "Cheap watches" not in body and "or only with Mastodon" not in body
            page.screenshot(path=str(ARTIFACTS / "post-after-approval.png"), full_page=True)
            page.locator(".owner-reply a").first.click()
            assert "/admin/reply?to=" in page.url and page.locator("h1").inner_text() == "Reply to Ada Reader"
            page.screenshot(path=str(ARTIFACTS / "admin-reply.png"), full_page=True)
            page.fill("#reply-content", "Thank you, Ada! More on this soon.")
            page.click("button[type=submit] >> text=Send reply")
            assert page.url.startswith(server + "/posts/hello#comment-")
            mine = page.locator("li.by-owner")
            assert mine.count() == 1 and "Thank you, Ada!" in mine.inner_text()
            assert "AUTHOR" in mine.inner_text().upper()
            page.locator("section.comments, main").first.screenshot(path=str(ARTIFACTS / "post-owner-reply.png"))
            page.goto(server + "/admin/import", wait_until="load")
            page.screenshot(path=str(ARTIFACTS / "admin-import.png"), full_page=True)
            page.set_input_files("#wxr", str(Path(__file__).parent.parent / "data" / "wordpress-6-export.xml"))
            page.click("button[type=submit] >> text=Import")
            # without JavaScript the page refreshes itself (meta refresh) until the report is there
            page.wait_for_selector("#import-report", timeout=60_000)
            assert "1 post(s), 1 draft(s)" in page.locator("#import-report").inner_text()
            page.screenshot(path=str(ARTIFACTS / "admin-import-done.png"), full_page=True)
            state = context.storage_state()

            phone = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844},
                                        is_mobile=True, storage_state=state)
            ppage = phone.new_page()
            ppage.goto(server + "/admin/moderation", wait_until="load")
            scroll_width, inner = ppage.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
            assert scroll_width <= inner + 1, f"the queue overflows a 390px screen: {scroll_width}"
            ppage.screenshot(path=str(ARTIFACTS / "admin-moderation-mobile.png"), full_page=True)
            phone.close()
            context.close()
        finally:
            browser.close()
