"""Engine, sessions and migrations.

SQLite gets WAL, a busy timeout, ``synchronous=NORMAL`` and foreign keys on every connection.
The schema is owned by Alembic (``store/migrations``); ``migrate`` upgrades to head and keeps
existing data, then refreshes the planner's statistics (``optimize``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, create_engine

MIGRATIONS = Path(__file__).parent / "migrations"
BUSY_TIMEOUT_MS = 30_000  # background work (workers, CLI) waits this long for SQLite's write lock
# How many index rows ANALYZE samples per index: bounded work, as SQLite's docs advise for
# PRAGMA optimize (https://www.sqlite.org/lang_analyze.html#approx)
ANALYSIS_LIMIT = 1000


def make_engine(database_url: str, *, echo: bool = False) -> Engine:
    if database_url.startswith("sqlite"):
        path = database_url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            database_url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30}
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "close", _sqlite_optimize_on_close)
        return engine
    return create_engine(
        database_url, echo=echo, pool_size=10, max_overflow=20, pool_pre_ping=True,
        connect_args={"options": "-c timezone=UTC"},
    )


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_optimize_on_close(dbapi_conn: Any, _record: Any) -> None:
    """SQLite's advice: run ``PRAGMA optimize`` just before closing each connection
    (https://www.sqlite.org/pragma.html#pragma_optimize); it is cheap when nothing needs doing."""
    try:
        dbapi_conn.execute(f"PRAGMA analysis_limit={ANALYSIS_LIMIT}")
        dbapi_conn.execute("PRAGMA optimize")
    except Exception:  # a connection closed because it broke: nothing to optimise
        pass


def optimize(engine: Engine, *, analyze: bool = False) -> None:
    """Keep the query planner's statistics fresh so it picks the indexes that fit.

    SQLite: ``PRAGMA optimize`` (periodically and on close), or with ``analyze`` (start-up, after
    ``migrate``) a bounded ``ANALYZE`` of every table. PostgreSQL's autovacuum analyses by
    itself; ``analyze`` runs ``ANALYZE`` once more after a migration.
    """
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                conn.exec_driver_sql(f"PRAGMA analysis_limit={ANALYSIS_LIMIT}")
                conn.exec_driver_sql("ANALYZE" if analyze else "PRAGMA optimize")
            elif analyze:
                conn.exec_driver_sql("ANALYZE")
            conn.commit()
    except SQLAlchemyError:  # statistics are an optimisation: never fail start-up over them
        pass


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database to ``revision`` (creating it if empty). Existing rows are kept."""
    command.upgrade(alembic_config(engine), revision)
    optimize(engine, analyze=True)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(engine: Engine) -> str | None:
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
