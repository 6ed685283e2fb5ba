"""The post editor in a real browser: a real ``fedblog serve``, headless Chromium, JavaScript off.

Logs in, writes a post, uploads an image (the page shows the Markdown to paste), previews,
publishes, and finds the post with its picture on the home page. Screenshots land in
``test-artifacts/`` for a human to look at.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from tests.browser import admin_serve, assert_fits_phone, chromium, desktop_page, log_in, phone_page, save_shot

pytestmark = pytest.mark.browser


def _picture(path: Path, size: tuple[int, int], colour: tuple[int, int, int]) -> Path:
    img = Image.new("RGB", size, colour)
    draw = ImageDraw.Draw(img)
    for i in range(0, size[0], 80):
        draw.rectangle((i, size[1] // 3, i + 40, 2 * size[1] // 3), fill=(250, 250, 250))
    img.save(path, format="JPEG", quality=85)
    return path


def test_write_upload_preview_publish_without_javascript(tmp_path: Path, database_url: str) -> None:
    photo = _picture(tmp_path / "harbour.jpg", (1600, 1000), (30, 90, 160))
    cover = _picture(tmp_path / "cover.jpg", (1200, 500), (170, 60, 40))
    with admin_serve(tmp_path, database_url) as editor_server, chromium() as browser:
        page = desktop_page(browser)
        log_in(page, editor_server, "/admin/posts")
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
        save_shot(page, "admin-editor.png")
        # nothing that a "default-src 'self'" Content-Security-Policy would block, in what we sent
        # (the browser itself adds style="" to the inputs it fills)
        sent = page.request.get(editor_server + "/admin/posts/new").text()
        assert re.findall(r"<script[^>]*>", sent) == ['<script src="/static/editor.js" defer>']
        assert "<script src=\"/static/editor.js\" defer></script>" in sent  # no inline code
        assert "<style" not in sent and " style=" not in sent

        ppage = phone_page(browser, page.context.storage_state())
        ppage.goto(editor_server + "/admin/posts/new", wait_until="load")
        assert_fits_phone(ppage, "the editor")
        save_shot(ppage, "admin-editor-mobile.png")
        ppage.context.close()

        page.click("button[value=publish]")
        assert "/admin/posts/" in page.url and page.locator(".admin-notice").inner_text() == "Published."
        assert page.locator("#slug").get_attribute("readonly") is not None
        edit_url = page.url

        # with JavaScript on, "Insert into the text" puts the image's Markdown at the cursor
        scripted = browser.new_context(viewport={"width": 1280, "height": 900},
                                       storage_state=page.context.storage_state())
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
        save_shot(page, "admin-posts.png")

        page.goto(editor_server + "/", wait_until="load")
        assert page.locator("text=A walk by the harbour").count() >= 1
        save_shot(page, "editor-home.png")
        page.goto(editor_server + "/posts/a-walk-by-the-harbour", wait_until="load")
        img = page.locator(".post-body img")
        assert img.count() == 1 and img.get_attribute("width") == "1600"
        loaded = page.evaluate("() => [...document.images].filter(i => i.naturalWidth > 0).length")
        assert loaded >= 2, "the cover and the inline image should both load"
        save_shot(page, "editor-post.png")
        page.context.close()
