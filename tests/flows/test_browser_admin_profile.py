"""The profile page in a real browser: a real ``fedblog serve``, headless Chromium, JavaScript off.

Logs in, changes the title, description, a profile field, uploads an avatar and a header, saves,
and sees them on the about page. Screenshots land in ``test-artifacts/`` for a human to look at.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from sqlmodel import Session

from fedblog.store.tables import Post
from tests.browser import admin_serve, assert_fits_phone, chromium, desktop_page, log_in, phone_page, save_shot

pytestmark = pytest.mark.browser


def _seed(s: Session, now: datetime) -> None:
    for i, title in enumerate(("On compost", "Seed catalogues, read closely", "A wet spring")):
        when = now - timedelta(days=10 - i)
        s.add(Post(slug=f"p{i}", ap_path=f"/posts/p{i}", title=title, content_md="x", content_html="<p>x</p>",
                   author_name="Owner", published_at=when, updated_at=when))


def _images(folder: Path) -> tuple[Path, Path]:
    avatar = Image.new("RGB", (512, 512), (46, 94, 78))
    draw = ImageDraw.Draw(avatar)
    draw.ellipse((96, 96, 416, 416), fill=(240, 200, 90))
    header = Image.new("RGB", (1500, 500), (220, 232, 214))
    hdraw = ImageDraw.Draw(header)
    for x in range(0, 1500, 60):
        hdraw.line((x, 0, x + 250, 500), fill=(120, 160, 110), width=8)
    a, h = folder / "avatar.png", folder / "header.jpg"
    avatar.save(a)
    header.save(h, quality=85)
    return a, h


def test_edit_the_profile_with_an_avatar_and_see_it_on_the_about_page(tmp_path: Path, database_url: str) -> None:
    avatar, header = _images(tmp_path)
    with admin_serve(tmp_path, database_url, _seed) as server, chromium() as browser:
        page = desktop_page(browser)
        log_in(page, server, "/admin/profile")
        assert page.locator("#name").input_value() == "Field Notes"
        page.fill("#name", "Garden Field Notes")
        page.fill("#description", "Notes from a **small** garden. Photos at <https://photos.example/>.")
        page.fill("[name=field_name_1]", "Photos")
        page.fill("[name=field_value_1]", "https://photos.example/")
        page.set_input_files("#avatar", str(avatar))
        page.set_input_files("#header", str(header))
        save_shot(page, "admin-profile-form.png")
        page.click("text=Save the profile")
        assert page.url.startswith(server + "/admin/profile?saved=")
        assert "Saved." in page.locator(".admin-notice").inner_text()
        assert page.locator("#name").input_value() == "Garden Field Notes"
        # pin a post from the list
        page.locator(".admin-pins li", has_text="A wet spring").locator("button").click()
        assert page.locator(".admin-pins li").first.inner_text().startswith("A wet spring")
        save_shot(page, "admin-profile-saved.png")
        page.goto(server + "/admin/profile", wait_until="load")  # as served (Playwright marks what it touched)
        assert page.locator("script, [style], style").count() == 0

        page.goto(server + "/about", wait_until="load")
        assert page.title() == "About · Garden Field Notes"
        assert page.locator("h1.p-name").inner_text() == "Garden Field Notes"
        assert page.locator(".p-note strong").inner_text() == "small"
        img = page.locator("img.about-avatar")
        assert "/media/uploads/" in (img.get_attribute("src") or "")
        assert page.evaluate("() => document.querySelector('img.about-avatar').naturalWidth") == 400
        assert page.evaluate("() => document.querySelector('img.about-header').naturalWidth") == 1500
        link = page.locator(".facts a[rel~=me]", has_text="photos.example")
        assert link.count() == 1 and link.get_attribute("href") == "https://photos.example/"
        save_shot(page, "about-profile.png")
        ppage = phone_page(browser)
        ppage.goto(server + "/about", wait_until="load")
        assert_fits_phone(ppage, "/about")
        save_shot(ppage, "about-profile-mobile.png")
        ppage.context.close()
        page.context.close()
