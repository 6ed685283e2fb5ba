"""Shared pieces of the admin browser tests: a real ``fedblog serve`` with an admin password,
headless Chromium (Playwright), logging in through the form, and screenshots for a human to look at."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlmodel import Session

from fedblog.services import build_services
from fedblog.settings import load_settings
from fedblog.store.db import migrate, session_scope
from tests.flows.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS
from tests.servers import clean_env, fedblog_serve, free_port

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

PASSWORD = "a long browser test passphrase"


@contextlib.contextmanager
def admin_serve(tmp_path: Path, database_url: str,
                seed: Callable[[Session, datetime], None] | None = None) -> Iterator[str]:
    """A real ``fedblog serve`` (worker off, named "Field Notes") whose admin password is PASSWORD.

    The database is migrated, then ``seed(session, now)`` fills it, before the server starts."""
    if not CHROMIUM.exists():
        pytest.skip("Chromium not installed at /usr/bin/chromium: apt-get install chromium")
    port = free_port()
    env = clean_env(FEDBLOG_BASE_URL=f"http://127.0.0.1:{port}", FEDBLOG_DATA_DIR=str(tmp_path / "data"),
                    FEDBLOG_DATABASE_URL=database_url, FEDBLOG_WORKER="off", FEDBLOG_NAME="Field Notes")
    svc = build_services(load_settings(env))
    migrate(svc.engine)
    if seed is not None:
        with session_scope(svc.engine) as s:
            seed(s, datetime.now(UTC))
    svc.engine.dispose()
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD)
    done = subprocess.run([sys.executable, "-m", "fedblog", "admin", "set-password", "--password-file", str(pw)],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    with fedblog_serve(env, port, tmp_path / "server.log", "/admin/login") as base:
        yield base


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """Headless Chromium from /usr/bin/chromium, closed at the end; test-artifacts/ exists."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def desktop_page(browser: Browser) -> Page:
    """A page in a new 1280x900 context with JavaScript off."""
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 900})
    return context.new_page()


def log_in(page: Page, base: str, path: str, password: str = PASSWORD) -> None:
    """Open ``path``, log in through the form it redirects to, and land back on ``path``."""
    page.goto(base + path, wait_until="load")
    page.fill("#password", password)
    page.click("button[type=submit]")
    assert page.url == base + path


def save_shot(page: Page, name: str) -> None:
    """A full-page screenshot in test-artifacts/ for a human to look at."""
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def phone_page(browser: Browser, storage_state: Any = None) -> Page:
    """A page in a new 390x844 mobile context with JavaScript off (logged in if given a storage state)."""
    context = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844},
                                  is_mobile=True, storage_state=storage_state)
    return context.new_page()


def assert_fits_phone(page: Page, what: str) -> None:
    """The page is no wider than the phone's screen (one pixel of rounding allowed)."""
    scroll_width, inner = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll_width <= inner + 1, f"{what} overflows a 390px screen: {scroll_width}"
