"""Deny by default: every route needs a token of the right audience unless it is explicitly
public (checklist items 12 and 49). Adding a route without auth fails these tests."""

from __future__ import annotations

import httpx2 as httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import RouteContext, iter_route_contexts
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.api import APP_PREFIX, AUTH_PREFIX, OPERATOR_PATHS, PORTAL_PREFIX, PUBLIC_PATHS
from app.main import create_app
from tests.factories import (
    bearer,
    create_participant,
    create_study,
    participant_token,
    staff_token,
)
from tests.problem_helpers import api_routes, assert_problem, fill_path, operations

#: Routes that are not API routes: FastAPI's documentation pages (off in production).
DOCS_PATHS = {"/openapi.json", "/docs", "/docs/oauth2-redirect"}

ALL_OPERATIONS = operations(create_app())
PROTECTED = [
    op for op in ALL_OPERATIONS if op[1] not in PUBLIC_PATHS and op[1] not in OPERATOR_PATHS
]


def _call(
    client: TestClient, method: str, path: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    url = fill_path(path)
    if method in {"POST", "PATCH", "PUT"}:
        return client.request(method, url, json={}, headers=headers)
    return client.request(method, url, headers=headers)


def test_public_routes_are_exactly_health_token_exchange_and_calendar_feed() -> None:
    assert PUBLIC_PATHS == {
        "/healthz",
        "/readyz",
        f"{AUTH_PREFIX}/activate",
        f"{AUTH_PREFIX}/refresh",
        # Calendar apps cannot send bearer tokens: the secret URL is the credential.
        "/calendar/v1/{feed_token}.ics",
    }
    served = {path for _, path in ALL_OPERATIONS}
    assert served >= PUBLIC_PATHS


@pytest.mark.parametrize("path", sorted(PUBLIC_PATHS))
def test_public_routes_answer_without_a_token(client: TestClient, path: str) -> None:
    method = next(m for m, p in ALL_OPERATIONS if p == path)
    response = _call(client, method, path)
    # A made-up feed token is simply not found; everything else answers or validates.
    expected = (404,) if path.startswith("/calendar/") else (200, 422)
    assert response.status_code in expected, response.text


def _non_api_routes(app: FastAPI) -> list[RouteContext]:
    api = {id(rc.original_route) for rc in api_routes(app)}
    return [rc for rc in iter_route_contexts(app.routes) if id(rc.original_route) not in api]


def test_every_route_is_under_a_known_prefix(app: FastAPI) -> None:
    assert operations(app) == ALL_OPERATIONS
    for method, path in operations(app):
        known = path in PUBLIC_PATHS or path in OPERATOR_PATHS
        assert known or path.startswith((APP_PREFIX, PORTAL_PREFIX)), (
            f"{method} {path} is neither public nor under /app/v1 or /portal/v1"
        )
    others = {rc.path for rc in _non_api_routes(app)}
    assert others <= DOCS_PATHS, f"routes outside the API router: {others - DOCS_PATHS}"


@pytest.mark.parametrize(("method", "path"), PROTECTED, ids=[f"{m} {p}" for m, p in PROTECTED])
def test_route_without_a_token_is_401(client: TestClient, method: str, path: str) -> None:
    response = _call(client, method, path)
    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("method", "path"), PROTECTED, ids=[f"{m} {p}" for m, p in PROTECTED])
def test_route_with_a_garbage_token_is_401(client: TestClient, method: str, path: str) -> None:
    response = _call(client, method, path, headers=bearer("not.a.token"))
    assert_problem(response, 401)


APP_ROUTES = [op for op in PROTECTED if op[1].startswith(APP_PREFIX + "/")]
PORTAL_ROUTES = [op for op in PROTECTED if op[1].startswith(PORTAL_PREFIX + "/")]


def test_protected_routes_are_split_between_app_and_portal() -> None:
    assert APP_ROUTES
    assert PORTAL_ROUTES
    assert set(APP_ROUTES) | set(PORTAL_ROUTES) == set(PROTECTED)


@pytest.mark.parametrize(("method", "path"), APP_ROUTES, ids=[f"{m} {p}" for m, p in APP_ROUTES])
def test_app_route_refuses_a_portal_token(
    client: TestClient, session: Session, method: str, path: str
) -> None:
    token = staff_token(session, role="admin")
    assert client.get("/portal/v1/studies", headers=bearer(token)).status_code == 200
    assert_problem(_call(client, method, path, headers=bearer(token)), 401)


@pytest.mark.parametrize(
    ("method", "path"), PORTAL_ROUTES, ids=[f"{m} {p}" for m, p in PORTAL_ROUTES]
)
def test_portal_route_refuses_a_participant_token(
    client: TestClient, session: Session, method: str, path: str
) -> None:
    study, sites = create_study(session)
    participant, _ = create_participant(session, study=study, site=sites["X"])
    token = participant_token(participant)
    assert client.get("/app/v1/me", headers=bearer(token)).status_code == 200
    assert_problem(_call(client, method, path, headers=bearer(token)), 401)
