"""The moderation queue in a real browser: a real ``fedblog serve``, headless Chromium, JavaScript off.

Logs in, approves a held reply from the queue, sees it on the post page. Screenshots (desktop,
phone, the reply and import pages) land in ``test-artifacts/`` for a human to look at. The held
replies are written into the database before the server starts (tests/flows/test_admin_moderation.py
makes them through the real inbox).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session

from fedblog.store.tables import Actor, Interaction, Post
from tests.browser import admin_serve, assert_fits_phone, chromium, desktop_page, log_in, phone_page, save_shot
from tests.flows.test_browser import ARTIFACTS

pytestmark = pytest.mark.browser


def _seed(s: Session, now: datetime) -> None:
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


def test_approve_a_held_reply_without_javascript(tmp_path: Path, database_url: str) -> None:
    with admin_serve(tmp_path, database_url, _seed) as server, chromium() as browser:
        page = desktop_page(browser)
        log_in(page, server, "/admin/moderation")
        assert page.locator("table.admin-queue tbody tr").count() == 3
        assert page.locator("script, [style], style").count() == 0
        save_shot(page, "admin-moderation.png")
        row = page.locator("table.admin-queue tbody tr", has_text="Ada Reader")
        row.get_by_role("button", name="Approve", exact=True).click()
        assert "1 item(s) approved" in page.locator(".admin-notice").inner_text()
        assert page.locator("table.admin-queue tbody tr").count() == 2
        # bulk: tick the spam, press Spam
        page.locator("table.admin-queue tbody tr", has_text="Deal Bot").locator("input[type=checkbox]").check()
        page.locator(".admin-bulk button", has_text="Spam").click()
        assert "1 item(s) marked as spam" in page.locator(".admin-notice").inner_text()
        assert "spam.example/users/u1" in page.locator("#rules").inner_text()
        save_shot(page, "admin-moderation-after.png")

        page.goto(server + "/posts/hello", wait_until="load")
        body = page.locator("main").inner_text()
        assert "I really liked this" in body and "Cheap watches" not in body and "or only with Mastodon" not in body
        save_shot(page, "post-after-approval.png")
        page.locator(".owner-reply a").first.click()
        assert "/admin/reply?to=" in page.url and page.locator("h1").inner_text() == "Reply to Ada Reader"
        save_shot(page, "admin-reply.png")
        page.fill("#reply-content", "Thank you, Ada! More on this soon.")
        page.click("button[type=submit] >> text=Send reply")
        assert page.url.startswith(server + "/posts/hello#comment-")
        mine = page.locator("li.by-owner")
        assert mine.count() == 1 and "Thank you, Ada!" in mine.inner_text()
        assert "AUTHOR" in mine.inner_text().upper()
        page.locator("section.comments, main").first.screenshot(path=str(ARTIFACTS / "post-owner-reply.png"))
        page.goto(server + "/admin/import", wait_until="load")
        save_shot(page, "admin-import.png")
        page.set_input_files("#wxr", str(Path(__file__).parent.parent / "data" / "wordpress-6-export.xml"))
        page.click("button[type=submit] >> text=Import")
        # without JavaScript the page refreshes itself (meta refresh) until the report is there
        page.wait_for_selector("#import-report", timeout=60_000)
        assert "1 post(s), 1 draft(s)" in page.locator("#import-report").inner_text()
        save_shot(page, "admin-import-done.png")
        state = page.context.storage_state()

        ppage = phone_page(browser, state)
        ppage.goto(server + "/admin/moderation", wait_until="load")
        assert_fits_phone(ppage, "the queue")
        save_shot(ppage, "admin-moderation-mobile.png")
        ppage.context.close()
        page.context.close()
