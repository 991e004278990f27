"""The app with one SQLite connection, so writers queue in the pool (FIFO) instead of retrying
SQLite's busy handler with back-off. An experiment for docs/performance.md::

    .venv/bin/python -m bench.run --scenarios sqlite \\
        --app-factory bench.variants.sqlite_single_writer:create_app
"""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import event
from sqlmodel import create_engine

from app.core import db
from app.core.config import get_settings
from app.main import create_app as create_mgdiary_app


def create_app() -> FastAPI:
    settings = get_settings()
    if not settings.is_sqlite:
        return create_mgdiary_app(settings)
    engine = create_engine(
        settings.database_url,
        connect_args={"check_same_thread": False, "timeout": db.SQLITE_BUSY_TIMEOUT_MS / 1000},
        pool_size=1,
        max_overflow=0,
        pool_timeout=30,
    )
    event.listen(engine, "connect", db.sqlite_on_connect)
    event.listen(engine, "begin", db._sqlite_on_begin)
    return create_mgdiary_app(settings, engine=engine)
