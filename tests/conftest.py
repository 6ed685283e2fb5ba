"""Shared fixtures: a real database (SQLite file or PostgreSQL), the app over real HTTP (ASGI).

The database comes from FEDBLOG_TEST_DATABASE_URL (unset: a SQLite file per test). On
PostgreSQL the schema is migrated once per session and every table is emptied before each test.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from fedblog.app import create_app
from fedblog.clock import FrozenClock
from fedblog.services import Services, build_services
from fedblog.settings import Settings, load_settings
from fedblog.store import tables  # noqa: F401
from fedblog.store.db import make_engine, migrate
from tests.fediverse.network import FakeFediverse

TEST_DB_URL = os.environ.get("FEDBLOG_TEST_DATABASE_URL", "")
BASE_URL = "https://blog.test"


def is_postgres() -> bool:
    return TEST_DB_URL.startswith("postgres")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrate one SQLite file per session; each test gets a copy (fast and isolated)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def _pg_engine() -> Iterator[Engine | None]:
    """A database of our own next to FEDBLOG_TEST_DATABASE_URL's, so parallel runs never meet."""
    if not is_postgres():
        yield None
        return
    admin = make_engine(load_settings({"FEDBLOG_DATABASE_URL": TEST_DB_URL}).database_url)
    name = f"fedblog_test_{os.getpid()}"
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(admin.url.set(database=name).render_as_string(hide_password=False))
    migrate(engine)
    yield engine
    engine.dispose()
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def database_url(tmp_path: Path, _sqlite_template: Path, _pg_engine: Engine | None) -> str:
    if _pg_engine is not None:
        names = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
        with _pg_engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        return str(_pg_engine.url.render_as_string(hide_password=False))
    db = tmp_path / "fedblog.db"
    shutil.copy(_sqlite_template, db)
    return f"sqlite:///{db}"


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    env = {
        "FEDBLOG_BASE_URL": BASE_URL,
        "FEDBLOG_DATA_DIR": str(tmp_path / "data"),
        "FEDBLOG_DATABASE_URL": database_url,
        "FEDBLOG_NAME": "Test Blog",
        "FEDBLOG_SECRET_KEY": "test-secret",
        "FEDBLOG_WORKER": "off",
    }
    return load_settings(env)


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> dict[str, str]:
    """The environment ``fedblog`` commands see: the blog, database and data dir of ``settings``."""
    env = {
        "FEDBLOG_BASE_URL": BASE_URL,
        "FEDBLOG_DATA_DIR": str(tmp_path / "data"),
        "FEDBLOG_DATABASE_URL": database_url,
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 11, 1, 12, 0, tzinfo=UTC))


@pytest.fixture
def fediverse(clock: FrozenClock) -> FakeFediverse:
    return FakeFediverse(clock)


@pytest.fixture
async def services(settings: Settings, clock: FrozenClock, fediverse: FakeFediverse) -> AsyncIterator[Services]:
    """Our blog's Services on the fake network; its app answers at blog.test."""
    svc = build_services(settings, clock=clock, transport=fediverse.transport())
    fediverse.add("blog.test", create_app(svc))
    yield svc
    await svc.aclose()


@pytest.fixture
async def client(services: Services, fediverse: FakeFediverse) -> AsyncIterator[httpx.AsyncClient]:
    async with fediverse.client(BASE_URL) as c:
        yield c
