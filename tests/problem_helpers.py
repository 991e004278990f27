"""Helpers shared by the core tests: problem+json assertions and the route walk."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx2 as httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts

PROBLEM_KEYS = {"type", "title", "status", "detail", "code", "request_id"}
REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")
PATH_PARAM = re.compile(r"{([^}:]+)(?::[^}]*)?}")


def assert_problem(
    response: httpx.Response, status: int, code: str | None = None
) -> dict[str, Any]:
    """The response is an RFC 9457 problem with ``status`` and the request id in body and header."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert PROBLEM_KEYS <= body.keys(), body
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["type"], str)
    assert body["type"]
    if code is not None:
        assert body["code"] == code, body
    assert body["request_id"], body
    assert response.headers["x-request-id"] == body["request_id"]
    return body


def fill_path(path: str) -> str:
    """``/studies/{study_id}`` -> ``/studies/<random uuid>``."""
    return PATH_PARAM.sub(lambda _: str(uuid.uuid4()), path)


def api_routes(app: FastAPI) -> list[RouteContext]:
    """Every API route with its effective path and methods.

    ``app.routes`` holds included routers (FastAPI >= 0.16x), not their routes: filtering it for
    ``APIRoute`` finds nothing, so walk the route contexts instead.
    """
    return [rc for rc in iter_route_contexts(app.routes) if isinstance(rc.original_route, APIRoute)]


def operations(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path template) the app serves through an API route."""
    found = sorted(
        (method, rc.path or "") for rc in api_routes(app) for method in (rc.methods or ())
    )
    # Guard the walk itself: if FastAPI changes how routes are exposed, fail instead of
    # silently checking nothing.
    assert ("GET", "/app/v1/me") in found
    assert ("GET", "/portal/v1/studies/{study_id}") in found
    assert len(found) >= 20
    return found
