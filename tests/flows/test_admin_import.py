"""WordPress import from the admin: upload (multipart, streamed to the data directory), a
background import, and a progress page that refreshes itself without JavaScript."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import pytest

from fedblog.admin import wp_upload
from fedblog.services import Services
from tests.admin_http import csrf_of, login
from tests.flows.test_admin import PASSWORD, owner  # noqa: F401  (the fixture)

pytestmark = pytest.mark.anyio
EXPORT = Path(__file__).parent.parent / "data" / "wordpress-6-export.xml"


async def _wait_done(services: Services) -> None:
    for _ in range(500):  # a bounded wait for the background thread, not a timing assertion
        job = wp_upload.current(services)
        if job is not None and not job.running:
            return
        await anyio.sleep(0.02)
    raise AssertionError("the import did not finish")


async def test_upload_progress_and_report(services: Services, client: httpx.AsyncClient, owner: str) -> None:  # noqa: F811
    assert (await login(client, PASSWORD)).status_code == 303
    page = await client.get("/admin/import")
    assert page.status_code == 200 and 'enctype="multipart/form-data"' in page.text
    csrf = csrf_of(page.text)
    files = {"file": ("export.xml", EXPORT.read_bytes(), "application/xml")}
    r = await client.post("/admin/import", data={"csrf": "wrong"}, files=files)
    assert r.status_code == 403
    assert not any((services.settings.data_dir / "imports").glob("*"))  # the refused upload is not kept
    r = await client.post("/admin/import", data={"csrf": csrf}, files=files)
    assert r.status_code == 303 and r.headers["location"] == "/admin/import"
    running = await client.get("/admin/import")
    job = wp_upload.current(services)
    assert job is not None
    if job.running:  # while it runs, the page refreshes itself (no script: CSP allows it)
        assert '<meta http-equiv="refresh" content="2">' in running.text
    await _wait_done(services)
    done = await client.get("/admin/import")
    assert 'http-equiv="refresh"' not in done.text
    assert "1 post(s), 1 draft(s)" in done.text and "3 old URL(s) now redirecting" in done.text, done.text
    assert "Done: 5 of 5 items read." in done.text
    assert "Nothing was sent to followers" in done.text and "#9001 by cheap pills" in done.text
    assert "export.xml" in done.text and str(services.settings.data_dir) not in done.text
    post = await client.get("/posts/china-sent-back-north-korean-defectors")
    assert post.status_code == 200 and "The flag of South Korea" in post.text
    assert "China sent back North Korean defectors" in post.text
    assert not any((services.settings.data_dir / "imports").glob("*"))  # the upload is removed after


async def test_a_bad_file_is_reported_and_not_imported(
    services: Services, client: httpx.AsyncClient, owner: str  # noqa: F811
) -> None:
    assert (await login(client, PASSWORD)).status_code == 303
    csrf = csrf_of((await client.get("/admin/import")).text)
    r = await client.post("/admin/import", data={"csrf": csrf},
                          files={"file": ("notes.xml", b"<html><body>not an export</body></html>", "text/xml")})
    assert r.status_code == 303
    await _wait_done(services)
    page = (await client.get("/admin/import")).text
    assert 'id="import-error"' in page and "notes.xml" in page
    r = await client.post("/admin/import", content=b"x=1",
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415
