"""A lost uniqueness race is a 409, readiness failures are problem+json, token responses are
never cached."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

from app.auth.models import StaffUser
from app.core.config import get_settings
from app.core.db import SessionDep
from app.main import create_app
from tests.conftest import override_sessions
from tests.factories import create_participant, create_study
from tests.problem_helpers import assert_problem


@pytest.fixture
def scratch_app(engine: Engine, connection: Connection) -> FastAPI:
    """A separate app on the test transaction, free to gain test-only routes."""
    app = create_app(get_settings(), engine=engine)

    override_sessions(app, connection)
    return app


def test_a_unique_constraint_violation_is_a_409_problem(scratch_app: FastAPI) -> None:
    @scratch_app.post("/test-only/duplicate-staff")
    def duplicate(session: SessionDep) -> dict[str, str]:
        # What two concurrent requests do when both pass the service's own duplicate check.
        session.add(StaffUser(subject="twice"))
        session.flush()
        session.add(StaffUser(subject="twice"))
        session.flush()
        return {"status": "unreachable"}

    with TestClient(scratch_app, raise_server_exceptions=False) as client:
        response = client.post("/test-only/duplicate-staff")
    body = assert_problem(response, 409, "conflict")
    assert "Traceback" not in response.text
    assert "retry" in body["detail"]


def test_readyz_behind_migrations_is_a_503_problem(scratch_app: FastAPI) -> None:
    scratch_app.state.migration_heads = {"0123456789ab"}
    with TestClient(scratch_app, raise_server_exceptions=False) as client:
        response = client.get("/readyz")
    body = assert_problem(response, 503, "not_ready")
    assert body["migrations"] == "behind"
    assert body["database"] == "ok"
    assert response.headers["retry-after"] == "5"


def test_token_responses_are_not_cacheable(client: TestClient, session: Session) -> None:
    study, sites = create_study(session)
    _, code = create_participant(session, study=study, site=sites["X"])
    activated = client.post("/auth/v1/activate", json={"activation_code": code})
    assert activated.status_code == 200, activated.text
    assert activated.headers["cache-control"] == "no-store"
    refreshed = client.post(
        "/auth/v1/refresh", json={"refresh_token": activated.json()["refresh_token"]}
    )
    assert refreshed.status_code == 200
    assert refreshed.headers["cache-control"] == "no-store"
    refused = client.post("/auth/v1/activate", json={"activation_code": code})
    assert refused.status_code == 401
    assert refused.headers["cache-control"] == "no-store"
