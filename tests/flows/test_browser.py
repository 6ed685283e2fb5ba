"""The demo post in a real browser: a real ``fedblog serve`` process, headless Chromium, no JS.

Checks what only a browser can: the comments are visible, replies are visually nested, the
stylesheet applies, and a phone-width viewport does not scroll sideways. Full-page screenshots
land in ``test-artifacts/`` for a human to look at.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import clean_env, fedblog_serve, free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
    "--no-first-run", "--disable-component-update", "--disable-sync",
]
DEMO = "/posts/china-sent-back-north-korean-defectors"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = pytest.mark.browser


@contextlib.contextmanager
def demo_server(tmp_path: Path, database_url: str) -> Iterator[str]:
    """``python -m fedblog serve --demo`` on a free port; yields its base URL; always stopped."""
    if not CHROMIUM.exists():
        pytest.skip("Chromium not installed at /usr/bin/chromium: apt-get install chromium")
    port = free_port()
    env = clean_env(  # no settings leak in from the shell
        FEDBLOG_BASE_URL=f"http://127.0.0.1:{port}",
        FEDBLOG_DATA_DIR=str(tmp_path / "data"),
        FEDBLOG_DATABASE_URL=database_url,
        FEDBLOG_WORKER="off",
    )
    with fedblog_serve(env, port, tmp_path / "server.log", DEMO, "--demo") as base:
        yield base


@pytest.fixture
def live_server(tmp_path: Path, database_url: str) -> Iterator[str]:
    with demo_server(tmp_path, database_url) as base:
        yield base


def test_demo_post_renders_threaded_without_javascript(live_server: str) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    url = live_server + DEMO
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            # -- desktop, JavaScript disabled: the page must work without it
            context = browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 900})
            try:
                page = context.new_page()
                response = page.goto(url, wait_until="load")
                assert response is not None and response.status == 200

                comments = page.locator("article.p-comment")
                assert comments.count() == 43
                for i in range(43):
                    assert comments.nth(i).is_visible(), f"comment {i + 1} is not visible"

                parent_li = page.locator("li.comment").filter(
                    has=page.locator(":scope > article .p-author .p-name", has_text="jkitchstk")
                )
                assert parent_li.count() == 1
                parent_article = parent_li.locator(":scope > article")
                reply = parent_li.locator(":scope > ol.replies > li.comment > article.p-comment").filter(
                    has_text="#12- Stop talking out of your ass."
                )
                assert reply.count() == 1
                assert reply.locator(".p-author .p-name").inner_text() == "characteristic"
                assert reply.is_visible()
                pbox, rbox = parent_article.bounding_box(), reply.bounding_box()
                assert pbox is not None and rbox is not None
                assert rbox["x"] >= pbox["x"] + 10, f"reply not indented: parent x={pbox['x']}, reply x={rbox['x']}"
                assert rbox["y"] > pbox["y"], "reply is not below its parent"

                pingback = page.locator("#comments ol.thread > li.pingback")  # among the comments, by date
                assert pingback.count() == 1 and pingback.is_visible()
                assert pingback.inner_text().startswith("Pingback: Korea: Criticisms Mount")
                last = page.locator("#comments ol.thread > li").last.bounding_box()
                assert last is not None and last == pingback.bounding_box(), "the pingback (the latest) is not last"

                # the stylesheet applied (evaluate() runs in Playwright's own world: page JS stays off)
                main_max_width = page.eval_on_selector("main", "e => getComputedStyle(e).maxWidth")
                body_font = page.eval_on_selector("body", "e => getComputedStyle(e).fontFamily")
                assert main_max_width not in ("none", ""), "style.css did not apply: main has no max-width"
                assert "Iowan Old Style" in body_font, f"style.css did not apply: body font is {body_font!r}"
                header_bottom = page.eval_on_selector(".site-header", "e => e.getBoundingClientRect().bottom")
                h1_top = page.eval_on_selector("h1", "e => e.getBoundingClientRect().top")
                assert h1_top - header_bottom >= 16, (
                    f"title is flush against the header ({h1_top - header_bottom:.0f}px)"
                )
                assert page.evaluate("() => document.title").startswith("China sent back North Korean defectors")
                page.screenshot(path=str(ARTIFACTS / "demo-post.png"), full_page=True)
            finally:
                context.close()

            # -- phone width: no sideways scrolling
            context = browser.new_context(
                java_script_enabled=False,
                viewport={"width": 390, "height": 844},
                device_scale_factor=1,
                is_mobile=True,
            )
            try:
                page = context.new_page()
                page.goto(url, wait_until="load")
                scroll_width, inner_width = page.evaluate(
                    "() => [document.documentElement.scrollWidth, window.innerWidth]"
                )
                assert inner_width == 390
                assert scroll_width <= inner_width + 1, f"page overflows horizontally: scrollWidth={scroll_width}"
                wide = page.evaluate(
                    """() => [...document.querySelectorAll('main *')]
                        .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
                        .slice(0, 5).map(e => e.tagName + '.' + e.className)"""
                )
                assert wide == [], f"elements stick out of a 390px viewport: {wide}"
                page.screenshot(path=str(ARTIFACTS / "demo-post-mobile.png"), full_page=True)
            finally:
                context.close()

            # -- dark mode, for the human looking at the artifacts
            context = browser.new_context(
                java_script_enabled=False, viewport={"width": 1280, "height": 900}, color_scheme="dark"
            )
            try:
                page = context.new_page()
                page.goto(url, wait_until="load")
                page.screenshot(path=str(ARTIFACTS / "demo-post-dark.png"), full_page=True)
            finally:
                context.close()
        finally:
            browser.close()


LONG_URL = "https://example.org/" + "a-very-long-path-segment-" * 7 + "x" * 5  # 200 characters
LONG_POST = f"""---
title: A long link
slug: long-link
---
See {LONG_URL} for the details, and <{LONG_URL}> as a link, and the word {"w" * 120}.
"""


def test_a_long_url_in_a_post_does_not_widen_a_phone_page(tmp_path: Path, database_url: str) -> None:
    """A 200-character URL in the body wraps inside a 390 px viewport (it made the page 741 px wide)."""
    if not CHROMIUM.exists():
        pytest.skip("Chromium not installed at /usr/bin/chromium: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    assert len(LONG_URL) == 200
    port = free_port()
    env = clean_env(FEDBLOG_BASE_URL=f"http://127.0.0.1:{port}", FEDBLOG_DATA_DIR=str(tmp_path / "data"),
                    FEDBLOG_DATABASE_URL=database_url, FEDBLOG_WORKER="off")
    source = tmp_path / "long.md"
    source.write_text(LONG_POST)
    for args in (["init"], ["post", "publish", str(source)]):
        done = subprocess.run([sys.executable, "-m", "fedblog", *args], env=env, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
    with fedblog_serve(env, port, tmp_path / "server.log", "/posts/long-link") as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844},
                                          device_scale_factor=1, is_mobile=True)
            page = context.new_page()
            for path in ("/posts/long-link", "/"):
                response = page.goto(base + path, wait_until="load")
                assert response is not None and response.status == 200
                assert LONG_URL in page.content()
                scroll_width = page.evaluate("() => document.documentElement.scrollWidth")
                assert scroll_width <= 390, f"{path}: scrollWidth={scroll_width} at a 390 px viewport"
            context.close()
        finally:
            browser.close()
