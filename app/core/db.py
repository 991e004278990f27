"""Engines and the one-transaction-per-request session.

``get_session`` is used with ``Depends(..., scope="function")``: the commit runs after the route
function returns and *before* the response is sent, so a 2xx always means committed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, create_engine

from app.core.config import Settings

SQLITE_BUSY_TIMEOUT_MS = 15_000


def sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy manage transactions; pysqlite's own handling breaks SAVEPOINTs.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_on_begin(conn: Any) -> None:
    # Take the write lock up front: no deadlock between two readers upgrading to writers.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


#: The oldest SQLite the statements here run on: ``WITH ... AS MATERIALIZED`` (3.35, the safety
#: rules' reads, app/safety/engine.py). Python 3.11's own builds bundle a newer one.
SQLITE_MIN_VERSION = (3, 35, 0)


def check_sqlite_version(version: tuple[int, int, int] = sqlite3.sqlite_version_info) -> None:
    """Refuse to start on an SQLite too old for the app's statements (a syntax error on the
    first write that reads the safety context would be far worse than this)."""
    if version < SQLITE_MIN_VERSION:
        have = ".".join(map(str, version))
        need = ".".join(map(str, SQLITE_MIN_VERSION))
        raise RuntimeError(
            f"SQLite {have} is too old: mgdiary needs {need} or newer "
            "(use a Python built with a newer SQLite, or PostgreSQL)"
        )


def create_db_engine(settings: Settings, *, url: str | None = None) -> Engine:
    url = url or settings.database_url
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        check_sqlite_version()
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # One connection: SQLite has one writer at a time anyway, and requests waiting in the
        # pool queue in order instead of spinning in SQLite's busy handler (measured: p99 2.4 s
        # with a pool of 5 + 10, docs/performance.md).
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            pool_size=1,
            max_overflow=0,
            pool_timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
        )
        event.listen(engine, "connect", sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        pool_timeout=30,
        connect_args=postgres_connect_args(settings),
    )


def postgres_connect_args(settings: Settings) -> dict[str, Any]:
    connect_args: dict[str, Any] = {}
    if settings.database_statement_timeout_ms:
        connect_args["options"] = f"-c statement_timeout={settings.database_statement_timeout_ms}"
    return connect_args


def get_session(request: Request) -> Iterator[Session]:
    """One session and one transaction per request, committed before the response is sent."""
    engine: Engine = request.app.state.engine
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
        except BaseException:
            session.rollback()
            raise
        else:
            session.commit()


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
