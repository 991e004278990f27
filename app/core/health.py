"""Liveness and readiness. Public: load balancers and orchestrators call them without tokens."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from app.core.db import SessionDep
from app.core.errors import problem_response
from app.core.responses import errors
from app.core.routing import StrictRoute

ROOT = Path(__file__).resolve().parents[2]
router = APIRouter(route_class=StrictRoute, tags=["health"])


def alembic_config(database_url: str | None = None) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    if database_url:
        config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def head_revisions() -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


def current_revisions(connection: Connection) -> set[str]:
    connection.execute(text("SELECT 1"))
    return set(MigrationContext.configure(connection).get_current_heads())


class Health(BaseModel):
    status: str
    database: str | None = None
    migrations: str | None = None


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """200 while the process runs."""
    return Health(status="ok")


def _not_ready(request: Request, detail: str, **fields: str) -> JSONResponse:
    return problem_response(
        status=503,
        code="not_ready",
        title="Service not ready",
        detail=detail,
        request=request,
        headers={"Retry-After": "5"},
        extra=fields,
    )


@router.get("/readyz", response_model=Health, responses=errors(503))
def readyz(request: Request, session: SessionDep) -> Health | JSONResponse:
    """200 when the database answers and its schema is at the newest migration, else 503."""
    heads: set[str] = request.app.state.migration_heads
    try:
        current = current_revisions(session.connection())
    except SQLAlchemyError:
        return _not_ready(request, "The database does not answer", database="unreachable")
    if current != heads:
        return _not_ready(
            request,
            "The database schema is not at the newest migration; run `mgdiary migrate`",
            database="ok",
            migrations="behind" if current else "none",
        )
    return Health(status="ok", database="ok", migrations="head")
