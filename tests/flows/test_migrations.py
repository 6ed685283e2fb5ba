"""Migrations: run on SQLite and PostgreSQL, match the models, and keep data on upgrade."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from fedblog.activitypub import keys as keylib
from fedblog.app import create_app
from fedblog.federation.keys import KeyRing
from fedblog.services import build_services
from fedblog.settings import load_settings
from fedblog.store.db import current_revision, head_revision, make_engine, migrate
from fedblog.urls import BLOG_ACTOR
from tests.conftest import TEST_DB_URL, is_postgres


@pytest.fixture
def empty_engine(tmp_path: Path) -> Iterator[Engine]:
    """A brand-new empty database of the kind under test."""
    if is_postgres():
        name = f"fedblog_migration_{os.getpid()}"
        admin = make_engine(load_settings({"FEDBLOG_DATABASE_URL": TEST_DB_URL}).database_url)
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = admin.url.set(database=name).render_as_string(hide_password=False)
        engine = make_engine(url)
        yield engine
        engine.dispose()
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    else:
        engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
        yield engine
        engine.dispose()


def test_schema_from_migrations_matches_models(empty_engine: Engine) -> None:
    migrate(empty_engine)
    assert current_revision(empty_engine) == head_revision(empty_engine)
    with empty_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []


@pytest.mark.anyio
async def test_upgrade_from_first_revision_keeps_data(empty_engine: Engine, tmp_path: Path) -> None:
    migrate(empty_engine, "0001")
    assert current_revision(empty_engine) == "0001"
    with empty_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO post (id, slug, title, content_md, content_html, author_name, language, draft, "
                "published_at, updated_at) "
                "VALUES (1, 'old-post', 'An old post', 'Old *body*', '<p>Old <em>body</em></p>', 'Ann', 'en', false, "
                "'2011-05-01 10:00:00+00', '2011-05-01 10:00:00+00')"
            )
        )
        conn.execute(text("INSERT INTO tag (id, name, label) VALUES (1, 'history', 'History')"))
        conn.execute(text("INSERT INTO post_tag (post_id, tag_id) VALUES (1, 1)"))
        conn.execute(text(
            "INSERT INTO interaction (id, post_id, kind, via, status, author_name, content_html, published_at) VALUES "
            "(1, 1, 'comment', 'import', 'visible', 'Bob', '<p>First!</p>', '2011-05-02 10:00:00+00')"))
        conn.execute(
            text(
                "INSERT INTO interaction (id, post_id, parent_id, kind, via, status, author_name, content_html, "
                "published_at) VALUES "
                "(2, 1, 1, 'comment', 'import', 'visible', 'Ann', '<p>Welcome, Bob.</p>', '2011-05-03 10:00:00+00')"
            )
        )
    migrate(empty_engine)
    assert current_revision(empty_engine) == head_revision(empty_engine)
    settings = load_settings({"FEDBLOG_BASE_URL": "https://blog.test", "FEDBLOG_DATA_DIR": str(tmp_path)})
    services = build_services(settings, engine=empty_engine)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(services)), base_url="https://blog.test"
    ) as c:
        r = await c.get("/posts/old-post")
        assert r.status_code == 200
        assert "Old <em>body</em>" in r.text and "First!" in r.text and "Welcome, Bob." in r.text
        assert r.text.index("First!") < r.text.index("Welcome, Bob.")
        assert '<ol class="replies">' in r.text
        assert "An old post" in (await c.get("/tags/history")).text
        # a post published before ids were stored keeps the id it went out under
        doc = (await c.get("/posts/old-post", headers={"Accept": "application/activity+json"})).json()
        assert doc["id"] == "https://blog.test/posts/old-post"


def test_upgrade_to_keys_per_actor_keeps_the_blog_keys_and_queue(empty_engine: Engine) -> None:
    """0013_actors_jobs: the blog's key row becomes the blog actor's; queued deliveries stay
    deliveries of the blog's activities."""
    migrate(empty_engine, "0003_indexes")
    rsa = keylib.private_key_to_pem(keylib.generate_rsa_private_key())
    ed = keylib.private_key_to_pem(keylib.generate_ed25519_private_key())
    with empty_engine.begin() as conn:
        conn.execute(text("INSERT INTO local_key (id, owner, rsa_private_pem, ed25519_private_pem, created_at) "
                          "VALUES (1, 'blog', :rsa, :ed, '2026-01-01 10:00:00+00')"), {"rsa": rsa, "ed": ed})
        conn.execute(text("INSERT INTO activity (id, ap_id, type, body, created_at) VALUES "
                          "(1, 'https://blog.test/activities/1', 'Create', '{}', '2026-01-01 10:00:00+00')"))
        conn.execute(text("INSERT INTO delivery (id, activity_id, inbox, host, state, attempts, next_attempt_at, "
                          "created_at) VALUES (1, 1, 'https://m.test/inbox', 'm.test', 'pending', 0, "
                          "'2026-01-01 10:00:00+00', '2026-01-01 10:00:00+00')"))
    migrate(empty_engine)
    with empty_engine.connect() as conn:
        assert conn.execute(text("SELECT actor FROM activity")).all() == [("blog",)]
        assert conn.execute(text("SELECT kind, payload, activity_id FROM delivery")).all() == [("deliver", None, 1)]
    keys = KeyRing(empty_engine, lambda: datetime.now(UTC)).keys_for(BLOG_ACTOR)
    assert keys.rsa is not None and keylib.private_key_to_pem(keys.rsa) == rsa
    assert keylib.private_key_to_pem(keys.ed25519) == ed
