"""The pages under their Content-Security-Policy in headless Chromium: no violation reported.

A real ``fedblog serve --demo``; one comment is given a remote (https) avatar, as fediverse
replies have. Chromium logs every blocked script, style, image or frame to the console
("Refused to ..."); the test collects those messages on every page, error pages included. The
admin area is checked the same way: its login form, then its pages with a logged-in session.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, create_engine, select

from fedblog.store.tables import Interaction
from tests.browser import PASSWORD, chromium
from tests.flows.test_browser import CHROMIUM, DEMO
from tests.flows.test_browser_admin import admin_server  # noqa: F401  (the fixture: a seeded blog with a password)
from tests.servers import clean_env, fedblog_serve, free_port

pytestmark = pytest.mark.browser
PAGES = [(DEMO, 200), ("/", 200), ("/archive", 200), ("/about", 200), ("/posts/nope", 404), ("/?page=x", 400),
         ("/interact?uri=x", 400)]


def test_pages_render_with_no_csp_violation(tmp_path: Path, database_url: str) -> None:
    if not CHROMIUM.exists():
        pytest.skip("Chromium not installed at /usr/bin/chromium: apt-get install chromium")
    port = free_port()
    env = clean_env(FEDBLOG_BASE_URL=f"http://127.0.0.1:{port}", FEDBLOG_DATA_DIR=str(tmp_path / "data"),
                    FEDBLOG_DATABASE_URL=database_url, FEDBLOG_WORKER="off")
    with fedblog_serve(env, port, tmp_path / "server.log", "/about", "--demo") as base:
        engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
        with Session(engine) as s:  # a remote avatar, before the post page is first rendered
            first = s.exec(select(Interaction).order_by(Interaction.id)).first()
            assert first is not None
            first.author_avatar = "https://avatars.invalid/alice.png"
            s.add(first)
            s.commit()
        engine.dispose()
        with chromium() as browser:
            page = browser.new_page()
            messages: list[str] = []
            page.on("console", lambda m: messages.append(f"{m.type}: {m.text}"))
            for path, status in PAGES:
                response = page.goto(base + path, wait_until="load")
                assert response is not None and response.status == status, path
                csp = response.headers.get("content-security-policy", "")
                assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, (path, csp)
                if path == DEMO:
                    assert page.locator('img[src="https://avatars.invalid/alice.png"]').count() == 1
                    assert page.eval_on_selector("main", "e => getComputedStyle(e).maxWidth") not in ("none", "")
            violations = [m for m in messages if "Content Security Policy" in m or "Refused to" in m]
            assert violations == [], violations


ADMIN_PAGES = ["/admin", "/admin/posts", "/admin/posts/new", "/admin/posts/1/edit", "/admin/moderation",
               "/admin/profile"]


def test_admin_pages_render_with_no_csp_violation(admin_server: str) -> None:  # noqa: F811
    """The login form, then the admin pages with a logged-in session (JavaScript on, as a browser has it)."""
    with chromium() as browser:
        page = browser.new_page()
        messages: list[str] = []
        page.on("console", lambda m: messages.append(f"{m.type}: {m.text}"))
        response = page.goto(admin_server + "/admin/login", wait_until="load")
        assert response is not None and response.status == 200
        assert "default-src 'self'" in response.headers.get("content-security-policy", "")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        assert page.url == admin_server + "/admin"
        for path in ADMIN_PAGES:
            response = page.goto(admin_server + path, wait_until="load")
            assert response is not None and response.status == 200, path
            assert page.url == admin_server + path, f"{path}: not logged in ({page.url})"
            csp = response.headers.get("content-security-policy", "")
            assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, (path, csp)
        violations = [m for m in messages if "Content Security Policy" in m or "Refused to" in m]
        assert violations == [], violations
