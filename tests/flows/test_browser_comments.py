"""The web comment form in a real browser: a real ``fedblog serve``, headless Chromium, JavaScript off.

A reader types a comment, gets a field's problem back (the form filled in), fixes it and sees the
comment under the post; another replies to a comment from its "Reply" link and sees the reply
threaded under it; on a blog that holds first comments, the reader sees the moderation notice.
Screenshots (desktop and phone) land in ``test-artifacts/`` for a human to look at.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session

from fedblog.services import build_services
from fedblog.settings import load_settings
from fedblog.store.db import migrate, session_scope
from fedblog.store.tables import Interaction, Post
from tests.browser import assert_fits_phone, chromium, desktop_page, phone_page, save_shot
from tests.flows.test_browser import ARTIFACTS, CHROMIUM
from tests.servers import clean_env, fedblog_serve, free_port

pytestmark = pytest.mark.browser
FILL_WAIT_MS = 3300  # the form is refused when sent less than 3 s after it was served (a bot's speed)


def _seed(s: Session, now: datetime) -> None:
    post = Post(slug="hello", ap_path="/posts/hello", title="Notes on slow software", content_md="x",
                content_html="<p>Some thoughts on software that takes its time, and why that can be good.</p>",
                author_name="Owner", published_at=now - timedelta(days=2), updated_at=now - timedelta(days=2))
    s.add(post)
    s.flush()
    assert post.id is not None
    s.add(Interaction(post_id=post.id, kind="comment", via="form", status="visible", author_name="Grace",
                      author_url="https://grace.example/", content_html="<p>Lovely read. Which editor do you use?</p>",
                      published_at=now - timedelta(hours=5)))


@contextlib.contextmanager
def blog(tmp_path: Path, database_url: str, moderation: str) -> Iterator[str]:
    if not CHROMIUM.exists():
        pytest.skip("Chromium not installed at /usr/bin/chromium: apt-get install chromium")
    port = free_port()
    env = clean_env(FEDBLOG_BASE_URL=f"http://127.0.0.1:{port}", FEDBLOG_DATA_DIR=str(tmp_path / "data"),
                    FEDBLOG_DATABASE_URL=database_url, FEDBLOG_WORKER="off", FEDBLOG_NAME="Field Notes",
                    FEDBLOG_MODERATION=moderation)
    svc = build_services(load_settings(env))
    migrate(svc.engine)
    with session_scope(svc.engine) as s:
        _seed(s, datetime.now().astimezone())
    svc.engine.dispose()
    with fedblog_serve(env, port, tmp_path / "server.log", "/posts/hello") as base:
        yield base


def test_comment_and_reply_without_javascript(tmp_path: Path, database_url: str) -> None:
    with blog(tmp_path, database_url, "approve-all") as server, chromium() as browser:
        page = desktop_page(browser)
        page.goto(server + "/posts/hello", wait_until="load")
        assert page.locator("form.comment-form").count() == 1
        assert page.locator("script, [style], style").count() == 0
        box = page.locator("#c-homepage").bounding_box()
        assert box is not None and box["x"] + box["width"] <= 0, "the honeypot is off-screen"
        assert not page.locator("#c-federate").is_checked()  # FEDBLOG_COMMENT_CONSENT_DEFAULT: off
        page.locator("#respond").screenshot(path=str(ARTIFACTS / "comment-form.png"))
        page.fill("#c-name", "Ada Reader")
        page.fill("#c-email", "ada@example.org")
        page.fill("#c-website", "javascript:alert(1)")
        page.fill("#c-text", "I use a plain text editor, see https://example.org/editor.\n\nThanks for the post!")
        page.check("#c-federate")
        page.wait_for_timeout(FILL_WAIT_MS)
        page.click("button[type=submit] >> text=Post comment")
        assert page.url == server + "/comments"
        assert "http:// or https://" in page.locator("#website-error").inner_text()
        assert page.locator("#c-text").input_value().startswith("I use a plain text editor")  # nothing lost
        assert page.locator("#c-federate").is_checked() and page.locator("#c-email").input_value() == "ada@example.org"
        save_shot(page, "comment-form-error.png")
        page.fill("#c-website", "https://ada.example/")
        page.wait_for_timeout(FILL_WAIT_MS)
        page.click("button[type=submit] >> text=Post comment")
        assert page.url.startswith(server + "/posts/hello#comment-"), page.url
        mine = page.locator("article.h-cite", has_text="I use a plain text editor")
        assert mine.count() == 1 and mine.locator("a[href='https://example.org/editor']").count() == 1
        assert "ada@example.org" not in page.content()
        save_shot(page, "comment-posted.png")

        # a second reader replies to Grace from the "Reply" link under her comment
        other = desktop_page(browser)
        other.goto(server + "/posts/hello", wait_until="load")
        other.locator("li.comment", has_text="Which editor").locator("a.reply-link").first.click()
        assert "/reply" in other.url and other.locator("h1").inner_text() == "Reply to Grace"
        assert "Which editor do you use?" in other.locator(".replying-to").inner_text()
        save_shot(other, "comment-reply-page.png")
        other.fill("#c-name", "Linus")
        other.fill("#c-text", "Not Grace, but: ed, of course.")
        other.wait_for_timeout(FILL_WAIT_MS)
        other.click("button[type=submit] >> text=Post reply")
        assert other.url.startswith(server + "/posts/hello#comment-"), other.url
        thread = other.locator("ol.thread > li.comment", has_text="Which editor")
        assert "Not Grace, but: ed, of course." in thread.locator("ol.replies").inner_text()
        other.locator("#comments").screenshot(path=str(ARTIFACTS / "comment-reply-threaded.png"))

        phone = phone_page(browser)
        phone.goto(server + "/posts/hello", wait_until="load")
        assert_fits_phone(phone, "the post page with its comment form")
        phone.locator("#respond").screenshot(path=str(ARTIFACTS / "comment-form-phone.png"))
        phone.goto(server + "/comments/1/reply", wait_until="load")
        assert_fits_phone(phone, "the reply page")


def test_a_held_comment_shows_its_author_the_moderation_notice(tmp_path: Path, database_url: str) -> None:
    with blog(tmp_path, database_url, "first-contact") as server, chromium() as browser:
        page = phone_page(browser)
        page.goto(server + "/posts/hello", wait_until="load")
        page.fill("#c-name", "New Reader")
        page.fill("#c-text", "My first comment here.")
        page.wait_for_timeout(FILL_WAIT_MS)
        page.click("button[type=submit] >> text=Post comment")
        assert "/comments/" in page.url and "?key=" in page.url
        assert "awaiting moderation" in page.locator(".form-notice").inner_text()
        assert "My first comment here." in page.locator("article.mine").inner_text()
        assert_fits_phone(page, "the moderation notice")
        save_shot(page, "comment-awaiting-moderation.png")
        address = page.url
        page.goto(server + "/posts/hello", wait_until="load")
        assert "My first comment here." not in page.locator("main").inner_text()
        page.goto(address, wait_until="load")  # found again at its permalink, by its author
        assert "awaiting moderation" in page.locator(".form-notice").inner_text()
