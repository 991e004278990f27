"""Strict JSON request parsing for every route.

Python's ``json`` accepts ``NaN`` and ``Infinity``, which are not JSON; a body containing them is
a 422 for the whole request (api-contract.md). Pathologically deep nesting is a 422 too, never a
``RecursionError`` 500.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response


def _reject_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not valid JSON", name, 0)


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = json.loads(body, parse_constant=_reject_constant)
            except RecursionError as exc:
                raise json.JSONDecodeError("JSON nested too deeply", "", 0) from exc
            except UnicodeDecodeError as exc:
                raise json.JSONDecodeError("body is not UTF-8", "", 0) from exc
        return self._json


class StrictRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict_handler
