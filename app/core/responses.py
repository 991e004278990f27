"""OpenAPI declarations of the problem+json errors each route can return."""

from __future__ import annotations

from typing import Any

from app.core.errors import PROBLEM_MEDIA_TYPE, Problem

_DESCRIPTIONS = {
    400: "Bad request (for example a tampered cursor)",
    401: "Missing, expired or invalid bearer token",
    403: "Authenticated, but the role does not allow this",
    404: "Not found, or outside the caller's studies and sites",
    409: "Conflicts with the current state",
    413: "Request body too large",
    422: "Validation failed; `errors` lists each field and rule",
    429: "Rate limited; see `Retry-After`",
    503: "Database unavailable; see `Retry-After`",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {
        code: {
            "model": Problem,
            "description": _DESCRIPTIONS[code],
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for code in codes
    }


#: Every authenticated route can answer these.
AUTHENTICATED = errors(401, 403, 422, 503)
