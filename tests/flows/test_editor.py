"""The post editor over HTTP with a real database: drafts, preview, uploads, publish, schedule, edit, delete.

A follower on a fake Mastodon receives (and verifies the signature of) what the editor sends.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlmodel import Session, select

from fedblog.clock import FrozenClock, utc
from fedblog.jobs import scheduler
from fedblog.jobs.runner import DeliveryRunner
from fedblog.services import Services
from fedblog.store.tables import Media, Post, PostMedia
from tests.admin_http import csrf_of, login
from tests.fediverse.instance import FakeInstance, follow
from tests.fediverse.network import FakeFediverse
from tests.flows.test_admin import PASSWORD, owner  # noqa: F401  (owner is a fixture)
from tests.flows.test_jsonld import _check

pytestmark = pytest.mark.anyio
BLOG = "https://blog.test/users/blog"


def jpeg_with_gps(width: int = 1200, height: int = 800) -> bytes:
    img = Image.new("RGB", (width, height), (40, 120, 200))
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x8825] = {2: (51.0, 30.0, 0.0)}  # GPSInfo: GPSLatitude
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes())
    return buf.getvalue()


def png(width: int = 600, height: int = 400) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (220, 180, 40)).save(buf, format="PNG")
    return buf.getvalue()


async def _follower(services: Services, fediverse: FakeFediverse) -> FakeInstance:
    masto = FakeInstance("mastodon.test", fediverse)
    alice = masto.actor("alice", "Alice")
    assert (await masto.post(alice, BLOG + "/inbox", follow(alice, BLOG))).status_code == 202
    await DeliveryRunner(services, concurrency=2).run_until_idle()
    masto.received.clear()
    return masto


async def _editor(client: httpx.AsyncClient, path: str = "/admin/posts/new") -> str:
    r = await client.get(path)
    assert r.status_code == 200, r.text
    return csrf_of(r.text)


async def _submit(client: httpx.AsyncClient, csrf: str, action: str, *, path: str = "/admin/posts/new",
                  files: dict[str, Any] | None = None, **fields: Any) -> httpx.Response:
    data: dict[str, Any] = {"csrf": csrf, "action": action, "title": "", "body": "", **fields}
    # a file field always goes, as a browser sends an empty one: the body is multipart either way
    return await client.post(path, data=data, files=files or {"image_file": ("", b"", "application/octet-stream")})


def _post(services: Services, **where: Any) -> Post:
    with Session(services.engine) as s:
        return s.exec(select(Post).filter_by(**where)).one()


def _count(services: Services, table: type) -> int:
    with Session(services.engine) as s:
        return len(s.exec(select(table)).all())


async def test_draft_is_not_public_and_preview_keeps_the_text(
    services: Services, client: httpx.AsyncClient, owner: str  # noqa: F811
) -> None:
    await login(client, PASSWORD, "/admin/posts")
    csrf = await _editor(client)
    body = "Some *emphasis* and a [link](https://example.org).\n\n<b>kept</b> & so on"
    r = await _submit(client, csrf, "preview", title="Draft one", body=body, tags="a, b")
    assert r.status_code == 200
    assert "<em>emphasis</em>" in r.text  # the rendered preview
    assert "Some *emphasis* and a [link](https://example.org).\n\n&lt;b&gt;kept&lt;/b&gt; &amp; so on" in r.text
    assert 'value="a, b"' in r.text
    assert _count(services, Post) == 0  # a preview saves nothing
    r = await _submit(client, csrf, "draft", title="Draft one", body=body)
    assert r.status_code == 303 and r.headers["location"].startswith("/admin/posts/")
    post = _post(services, slug="draft-one")  # the slug comes from the title
    assert post.draft and post.content_md == body
    assert (await client.get("/posts/draft-one")).status_code == 404
    listing = await client.get("/admin/posts")
    assert "Draft one" in listing.text and ">draft<" in listing.text
    # an error keeps everything typed: no title
    r = await _submit(client, csrf, "publish", title="", body="Still here, every word.", summary="sum")
    assert r.status_code == 400 and "needs a title" in r.text
    assert "Still here, every word." in r.text and ">sum</textarea>" in r.text


async def test_csrf_missing_or_wrong_is_403_and_nothing_changes(
    services: Services, client: httpx.AsyncClient, owner: str  # noqa: F811
) -> None:
    await login(client, PASSWORD)
    for token in ("", "wrong"):
        r = await _submit(client, token, "publish", title="Nope", body="x")
        assert r.status_code == 403 and "security token" in r.text
    r = await _submit(client, await _editor(client), "draft", title="Yes", body="x")
    post_id = r.headers["location"].split("/")[3]
    r = await client.post(f"/admin/posts/{post_id}/delete", data={"csrf": ""})
    assert r.status_code == 403
    assert _count(services, Post) == 1 and not _post(services, slug="yes").deleted_at


async def test_non_image_upload_is_refused_and_nothing_stored(
    services: Services, client: httpx.AsyncClient, owner: str  # noqa: F811
) -> None:
    await login(client, PASSWORD)
    csrf = await _editor(client)
    r = await _submit(client, csrf, "publish", title="With a fake picture", body="Text I typed.",
                      files={"image_file": ("cat.jpg", b"<html>not a picture</html>", "image/jpeg")})
    assert r.status_code == 400 and "not stored" in r.text and "not an image" in r.text
    assert "Text I typed." in r.text
    assert _count(services, Media) == 0 and _count(services, Post) == 0
    media_dir = services.settings.data_dir / "media"
    assert not media_dir.exists() or not any(media_dir.rglob("*.*"))


async def test_too_large_body_is_413(services: Services, client: httpx.AsyncClient, owner: str) -> None:  # noqa: F811
    await login(client, PASSWORD)
    csrf = await _editor(client)
    r = await _submit(client, csrf, "draft", title="Big", body="x",
                      files={"image_file": ("big.jpg", b"\xff" * (13 * 1024 * 1024), "image/jpeg")})
    assert r.status_code == 413 and "larger than 12 MB" in r.text
    assert _count(services, Post) == 0


async def test_publish_with_images_edit_and_delete_reach_a_follower(
    services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient, clock: FrozenClock,
    owner: str,  # noqa: F811
) -> None:
    clock.advance(17)  # published at 12:00:17: the editor's date field shows 12:00
    masto = await _follower(services, fediverse)
    await login(client, PASSWORD)
    csrf = await _editor(client)
    # upload an inline image (with GPS in its EXIF) and a cover: the page shows the snippet to paste
    r = await _submit(client, csrf, "preview", title="Pictures", body="First words.",
                      image_alt="A blue square",
                      files={"image_file": ("me.jpg", jpeg_with_gps(), "image/jpeg"),
                             "cover_file": ("cover.png", png(), "image/png")},
                      cover_alt="A yellow cover")
    assert r.status_code == 200, r.text
    snippet = re.search(r'value="(!\[A blue square\]\(/media/uploads/[0-9a-f]{64}/full\.jpg\))"', r.text)
    assert snippet, r.text
    keys = re.findall(r'name="attachment" value="([0-9a-f]{64})"', r.text)
    cover = re.search(r'name="cover" value="([0-9a-f]{64})"', r.text)
    assert len(keys) == 1 and cover
    path = snippet.group(1).split("(")[1].rstrip(")")
    # the stored file has no EXIF/GPS, and is served with long cache headers
    served = await client.get(path)
    assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
    assert b"SecretCam" not in served.content and b"Exif" not in served.content
    assert "immutable" in served.headers["cache-control"]
    with Image.open(io.BytesIO(served.content)) as img:
        assert img.size == (1200, 800) and not img.getexif()

    body = f"First words.\n\n{snippet.group(1)}\n"
    r = await _submit(client, csrf, "publish", title="Pictures", body=body, tags="photos",
                      attachment=keys, cover=cover.group(1), cover_alt="A yellow cover",
                      **{f"alt_{keys[0]}": "A blue square"})
    assert r.status_code == 303, r.text
    post = _post(services, slug="pictures")
    assert not post.draft
    page = await client.get("/posts/pictures")
    assert page.status_code == 200
    tag = re.search(r'<img width="1200" height="800" srcset="([^"]+)"[^>]*src="https://blog.test/media/uploads/',
                    page.text)
    assert tag and "480w" in tag.group(1) and "1200w" in tag.group(1)
    cover_tag = re.search(r'<img class="u-featured post-cover" src="([^"]+)" width="600" height="400" srcset="([^"]+)"',
                          page.text)
    assert cover_tag and cover_tag.group(1).endswith(f"{cover.group(1)}/full.png"), page.text
    assert cover_tag.group(2).endswith("full.png 600w") and "480w" in cover_tag.group(2)
    await DeliveryRunner(services, concurrency=2).run_until_idle()
    creates = masto.activities("Create")
    assert len(creates) == 1
    article = creates[0]["object"]
    assert article["image"] == {"type": "Image", "mediaType": "image/png", "width": 600, "height": 400,
                                "url": f"https://blog.test/media/uploads/{cover.group(1)}/full.png",
                                "name": "A yellow cover"}
    images = [a for a in article["attachment"] if a["type"] == "Image"]
    assert [(a["mediaType"], a["width"], a["height"], a.get("name")) for a in images] == [
        ("image/png", 600, 400, "A yellow cover"), ("image/jpeg", 1200, 800, "A blue square")]
    assert images[1]["url"] == f"https://blog.test{path}"
    _check(creates[0])  # JSON-LD: every term we set survives expansion (pyld)

    # edit: the slug is fixed now; an Update goes out
    edit = f"/admin/posts/{post.id}/edit"
    form = (await client.get(edit)).text
    shown = re.search(r'id="date" name="date" type="datetime-local" value="([^"]+)"', form)
    assert shown and shown.group(1) == f"{post.published_at:%Y-%m-%dT%H:%M}"
    csrf = csrf_of(form)
    r = await _submit(client, csrf, "publish", path=edit, title="Pictures, edited", slug="other", body=body + "More.",
                      date=shown.group(1),
                      attachment=keys, cover=cover.group(1), **{f"alt_{keys[0]}": "A blue square"})
    assert r.status_code == 303, r.text
    edited = _post(services, id=post.id)
    assert edited.slug == "pictures"
    assert utc(post.published_at).second == 17 and utc(edited.published_at) == utc(post.published_at)
    # (the date field shows minutes; resubmitting it unchanged keeps the exact time)
    await DeliveryRunner(services, concurrency=2).run_until_idle()
    updates = masto.activities("Update")
    assert len(updates) == 1 and updates[0]["object"]["name"] == "Pictures, edited"

    # delete: a confirmation page first, then Delete and 410
    confirm = await client.get(f"/admin/posts/{post.id}/delete")
    assert confirm.status_code == 200 and 'method="post"' in confirm.text
    assert _post(services, id=post.id).deleted_at is None
    r = await client.post(f"/admin/posts/{post.id}/delete", data={"csrf": csrf_of(confirm.text)})
    assert r.status_code == 303
    assert (await client.get("/posts/pictures")).status_code == 410
    await DeliveryRunner(services, concurrency=2).run_until_idle()
    deletes = masto.activities("Delete")
    assert len(deletes) == 1 and deletes[0]["object"]["id"] == "https://blog.test/posts/pictures"
    assert ">deleted<" in (await client.get("/admin/posts")).text
    with Session(services.engine) as s:
        assert len(s.exec(select(PostMedia)).all()) == 2


async def test_backdated_publish_is_quiet_with_the_cli_notice_unless_sent_as_new(
    services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient, owner: str  # noqa: F811
) -> None:
    masto = await _follower(services, fediverse)
    await login(client, PASSWORD)
    csrf = await _editor(client)
    r = await _submit(client, csrf, "publish", title="Old", body="From last year.", date="2025-10-01T09:30",
                      tz="+02:00")
    assert r.status_code == 303
    page = await client.get(r.headers["location"])
    assert "published quietly: dated 2025-10-01 07:30 UTC" in page.text and "send as new" in page.text
    r = await _submit(client, csrf, "publish", title="Older", body="x", date="2025-10-01T09:30",
                      send_as_new="1")
    await DeliveryRunner(services, concurrency=2).run_until_idle()
    assert [a["object"]["name"] for a in masto.activities("Create")] == ["Older"]


async def test_scheduled_post_is_published_once_by_the_worker(
    services: Services, fediverse: FakeFediverse, client: httpx.AsyncClient, clock: FrozenClock,
    owner: str,  # noqa: F811
) -> None:
    masto = await _follower(services, fediverse)
    await login(client, PASSWORD)
    csrf = await _editor(client)
    r = await _submit(client, csrf, "schedule", title="Later", body="Tomorrow's words.",
                      date="2026-11-01T13:30", tz="-01:00")  # 14:30 UTC; the test clock says 12:00 UTC
    assert r.status_code == 303, r.text
    post = _post(services, slug="later")
    assert post.draft and post.scheduled_at is not None
    assert ">scheduled<" in (await client.get("/admin/posts")).text
    assert await scheduler.run_once(services) == 0  # not due yet
    assert (await client.get("/posts/later")).status_code == 404
    clock.advance(2 * 3600 + 29 * 60)
    assert await scheduler.run_once(services) == 0  # 14:29
    clock.advance(60)
    assert await scheduler.run_once(services) == 1
    assert await scheduler.run_once(services) == 0  # once
    published = _post(services, slug="later")
    assert not published.draft and published.scheduled_at is None
    assert (await client.get("/posts/later")).status_code == 200
    await DeliveryRunner(services, concurrency=2).run_until_idle()
    creates = masto.activities("Create")
    assert len(creates) == 1 and creates[0]["object"]["name"] == "Later"
    # a claim that lost the race (another worker published it) publishes nothing
    from fedblog.admin.editor import publish_scheduled
    assert publish_scheduled(services, published.id or 0, clock.now()) is None


async def test_schedule_in_the_past_and_bad_offset_are_form_errors(
    services: Services, client: httpx.AsyncClient, owner: str  # noqa: F811
) -> None:
    await login(client, PASSWORD)
    csrf = await _editor(client)
    r = await _submit(client, csrf, "schedule", title="T", body="B", date="2020-01-01T10:00")
    assert r.status_code == 400 and "in the future" in r.text
    r = await _submit(client, csrf, "schedule", title="T", body="B", date="2030-01-01T10:00", tz="+25:00")
    assert r.status_code == 400 and "offset" in r.text
    r = await _submit(client, csrf, "publish", title="T", body="B", date="2030-01-01T10:00")
    assert r.status_code == 400 and "Schedule" in r.text
    assert _count(services, Post) == 0


def _scheduled_draft(services: Services, slug: str, at: Any) -> int:
    from fedblog.blog.posts import PostDraft
    from fedblog.federation.publishing import publish

    with Session(services.engine) as s:
        post = publish(s, services, PostDraft(title=slug.title(), slug=slug, body_markdown="Due.", draft=True)).post
        post.scheduled_at = at
        s.add(post)
        s.commit()
        assert post.id is not None
        return post.id


async def test_two_workers_claiming_the_same_scheduled_post_publish_it_once(
    services: Services, fediverse: FakeFediverse, clock: FrozenClock
) -> None:
    import threading

    from fedblog.admin.editor import publish_scheduled
    from fedblog.store.tables import Activity

    await _follower(services, fediverse)
    due = clock.now()
    post_id = _scheduled_draft(services, "raced", due)
    barrier = threading.Barrier(2)
    results: list[str | None] = []

    def worker() -> None:
        barrier.wait()
        results.append(publish_scheduled(services, post_id, due))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results, key=str) == ["Create", None]
    with Session(services.engine) as s:
        assert [a.type for a in s.exec(select(Activity)).all()].count("Create") == 1


def test_fedblog_worker_once_publishes_due_scheduled_posts(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    from datetime import UTC, datetime, timedelta

    from fedblog.cli import main
    from fedblog.services import build_services
    from fedblog.settings import load_settings

    svc = build_services(load_settings(cli_env))
    _scheduled_draft(svc, "due-now", datetime.now(UTC) - timedelta(minutes=1))
    _scheduled_draft(svc, "next-year", datetime.now(UTC) + timedelta(days=365))
    svc.engine.dispose()
    assert main(["worker", "--once", "--quiet"]) == 0
    assert "published 1 scheduled post" in capsys.readouterr().out
    svc = build_services(load_settings(cli_env))
    assert not _post(svc, slug="due-now").draft and _post(svc, slug="next-year").draft
    svc.engine.dispose()


def test_fedblog_serve_with_its_worker_publishes_due_scheduled_posts(
    tmp_path: Path, database_url: str
) -> None:
    """The app's lifespan starts the scheduler with the delivery worker (FEDBLOG_WORKER on)."""
    import time
    import urllib.error
    import urllib.request
    from datetime import UTC, datetime, timedelta

    from fedblog.services import build_services
    from fedblog.settings import load_settings
    from fedblog.store.db import migrate
    from tests.servers import clean_env, fedblog_serve, free_port

    port = free_port()
    env = clean_env(FEDBLOG_BASE_URL=f"http://127.0.0.1:{port}", FEDBLOG_DATA_DIR=str(tmp_path / "data"),
                    FEDBLOG_DATABASE_URL=database_url, FEDBLOG_WORKER="on")
    svc = build_services(load_settings(env))
    migrate(svc.engine)
    _scheduled_draft(svc, "due-at-start", datetime.now(UTC) - timedelta(seconds=5))
    svc.engine.dispose()
    with fedblog_serve(env, port, tmp_path / "server.log", "/about") as base:
        deadline, status = time.monotonic() + 30, 0
        while time.monotonic() < deadline and status != 200:
            try:
                with urllib.request.urlopen(base + "/posts/due-at-start", timeout=5) as r:
                    status = r.status
            except urllib.error.HTTPError as exc:
                status = exc.code
                time.sleep(0.2)
        assert status == 200, (tmp_path / "server.log").read_text(errors="replace")[-2000:]


async def test_post_list_pages_cost_the_same_queries_with_more_posts(
    services: Services, client: httpx.AsyncClient, owner: str  # noqa: F811
) -> None:
    from sqlalchemy import event

    from fedblog.blog.posts import PostDraft
    from fedblog.federation.publishing import publish, unpublish

    await login(client, PASSWORD)

    def add(first: int, last: int) -> None:
        with Session(services.engine) as s:
            for i in range(first, last):
                draft = PostDraft(title=f"Post {i}", slug=f"post-{i}", body_markdown="x", draft=i % 3 == 0)
                publish(s, services, draft)
            s.commit()

    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    add(0, 30)
    with Session(services.engine) as s:
        unpublish(s, services, "post-1")
        s.commit()
    event.listen(services.engine, "before_cursor_execute", count)
    try:
        r = await client.get("/admin/posts?page=2")
        assert r.status_code == 200 and "Page 2 of 2" in r.text
        first = len(statements)
        event.remove(services.engine, "before_cursor_execute", count)
        add(30, 80)
        event.listen(services.engine, "before_cursor_execute", count)
        statements.clear()
        r = await client.get("/admin/posts?page=2")
        assert r.status_code == 200 and "Page 2 of 4" in r.text
        assert len(statements) == first <= 4, statements
    finally:
        event.remove(services.engine, "before_cursor_execute", count)
    page1 = (await client.get("/admin/posts")).text
    assert page1.count("<tr>") == 26  # the header row and 25 posts
    last = (await client.get("/admin/posts?page=4")).text
    assert ">deleted<" in last and ">draft<" in last and ">published<" in last
    assert (await client.get("/admin/posts?page=5")).status_code == 404
