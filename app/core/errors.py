"""RFC 9457 problem+json for every error the service returns.

Services raise ``DomainError`` subclasses; one handler renders them. Validation errors list each
field path and the rule it broke. Unexpected exceptions become a 500 problem with the request id
and no traceback.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from psycopg_pool import PoolTimeout
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.core.requestid import current_request_id

logger = logging.getLogger("mgdiary.errors")

PROBLEM_MEDIA_TYPE = "application/problem+json"


class ValidationItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str | None = None
    code: str
    instance: str | None = None
    request_id: str | None = None
    errors: list[ValidationItem] | None = None


def problem_type(code: str) -> str:
    return f"/problems/{code}"


class DomainError(Exception):
    status_code = 400
    code = "bad_request"
    title = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = headers or {}
        self.extra = extra or {}


class Unauthorized(DomainError):
    status_code = 401
    code = "unauthorized"
    title = "Authentication required"

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        super().__init__(detail, **kwargs)


class Forbidden(DomainError):
    status_code = 403
    code = "forbidden"
    title = "Not allowed"


class NotFound(DomainError):
    status_code = 404
    code = "not_found"
    title = "Not found"


class Conflict(DomainError):
    status_code = 409
    code = "conflict"
    title = "Conflict"


class Unprocessable(DomainError):
    """A rule about the request's content was broken; ``field`` names where."""

    status_code = 422
    code = "unprocessable"
    title = "Request breaks a rule"

    def __init__(
        self,
        detail: str,
        *,
        field: tuple[str | int, ...] = (),
        rule: str = "invalid",
        **kwargs: Any,
    ) -> None:
        super().__init__(detail, **kwargs)
        self.field = field
        self.rule = rule


class InvalidInput(DomainError):
    """Several field errors at once, each ``{loc, msg, type}``, as for request validation."""

    status_code = 422
    code = "validation_failed"
    title = "Request validation failed"

    def __init__(self, errors: list[dict[str, Any]], detail: str | None = None) -> None:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in errors[:5])
        super().__init__(detail or f"Invalid fields: {fields}", extra={"errors": errors})
        self.errors = errors


class ReasonRequired(Unprocessable):
    code = "reason_required"
    title = "A reason is required"

    def __init__(self, detail: str = "A reason is required for this change") -> None:
        super().__init__(detail, field=("body", "reason"), rule="reason_required")


class TooManyRequests(DomainError):
    status_code = 429
    code = "rate_limited"
    title = "Too many requests"

    def __init__(self, retry_after: int, detail: str | None = None) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after))})


class ServiceUnavailable(DomainError):
    status_code = 503
    code = "unavailable"
    title = "Service unavailable"


def problem_response(
    *,
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    request: Request | None = None,
    headers: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": problem_type(code),
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": current_request_id(),
    }
    if request is not None:
        body["instance"] = request.url.path
    if errors is not None:
        body["errors"] = errors
    if extra:
        body.update(extra)
    headers = dict(headers or {})
    if body["request_id"]:
        # A 500 is sent by Starlette's outermost middleware, past the request-id middleware.
        headers.setdefault("X-Request-ID", body["request_id"])
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def _loc(loc: Any) -> list[str | int]:
    return [part if isinstance(part, int) else str(part) for part in loc]


def validation_items(errors: Any) -> list[dict[str, Any]]:
    items = []
    for err in errors:
        items.append(
            {
                "loc": _loc(err.get("loc", ())),
                "msg": str(err.get("msg", "")),
                "type": str(err.get("type", "invalid")),
            }
        )
    return items


HTTP_CODES: dict[int, tuple[str, str]] = {
    400: ("bad_request", "Bad request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Not allowed"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    406: ("not_acceptable", "Not acceptable"),
    413: ("content_too_large", "Request body too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    422: ("unprocessable", "Request breaks a rule"),
    429: ("rate_limited", "Too many requests"),
}


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """Every method some route serves at ``path``: FastAPI has one route per method, and
    Starlette's 405 names only those of the first route that matched the path."""
    methods: set[str] = set()
    for route in iter_route_contexts(app.routes):
        regex = getattr(route, "path_regex", None)
        if route.methods and regex is not None and regex.match(path):
            methods |= route.methods
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(IntegrityError)
    # The capture paths that run on the drivers themselves (app/core/rawsql.py).
    @app.exception_handler(psycopg.IntegrityError)
    @app.exception_handler(sqlite3.IntegrityError)
    async def _integrity(request: Request, exc: Exception) -> JSONResponse:
        # A uniqueness or reference check lost a race with a concurrent request (the services
        # check first; the database constraint is the last word). Nothing was committed.
        logger.info("integrity conflict on %s %s", request.method, request.url.path)
        return problem_response(
            status=409,
            code="conflict",
            title="Conflict",
            detail="The request conflicts with a record written at the same time; "
            "read the current state and retry.",
            request=request,
        )

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        errors = None
        if isinstance(exc, Unprocessable):
            errors = [{"loc": list(exc.field), "msg": exc.detail, "type": exc.rule}]
        return problem_response(
            status=exc.status_code,
            code=exc.code,
            title=exc.title,
            detail=exc.detail,
            request=request,
            headers=exc.headers,
            errors=errors,
            extra=exc.extra,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        items = validation_items(exc.errors())
        fields = ", ".join(".".join(str(p) for p in i["loc"]) for i in items[:5])
        return problem_response(
            status=422,
            code="validation_failed",
            title="Request validation failed",
            detail=f"Invalid fields: {fields}" if fields else None,
            request=request,
            errors=items,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, title = HTTP_CODES.get(exc.status_code, ("http_error", "HTTP error"))
        detail = exc.detail if isinstance(exc.detail, str) else None
        headers = dict(exc.headers or {})
        if exc.status_code == 401:
            headers.setdefault("WWW-Authenticate", "Bearer")
        if exc.status_code == 405:
            methods = allowed_methods(request.app, request.scope["path"])
            if methods:
                headers["Allow"] = ", ".join(methods)
        return problem_response(
            status=exc.status_code,
            code=code,
            title=title,
            detail=detail,
            request=request,
            headers=headers,
        )

    @app.exception_handler(PoolTimeoutError)
    @app.exception_handler(PoolTimeout)
    async def _pool(request: Request, exc: Exception) -> JSONResponse:
        logger.warning("database pool exhausted: %s", exc.__class__.__name__)
        return _database_busy(request)

    @app.exception_handler(OperationalError)
    async def _db_down(request: Request, exc: OperationalError) -> JSONResponse:
        if exc.connection_invalidated or _is_connection_problem(exc):
            logger.warning("database unavailable: %s", exc.__class__.__name__)
            return _database_unavailable(request)
        return _internal(request, exc)

    @app.exception_handler(sqlite3.OperationalError)
    async def _sqlite_busy(request: Request, exc: sqlite3.OperationalError) -> JSONResponse:
        # The capture path on SQLite: "database is locked" after the busy timeout.
        if "locked" in str(exc) or "busy" in str(exc):
            logger.warning("database busy: %s", exc)
            return _database_busy(request)
        return _internal(request, exc)

    @app.exception_handler(psycopg.OperationalError)
    async def _pg_down(request: Request, exc: psycopg.OperationalError) -> JSONResponse:
        # Raised on the capture path: a lost connection, a server shutting down, or the
        # statement timeout. Nothing was committed; the client retries the same entries.
        logger.warning("database unavailable: %s", exc.__class__.__name__)
        return _database_unavailable(request)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return _internal(request, exc)


def _database_busy(request: Request) -> JSONResponse:
    return problem_response(
        status=503,
        code="database_busy",
        title="Service unavailable",
        detail="The database is busy; retry shortly.",
        request=request,
        headers={"Retry-After": "2"},
    )


def _database_unavailable(request: Request) -> JSONResponse:
    return problem_response(
        status=503,
        code="database_unavailable",
        title="Service unavailable",
        detail="The database is not reachable; retry shortly.",
        request=request,
        headers={"Retry-After": "5"},
    )


def _is_connection_problem(exc: DBAPIError) -> bool:
    text = str(exc.orig).lower() if exc.orig is not None else ""
    return any(s in text for s in ("connection", "server closed", "terminating", "could not"))


def _internal(request: Request, exc: Exception) -> JSONResponse:
    logger.error(
        "unhandled error on %s %s (request id %s)",
        request.method,
        request.url.path,
        current_request_id(),
        exc_info=exc,
    )
    return problem_response(
        status=500,
        code="internal_error",
        title="Internal server error",
        detail="An unexpected error occurred; it has been logged with the request id.",
        request=request,
    )
