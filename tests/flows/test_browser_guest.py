"""A guest's page in a real browser: a real ``fedblog serve``, headless Chromium, JavaScript off.

Checks that the stylesheet applies, the comment links are there, and a phone-width viewport does
not scroll sideways; screenshots land in ``test-artifacts/`` for a human to look at.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from fedblog.blog import interactions as recorder
from fedblog.blog.posts import parse_post_source
from fedblog.federation.guests import guest_actor
from fedblog.federation.publishing import publish
from fedblog.services import build_services
from fedblog.settings import load_settings
from fedblog.store.db import migrate, session_scope
from tests.browser import chromium
from tests.flows.test_browser import ARTIFACTS, CHROMIUM
from tests.servers import clean_env, fedblog_serve, free_port

pytestmark = pytest.mark.browser
LONG_NAME = "Gwendolyn Featherstonehaugh-Cholmondeley"


def test_the_guest_page_reads_well_on_a_phone_and_a_desktop(tmp_path: Path, database_url: str) -> None:
    if not CHROMIUM.exists():
        pytest.skip("Chromium not installed at /usr/bin/chromium: apt-get install chromium")
    port = free_port()
    env = clean_env(FEDBLOG_BASE_URL=f"http://127.0.0.1:{port}", FEDBLOG_DATA_DIR=str(tmp_path / "data"),
                    FEDBLOG_DATABASE_URL=database_url, FEDBLOG_WORKER="off", FEDBLOG_NAME="Field Notes")
    svc = build_services(load_settings(env))
    migrate(svc.engine)
    now = datetime.now(UTC)
    with session_scope(svc.engine) as session:
        for slug, title in (("tides", "Notes on the tides"), ("moths", "A summer of moths")):
            post = publish(session, svc, parse_post_source(f"---\ntitle: {title}\nslug: {slug}\n---\nBody.\n")).post
            assert post.id is not None
            guest = guest_actor(session, svc, name=LONG_NAME, email="g@mail.example",
                                website="https://a-rather-long-personal-website-name.example/journal/", now=now)
            assert guest.id is not None
            author = recorder.Author(LONG_NAME, url="https://a-rather-long-personal-website-name.example/journal/",
                                     actor_id=guest.id)
            text = f"<p>Thank you for “{title}”. " + "I read it twice. " * 12 + "</p>"
            recorder.record_web_comment(session, "approve-all", author=author, post_id=post.id, parent_id=None,
                                        content_html=text, published_at=now, federated=True)
        number = guest.id
    svc.engine.dispose()
    page_path = f"/guests/{number}"
    with fedblog_serve(env, port, tmp_path / "server.log", page_path) as base, chromium() as browser:
        for name, viewport, mobile in (("phone", {"width": 390, "height": 844}, True),
                                       ("desktop", {"width": 1280, "height": 900}, False)):
            context = browser.new_context(java_script_enabled=False, viewport=viewport, is_mobile=mobile)
            page = context.new_page()
            response = page.goto(base + page_path, wait_until="load")
            assert response is not None and response.status == 200
            assert page.locator("h1").inner_text() == LONG_NAME
            links = page.locator(".guest-comments a")
            assert links.count() == 2
            titles = {links.nth(i).inner_text() for i in range(2)}
            assert titles == {"on “Notes on the tides”", "on “A summer of moths”"}
            # the stylesheet applies: the comment list is unbulleted, as the archive's
            assert page.locator(".guest-comments ul").evaluate("e => getComputedStyle(e).listStyleType") == "none"
            width = page.evaluate("() => document.documentElement.scrollWidth")
            assert width <= viewport["width"], f"{name}: scrollWidth={width} at {viewport['width']} px"
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"guest-page-{name}.png"), full_page=True)
            context.close()
