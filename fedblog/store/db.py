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
from sqlalchemy import event, make_url
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
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
        engine = create_engine(  # a connection for every thread of the database and read pools (services.py)
            database_url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30},
            **({"pool_size": 20, "max_overflow": 10} if make_url(database_url).database not in (None, "", ":memory:")
               else {}),
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "close", _sqlite_optimize_on_close)
        event.listen(engine, "checkin", _sqlite_restore_busy_timeout)
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


_LOWERED = "fedblog.busy_timeout_lowered"


@contextmanager
def request_write_limits(conn: Connection, seconds: int, *, reads_only: bool = False) -> Iterator[None]:
    """Bound how long this transaction waits for locks: a request answers 503 + Retry-After in time.

    SQLite: a lower busy timeout (https://www.sqlite.org/c3ref/busy_timeout.html) on this pooled
    connection, restored when the connection goes back to the pool. PostgreSQL: ``SET LOCAL
    lock_timeout`` and ``statement_timeout`` for this transaction only
    (https://www.postgresql.org/docs/current/runtime-config-client.html). Either way the wait
    ends in an OperationalError, which the caller turns into 503.
    """
    if conn.dialect.name == "sqlite":
        if reads_only:  # WAL: a reader never waits for a writer (https://www.sqlite.org/wal.html)
            yield
            return
        conn.info[_LOWERED] = True
        conn.exec_driver_sql(f"PRAGMA busy_timeout={seconds * 1000}")
    else:
        # both in one round trip: set_config(..., is_local => true) is SET LOCAL
        conn.exec_driver_sql(f"SELECT set_config('lock_timeout', '{seconds}s', true), "
                             f"set_config('statement_timeout', '{seconds}s', true)")
    yield


# PostgreSQL SQLSTATE classes and codes that mean "not now", not "this input is wrong"
# (https://www.postgresql.org/docs/current/errcodes-appendix.html): connection exception, insufficient
# resources, operator intervention (query_canceled: statement_timeout), transaction rollback
# (serialization failure, deadlock), lock_not_available (lock_timeout)
_TRANSIENT_CLASSES = ("08", "53", "57", "40")
_TRANSIENT_CODES = ("55P03",)
_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "unable to open database", "disk i/o error",
                     "database or disk is full")


def database_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` says the database could not do the work now (locked, timed out, gone):
    the caller answers 503 + Retry-After, and the same request can succeed later."""
    if isinstance(exc, PoolTimeout):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate:
        return sqlstate[:2] in _TRANSIENT_CLASSES or sqlstate in _TRANSIENT_CODES
    message = str(exc.orig).lower()
    return any(m in message for m in _SQLITE_TRANSIENT)


def _sqlite_restore_busy_timeout(dbapi_conn: Any, record: Any) -> None:
    if record.info.pop(_LOWERED, False):
        try:
            dbapi_conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        except Exception:  # a broken connection is discarded by the pool anyway
            pass


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
