"""Database engine and sessions, one engine per process."""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from engine.config import get_settings

logger = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_CACHE_KIB = 32 * 1024  # page cache per connection; SQLite's default is 2 MiB
POOL_SIZE = 5  # SQLAlchemy's default; reserve_connections raises it for processes with many threads

_engine: Engine | None = None
_engine_pid: int | None = None
_session_factory: sessionmaker[Session] | None = None
_pool_size = POOL_SIZE


def reserve_connections(count: int) -> None:
    """Keep at least `count` pooled connections open, one per thread that uses the database at once.

    Call it before the first use of the database; the engine is made with the pool size then.
    """
    global _pool_size
    _pool_size = max(POOL_SIZE, count)


def make_engine(url: str, pool_size: int = POOL_SIZE) -> Engine:
    """Create an engine; SQLite gets WAL mode and a busy timeout so the web server and workers can write at once.

    Statement parameters (phone numbers, message bodies) are kept out of exception messages, which
    end up in logs.
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, hide_parameters=True,
                               pool_size=pool_size)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            # Left to itself, the sqlite3 module opens transactions late and lets a SAVEPOINT commit
            # everything before it; SQLAlchemy emits BEGIN instead (see _sqlite_begin).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")  # negative: a size in KiB, not in pages
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection) -> None:  # type: ignore[no-untyped-def]
            # IMMEDIATE takes the write lock up front, waiting up to the busy timeout. A deferred
            # transaction that reads and then writes fails at once with "database is locked" when
            # another process wrote in between, and the busy timeout does not apply to that case.
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, hide_parameters=True, pool_size=pool_size)


def get_engine() -> Engine:
    """Return this process's engine, making a new one after a fork (RQ forks a work horse per job)."""
    global _engine, _engine_pid, _session_factory
    if _engine is None or _engine_pid != os.getpid():
        if _engine is not None:
            # The parent's pooled connections must not be shared with the child.
            _engine.dispose(close=False)
        _engine = make_engine(get_settings().database_url, _pool_size)
        _engine_pid = os.getpid()
        _session_factory = sessionmaker(_engine, expire_on_commit=False)
    return _engine


def reset_engine() -> None:
    """Drop the cached engine, for tests that switch databases."""
    global _engine, _engine_pid, _session_factory
    if _engine is not None:
        _engine.dispose()
    _engine = _engine_pid = _session_factory = None


@contextmanager
def session_scope() -> Iterator[Session]:
    """Yield a session that commits on success and rolls back on any error."""
    get_engine()
    assert _session_factory is not None
    session = _session_factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@dataclass
class StatementCount:
    """SQL statements by first keyword (SELECT, INSERT, BEGIN...) as the driver received them, and commits."""

    statements: Counter[str] = field(default_factory=Counter)
    commits: int = 0

    @property
    def total(self) -> int:
        return sum(self.statements.values())


@contextmanager
def count_statements(engine: Engine) -> Iterator[StatementCount]:
    """Count the statements run and the transactions committed on `engine` while inside, for benchmarks and tests.

    An executemany counts once. On PostgreSQL the driver starts transactions without a BEGIN statement,
    so only SQLite's BEGIN IMMEDIATE (see make_engine) shows up among the statements.
    """
    count = StatementCount()

    def on_statement(_conn, _cursor, statement, _parameters, _context, _executemany) -> None:  # type: ignore[no-untyped-def]
        count.statements[statement.split(None, 1)[0].upper()] += 1

    def on_commit(_conn) -> None:  # type: ignore[no-untyped-def]
        count.commits += 1

    event.listen(engine, "before_cursor_execute", on_statement)
    event.listen(engine, "commit", on_commit)
    try:
        yield count
    finally:
        event.remove(engine, "before_cursor_execute", on_statement)
        event.remove(engine, "commit", on_commit)
