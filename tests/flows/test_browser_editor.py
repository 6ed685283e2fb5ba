"""The post editor in a real browser: a real ``fedblog serve``, headless Chromium, JavaScript off.

Logs in, writes a post, uploads an image (the page shows the Markdown to paste), previews,
publishes, and finds the post with its picture on the home page. Screenshots land in
``test-artifacts/`` for a human to look at.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from fedblog.services import build_services
from fedblog.settings import load_settings
from fedblog.store.db import migrate
from tests.flows.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS
from tests.servers import clean_env, fedblog_serve, free_port

pytestmark = pytest.mark.browser
PASSWORD = "a long browser test passphrase"


def _picture(path: Path, size: tuple[int, int], colour: tuple[int, int, int]) -> Path:
    img = Image.new("RGB", size, colour)
    draw = ImageDraw.Draw(img)
    for i in range(0, size[0], 80):
        draw.rectangle((i, size[1] // 3, i + 40, 2 * size[1] // 3), fill=(250, 250, 250))
    img.save(path, format="JPEG", quality=85)
    return path


@pytest.fixture
def editor_server(tmp_path: Path, database_url: str) -> Iterator[str]:
    if not CHROMIUM.exists():
        pytest.skip("Chromium not installed at /usr/bin/chromium: apt-get install chromium")
    port = free_port()
    env = clean_env(
        FEDBLOG_BASE_URL=f"http://127.0.0.1:{port}",
        FEDBLOG_DATA_DIR=str(tmp_path / "data"),
        FEDBLOG_DATABASE_URL=database_url,
        FEDBLOG_WORKER="off",
        FEDBLOG_NAME="Field Notes",
    )
    svc = build_services(load_settings(env))
    migrate(svc.engine)
    svc.engine.dispose()
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD)
    done = subprocess.run([sys.executable, "-m", "fedblog", "admin", "set-password", "--password-file", str(pw)],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    with fedblog_serve(env, port, tmp_path / "server.log", "/admin/login") as base:
        yield base


def test_write_upload_preview_publish_without_javascript(editor_server: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    photo = _picture(tmp_path / "harbour.jpg", (1600, 1000), (30, 90, 160))
    cover = _picture(tmp_path / "cover.jpg", (1200, 500), (170, 60, 40))
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.goto(editor_server + "/admin/posts", wait_until="load")
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            assert page.url == editor_server + "/admin/posts"
            page.click("text=Write a post")
            assert page.locator("h1").inner_text() == "New post"
            page.fill("#title", "A walk by the harbour")
            page.fill("#body", "The boats were out early.\n\nThe water was *very* calm.")
            page.fill("#tags", "walks, sea")
            page.set_input_files("#cover_file", str(cover))
            page.fill("#cover_alt", "Red roofs against the sky")
            page.set_input_files("#image_file", str(photo))
            page.fill("#image_alt", "Blue water with white stripes")
            page.click("button:has-text('Upload')")
            assert page.locator(".admin-error").count() == 0, page.content()
            snippet = page.locator(".admin-snippet").input_value()
            assert snippet.startswith("![Blue water with white stripes](/media/uploads/")
            assert page.locator("#title").input_value() == "A walk by the harbour"  # nothing typed is lost
            page.fill("#body", page.locator("#body").input_value() + "\n\n" + snippet + "\n\nThen home.")
            page.click("button[value=preview]:has-text('Preview')")
            assert page.locator(".admin-preview .post-body img").count() == 1
            assert page.locator(".admin-preview img.post-cover").count() == 1
            page.screenshot(path=str(ARTIFACTS / "admin-editor.png"), full_page=True)
            # nothing that a "default-src 'self'" Content-Security-Policy would block, in what we sent
            # (the browser itself adds style="" to the inputs it fills)
            sent = page.request.get(editor_server + "/admin/posts/new").text()
            assert re.findall(r"<script[^>]*>", sent) == ['<script src="/static/editor.js" defer>']
            assert "<script src=\"/static/editor.js\" defer></script>" in sent  # no inline code
            assert "<style" not in sent and " style=" not in sent

            phone = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844},
                                        is_mobile=True, storage_state=context.storage_state())
            ppage = phone.new_page()
            ppage.goto(editor_server + "/admin/posts/new", wait_until="load")
            scroll_width, inner = ppage.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
            assert scroll_width <= inner + 1, f"the editor overflows a 390px screen: {scroll_width}"
            ppage.screenshot(path=str(ARTIFACTS / "admin-editor-mobile.png"), full_page=True)
            phone.close()

            page.click("button[value=publish]")
            assert "/admin/posts/" in page.url and page.locator(".admin-notice").inner_text() == "Published."
            assert page.locator("#slug").get_attribute("readonly") is not None
            edit_url = page.url

            # with JavaScript on, "Insert into the text" puts the image's Markdown at the cursor
            scripted = browser.new_context(viewport={"width": 1280, "height": 900},
                                           storage_state=context.storage_state())
            spage = scripted.new_page()
            errors: list[str] = []
            spage.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            spage.on("pageerror", lambda e: errors.append(str(e)))
            spage.goto(edit_url, wait_until="load")  # the published post's editor lists its image
            spage.fill("#body", "Before.")
            spage.locator(".admin-insert").first.click()
            assert spage.locator("#body").input_value() == "Before.\n\n" + snippet + "\n\n"
            assert not errors, errors  # the CSP let the script run, and it ran cleanly
            scripted.close()

            page.goto(editor_server + "/admin/posts", wait_until="load")
            assert page.locator(".admin-table tbody tr").count() == 1
            page.screenshot(path=str(ARTIFACTS / "admin-posts.png"), full_page=True)

            page.goto(editor_server + "/", wait_until="load")
            assert page.locator("text=A walk by the harbour").count() >= 1
            page.screenshot(path=str(ARTIFACTS / "editor-home.png"), full_page=True)
            page.goto(editor_server + "/posts/a-walk-by-the-harbour", wait_until="load")
            img = page.locator(".post-body img")
            assert img.count() == 1 and img.get_attribute("width") == "1600"
            loaded = page.evaluate("() => [...document.images].filter(i => i.naturalWidth > 0).length")
            assert loaded >= 2, "the cover and the inline image should both load"
            page.screenshot(path=str(ARTIFACTS / "editor-post.png"), full_page=True)
            context.close()
        finally:
            browser.close()
