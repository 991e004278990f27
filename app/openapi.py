"""The two committed OpenAPI documents: the mobile app's and the investigator portal's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts

from app import __version__
from app.api import APP_PREFIX, AUTH_PREFIX, PORTAL_PREFIX

OPENAPI_DIR = Path(__file__).resolve().parents[1] / "openapi"
DOCUMENTS = {
    "app.v1.json": (
        "mgdiary mobile app API",
        (APP_PREFIX, AUTH_PREFIX, "/healthz", "/readyz", "/calendar/v1"),
    ),
    "portal.v1.json": ("mgdiary investigator portal API", (PORTAL_PREFIX, "/healthz", "/readyz")),
}


def api_routes(app: FastAPI) -> list[RouteContext]:
    """Every API route with its effective (prefixed) path, methods and dependencies.

    Since FastAPI 0.16x ``app.routes`` holds included routers, not their routes: walking it for
    ``APIRoute`` instances finds nothing, so always walk the route contexts.
    """
    return [rc for rc in iter_route_contexts(app.routes) if isinstance(rc.original_route, APIRoute)]


def build_documents(app: FastAPI) -> dict[str, dict[str, Any]]:
    documents = {}
    for name, (title, prefixes) in DOCUMENTS.items():
        routes = [rc for rc in api_routes(app) if (rc.path or "").startswith(prefixes)]
        documents[name] = get_openapi(
            title=title, version=__version__, routes=routes, description=app.description
        )
    return documents


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def write_documents(app: FastAPI, directory: Path = OPENAPI_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, document in build_documents(app).items():
        path = directory / name
        path.write_text(render(document))
        written.append(path)
    return written
