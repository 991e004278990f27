"""Test database and client.

The schema is built once per run by ``alembic upgrade head`` on the database named by
``MGDIARY_TEST_DATABASE_URL`` (default: a fresh SQLite file). Each test runs inside a transaction
that is rolled back; each request gets its own session joined to it with SAVEPOINTs
("joining a Session into an external transaction").
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

_TMP = Path(tempfile.mkdtemp(prefix="mgdiary-test-"))
TEST_DATABASE_URL = os.environ.get("MGDIARY_TEST_DATABASE_URL") or (
    f"sqlite:///{_TMP / 'test.sqlite3'}"
)
os.environ.update(
    {
        "MGDIARY_ENV": "development",
        "MGDIARY_DATABASE_URL": TEST_DATABASE_URL,
        "MGDIARY_JWT_SECRET": "test-secret-for-the-mgdiary-suite-0123456789abcdef",
        "MGDIARY_INPROCESS_WORKER": "false",
    }
)

import pytest  # noqa: E402
from alembic import command  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import Connection, Engine  # noqa: E402
from sqlmodel import Session  # noqa: E402

from app import hooks  # noqa: E402
from app.core.config import get_settings  # noqa: E402
from app.core.db import create_db_engine, get_session  # noqa: E402
from app.core.health import alembic_config  # noqa: E402
from app.core.uow import ThreadUnitOfWork  # noqa: E402
from app.diary.capture import Capture, SessionCapture, get_capture  # noqa: E402
from app.main import create_app  # noqa: E402

IS_POSTGRES = TEST_DATABASE_URL.startswith("postgresql")
hooks.install()  # the safety rules and the outbox, as every entry point installs them


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="needs PostgreSQL (set MGDIARY_TEST_DATABASE_URL)")
    for item in items:
        if "postgres_only" in item.keywords and not IS_POSTGRES:
            item.add_marker(skip)


def reset_database(engine: Engine) -> None:
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))


def upgrade(engine: Engine) -> None:
    config = alembic_config(TEST_DATABASE_URL)
    config.attributes["skip_logging"] = True
    # A plain connection: each migration runs in the transaction env.py begins, and one that
    # builds an index CONCURRENTLY on PostgreSQL can step outside it (autocommit_block).
    with engine.connect() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def savepoint_sessions(
    connection: Connection, outer: Session | None = None
) -> Callable[[], AbstractContextManager[Session]]:
    """Sessions on the test transaction whose commits go to a SAVEPOINT (the outer test
    session's pending changes flushed first, so requests see them)."""

    @contextmanager
    def sessions() -> Iterator[Session]:
        if outer is not None:
            outer.flush()
        with Session(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        ) as request_session:
            yield request_session

    return sessions


def request_sessions(
    connection: Connection, outer: Session | None = None
) -> Callable[[], Iterator[Session]]:
    """A ``get_session`` override: each request gets its own session on the test transaction,
    committing to a SAVEPOINT on success and rolling back to it on error, like production."""
    sessions = savepoint_sessions(connection, outer)

    def override() -> Iterator[Session]:
        with sessions() as request_session:
            try:
                yield request_session
            except BaseException:
                request_session.rollback()
                raise
            else:
                request_session.commit()

    return override


def request_capture(connection: Connection, outer: Session | None = None) -> Callable[[], Capture]:
    """A ``get_capture`` override: diary capture (app/diary/capture.py) through the session
    path, its transactions as SAVEPOINTs on the test transaction, like ``request_sessions``."""
    capture = SessionCapture(ThreadUnitOfWork(savepoint_sessions(connection, outer)))
    return lambda: capture


def override_sessions(app: FastAPI, connection: Connection, outer: Session | None = None) -> None:
    """Every request of ``app`` on the test transaction."""
    app.dependency_overrides[get_session] = request_sessions(connection, outer)
    app.dependency_overrides[get_capture] = request_capture(connection, outer)


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    get_settings.cache_clear()
    engine = create_db_engine(get_settings(), url=TEST_DATABASE_URL)
    reset_database(engine)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def app(engine: Engine) -> FastAPI:
    return create_app(get_settings(), engine=engine)


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    conn = engine.connect()
    trans = conn.begin()
    try:
        yield conn
    finally:
        if trans.is_active:
            trans.rollback()
        conn.close()


@pytest.fixture
def session(connection: Connection) -> Iterator[Session]:
    with Session(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    ) as s:
        yield s


@pytest.fixture
def client(app: FastAPI, connection: Connection, session: Session) -> Iterator[TestClient]:
    override_sessions(app, connection, session)
    app.state.auth_limiter.reset()
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client
    app.dependency_overrides.clear()
    session.expire_all()
