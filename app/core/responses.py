"""OpenAPI declarations of the problem+json errors each route can return, and the JSON
response of the capture paths."""

from __future__ import annotations

from typing import Any

import pydantic_core
from fastapi.responses import JSONResponse

from app.core.errors import PROBLEM_MEDIA_TYPE, Problem


class ValuesResponse(JSONResponse):
    """JSON of plain Python values (datetimes, dates, UUIDs among them) written by pydantic's
    serializer, so they read exactly as a response model's fields do (``2026-12-06T21:00:00Z``,
    ``+13:00`` offsets kept) without building the models: a sync batch answers with 500
    entries, and building and dumping 500 models cost a tenth of its CPU (docs/performance.md).
    The values come from validated input (NaN and Infinity are refused there) or storage."""

    def render(self, content: Any) -> bytes:
        return pydantic_core.to_json(content)


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
