"""Strict JSON request parsing for every route.

Python's ``json`` accepts ``NaN`` and ``Infinity``, which are not JSON; a body containing them is
a 422 for the whole request (api-contract.md). Pathologically deep nesting is a 422 too, never a
``RecursionError`` 500.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi import APIRouter, params
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


def add_routes(
    target: APIRouter,
    source: APIRouter,
    *,
    prefix: str = "",
    dependencies: Sequence[params.Depends] = (),
    responses: dict[int | str, dict[str, Any]] | None = None,
) -> None:
    """Add ``source``'s routes to ``target`` itself, as ``include_router`` did before FastAPI
    0.1xx: each route copied with the prefix, dependencies and responses of its inclusion.

    FastAPI 0.165's ``include_router`` keeps the included router as a live branch: every
    request walks the branches, recounts each branch's routes (``_get_routes_version``,
    recursively) and matches twice per level. The app's routes are fixed once built, so one flat
    table serves them: measured in process (``python -m bench.cpu``) and in the load benchmark,
    see docs/performance.md. ``source`` must hold routes only (a router that includes others
    is added with ``add_routes`` per child): anything else raises instead of being dropped.
    """
    for route in source.routes:
        if not isinstance(route, APIRoute):
            raise TypeError(f"{source!r}: add_routes copies APIRoutes only, not {route!r}")
        target.add_api_route(
            prefix + route.path,
            route.endpoint,
            response_model=route.response_model,
            status_code=route.status_code,
            tags=list(route.tags),
            dependencies=[*dependencies, *route.dependencies],
            summary=route.summary,
            description=route.description,
            response_description=route.response_description,
            responses={**(responses or {}), **route.responses},
            deprecated=route.deprecated,
            methods=route.methods,
            operation_id=route.operation_id,
            response_model_include=route.response_model_include,
            response_model_exclude=route.response_model_exclude,
            response_model_by_alias=route.response_model_by_alias,
            response_model_exclude_unset=route.response_model_exclude_unset,
            response_model_exclude_defaults=route.response_model_exclude_defaults,
            response_model_exclude_none=route.response_model_exclude_none,
            include_in_schema=route.include_in_schema,
            response_class=route.response_class,
            name=route.name,
            route_class_override=type(route),
            callbacks=route.callbacks,
            openapi_extra=route.openapi_extra,
            generate_unique_id_function=route.generate_unique_id_function,
        )
