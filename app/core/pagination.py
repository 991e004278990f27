"""Keyset pagination with opaque, signed cursors.

A cursor holds the sort key of the last row returned. Rows are ordered by a total order (the sort
columns end with the primary key), so paging while rows are inserted never repeats or skips a
row that existed when paging began. A cursor that was altered or belongs to another list is a 400.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import ColumnElement, literal, tuple_
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.types import TypeDecorator
from sqlmodel import Session
from sqlmodel.sql.expression import SelectOfScalar

from app.core.config import get_settings
from app.core.errors import DomainError

T = TypeVar("T")
M = TypeVar("M")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class InvalidCursor(DomainError):
    status_code = 400
    code = "invalid_cursor"
    title = "Invalid cursor"


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


class PageParams(BaseModel):
    limit: int
    cursor: str | None


def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size, 1-200.")] = (
        DEFAULT_LIMIT
    ),
    cursor: Annotated[
        str | None, Query(max_length=512, description="Opaque cursor from `next_cursor`.")
    ] = None,
) -> PageParams:
    return PageParams(limit=limit, cursor=cursor)


def _key() -> bytes:
    return hashlib.sha256(b"mgdiary-cursor:" + get_settings().jwt_secret.encode()).digest()


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def encode_cursor(scope: str, values: Sequence[Any]) -> str:
    payload = json.dumps(
        {"s": scope, "v": [_encode_value(v) for v in values]}, separators=(",", ":")
    ).encode()
    sig = hmac.new(_key(), payload, hashlib.sha256).digest()[:12]
    return base64.urlsafe_b64encode(payload + sig).decode().rstrip("=")


def decode_cursor(scope: str, cursor: str, decoders: Sequence[Callable[[Any], Any]]) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload, sig = raw[:-12], raw[-12:]
        expected = hmac.new(_key(), payload, hashlib.sha256).digest()[:12]
        if not hmac.compare_digest(sig, expected):
            raise ValueError("signature")
        data = json.loads(payload)
        if data.get("s") != scope or len(data["v"]) != len(decoders):
            raise ValueError("scope")
        return [decode(v) for decode, v in zip(decoders, data["v"], strict=True)]
    except (ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise InvalidCursor(
            "The cursor is not valid for this list; start again without it.",
            extra={
                "errors": [
                    {
                        "loc": ["query", "cursor"],
                        "msg": "tampered or foreign cursor",
                        "type": "invalid_cursor",
                    }
                ]
            },
        ) from exc


def _python_type(column: InstrumentedAttribute[Any]) -> type:
    """The column's Python type, looking through type decorators that do not declare one.

    ``UTCDateTime`` and SQLModel's ``AutoString`` answer ``object``: decoding a cursor value with
    ``object(value)`` fails, which refused every genuine cursor on those lists.
    """
    sql_type: Any = column.type
    while True:
        try:
            python_type: type = sql_type.python_type
        except NotImplementedError:
            python_type = object
        if python_type is not object or not isinstance(sql_type, TypeDecorator):
            return python_type
        sql_type = sql_type.impl_instance


def _decoder(column: InstrumentedAttribute[Any]) -> Callable[[Any], Any]:
    python_type = _python_type(column)
    if python_type is datetime:
        return datetime.fromisoformat
    if python_type is date:
        return date.fromisoformat
    if python_type is uuid.UUID:
        return uuid.UUID
    return lambda v: python_type(v)


def paginate(
    session: Session,
    statement: SelectOfScalar[M],
    *,
    order_by: Sequence[InstrumentedAttribute[Any]],
    params: PageParams,
    scope: str,
    descending: bool = False,
) -> tuple[list[M], str | None]:
    """Run ``statement`` one page at a time, ordered by ``order_by`` (unique; ascending, or
    every column descending, e.g. newest first)."""
    if params.cursor:
        values = decode_cursor(scope, params.cursor, [_decoder(c) for c in order_by])
        bound = [literal(v, type_=c.type) for c, v in zip(order_by, values, strict=True)]
        condition: ColumnElement[bool] = (
            tuple_(*order_by) < tuple_(*bound) if descending else tuple_(*order_by) > tuple_(*bound)
        )
        statement = statement.where(condition)
    ordering = [c.desc() for c in order_by] if descending else list(order_by)
    rows = list(session.exec(statement.order_by(*ordering).limit(params.limit + 1)).all())
    next_cursor = None
    if len(rows) > params.limit:
        rows = rows[: params.limit]
        next_cursor = cursor_after(scope, rows[-1], order_by)
    return rows, next_cursor


def cursor_after(scope: str, row: Any, order_by: Sequence[InstrumentedAttribute[Any]]) -> str:
    """The cursor that continues after ``row`` (for feeds that resume later)."""
    return encode_cursor(scope, [getattr(row, c.key) for c in order_by])
