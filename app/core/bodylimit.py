"""A request body limit that answers 413 problem+json.

Starlette's own limit (``FastAPI(max_body_size=...)``) replaces the response with a plain-text 413
whenever the client declared a ``Content-Length`` over the limit, outside every exception handler
and middleware of ours: no problem+json, no ``X-Request-ID``. This one refuses a declared length
before reading anything and stops a chunked body as soon as it passes the limit.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import problem_response

DETAIL = "The request body is larger than {limit} bytes"


class ContentTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=DETAIL.format(limit=limit))


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            response = problem_response(
                status=413,
                code="content_too_large",
                title="Request body too large",
                detail=DETAIL.format(limit=limit),
                request=Request(scope),
            )
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise ContentTooLarge(limit)
            return message

        await self.app(scope, limited_receive, send)
