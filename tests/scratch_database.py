"""A fresh, migrated database for tests that must commit, dropped afterwards.

Concurrency tests need committed rows (another connection sees nothing of the rolled-back test
transaction), and committed audit events cannot be deleted (append-only triggers), so such tests
run against a scratch database next to the suite's and never leave rows in the suite's own.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from app.core.config import get_settings
from app.core.db import create_db_engine
from app.core.health import alembic_config
from tests.conftest import TEST_DATABASE_URL


@contextmanager
def scratch_engines(count: int = 2) -> Iterator[list[Engine]]:
    """``count`` separate engines (separate pools and connections) on one scratch database: a
    new PostgreSQL database next to the suite's, or a new SQLite file."""
    base = make_url(TEST_DATABASE_URL)
    if base.get_backend_name() != "postgresql":
        yield from _sqlite_engines(count)
        return
    name = f"{base.database}_scratch_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    url = base.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engines: list[Engine] = []
    try:
        config = alembic_config(url)
        config.attributes["skip_logging"] = True
        command.upgrade(config, "head")
        engines = [create_db_engine(get_settings(), url=url) for _ in range(count)]
        yield engines
    finally:
        for engine in engines:
            engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _sqlite_engines(count: int) -> Iterator[list[Engine]]:
    directory = Path(tempfile.mkdtemp(prefix="mgdiary-scratch-"))
    url = f"sqlite:///{directory / 'scratch.sqlite3'}"
    config = alembic_config(url)
    config.attributes["skip_logging"] = True
    command.upgrade(config, "head")
    engines = [create_db_engine(get_settings(), url=url) for _ in range(count)]
    try:
        yield engines
    finally:
        for engine in engines:
            engine.dispose()
        shutil.rmtree(directory, ignore_errors=True)
