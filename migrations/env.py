"""Alembic environment: the URL comes from the settings unless the caller passed one."""

from __future__ import annotations

import time
from typing import Any

from alembic import context
from sqlmodel import SQLModel

import app.models  # noqa: F401  (registers every table)
from app.core.config import get_settings
from app.core.db import create_db_engine

config = context.config
if config.config_file_name is not None and not config.attributes.get("skip_logging"):
    from logging.config import fileConfig

    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = SQLModel.metadata


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or get_settings().database_url


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=_url().startswith("sqlite"),
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_db_engine(get_settings(), url=_url())
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


#: PostgreSQL session-level advisory lock held while migrating: every app process migrates at
#: start-up (``mgdiary serve``), and two replicas starting together must not run the same
#: migration at once (one would drop what the other is building). The second waits, then finds
#: the database at head. Session-level, so it outlives the commits of a migration that steps
#: outside its transaction (an index built CONCURRENTLY).
MIGRATION_LOCK_KEY = 0x6D67646961727931  # "mgdiary1"


def _lock(connection: Any, poll_seconds: float = 0.5) -> None:
    """Take the lock by polling, each try its own short transaction, never by waiting inside
    one: a migrator waiting in a transaction would be waited for in turn by the other's CREATE
    INDEX CONCURRENTLY (it waits for every older snapshot) - a deadlock PostgreSQL breaks by
    failing the waiter (seen with two ``alembic upgrade`` at once)."""
    while True:
        got = connection.exec_driver_sql(
            f"SELECT pg_try_advisory_lock({MIGRATION_LOCK_KEY})"
        ).scalar()
        connection.commit()  # alembic begins its own transaction after this
        if got:
            return
        time.sleep(poll_seconds)


def _run(connection: Any) -> None:
    postgres = connection.dialect.name == "postgresql"
    if postgres:
        # No statement timeout while migrating: the app's (MGDIARY_DATABASE_STATEMENT_TIMEOUT_MS,
        # on this connection too) is for requests. Waiting for another replica's migration, or
        # building an index CONCURRENTLY on a big table, takes longer; cancelled half-way the
        # build leaves an invalid index, and every restart would try again and fail again.
        connection.exec_driver_sql("SET statement_timeout = 0")
        connection.commit()
        _lock(connection)
    try:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    finally:
        if postgres:
            connection.rollback()  # nothing is pending; the unlock runs outside a failed one
            connection.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})")
            connection.exec_driver_sql("RESET statement_timeout")
            connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
