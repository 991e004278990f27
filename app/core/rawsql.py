"""SQLAlchemy-defined statements run straight on the database driver (psycopg, sqlite3).

Diary capture (app/diary/capture.py) makes two statements per single entry on PostgreSQL: one
read, one write. Through SQLAlchemy each statement cost about 0.3-0.4 ms of CPU on this machine
(the async session; about 0.1 ms with psycopg alone; docs/performance.md), most of a request.
So the tables and queries stay defined in SQLAlchemy - the models are the one source of truth
for names and types - and this module compiles each statement once per dialect, applies the
columns' own bind and result processors (the conversions SQLAlchemy itself would apply, e.g.
UUIDs as 32 hex characters on SQLite), and hands the SQL to the driver.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from decimal import Decimal
from functools import cache
from typing import Any

import orjson
import sqlalchemy as sa
from psycopg import AsyncConnection, AsyncCursor
from psycopg.types.json import Json
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from app.core.config import Settings
from app.core.db import postgres_connect_args
from app.core.models import UTCDateTime
from app.core.rows import Row

DIALECTS: dict[str, sa.Dialect] = {
    "postgresql": postgresql.dialect(paramstyle="pyformat"),  # type: ignore[no-untyped-call]
    "sqlite": sqlite.dialect(paramstyle="named"),
}
Processor = Callable[[Any], Any] | None


def _bind(type_: sa.types.TypeEngine[Any], dialect: sa.Dialect) -> Processor:
    return type_.dialect_impl(dialect).bind_processor(dialect)


def _result(column: sa.ColumnElement[Any], dialect: sa.Dialect) -> Processor:
    return column.type.dialect_impl(dialect).result_processor(dialect, None)


def _placeholder(dialect: sa.Dialect, key: str) -> str:
    return f"%({key})s" if dialect.paramstyle == "pyformat" else f":{key}"


#: Column types whose values orjson writes as text PostgreSQL's input functions read back
#: exactly (``_dump_json``): UUIDs and strings as strings, numbers, booleans, JSON values as
#: themselves, dates and (aware) datetimes in ISO 8601.
_JSON_READY = (
    sa.String,
    sa.Integer,
    sa.Float,
    sa.Boolean,
    sa.Date,
    sa.JSON,
    sa.Uuid,
)


def _json_ready(type_: sa.types.TypeEngine[Any]) -> bool:
    if isinstance(type_, UTCDateTime):
        return True  # its bind conversion (refuse naive, to UTC): Insert.check_json's
    if isinstance(type_, sa.types.TypeDecorator):
        # A decorator that converts nothing on the way in (SQLModel's AutoString) is its impl.
        plain = type(type_).process_bind_param is sa.types.TypeDecorator.process_bind_param
        return plain and _json_ready(type_.impl_instance)
    return isinstance(type_, _JSON_READY)


def _finite(value: Any) -> bool:
    """No NaN or Infinity anywhere in a JSON value (orjson would write them as null). Loops,
    not generators: it runs over every JSON column of every bulk row."""
    kind = type(value)
    if kind is float:
        return math.isfinite(value)
    if kind is dict:
        members: Any = value.values()
    elif kind is list or kind is tuple:
        members = value
    else:
        return True
    for member in members:
        kind = type(member)
        if kind is float:
            if not math.isfinite(member):
                return False
        elif (kind is dict or kind is list or kind is tuple) and not _finite(member):
            return False
    return True


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _dump_json(rows: Any) -> bytes:
    """orjson writes UUIDs, dates and aware datetimes (ISO 8601 with the offset) itself, in
    C; ``Insert.check_json`` has refused what it would write wrongly."""
    return orjson.dumps(rows, default=_json_default)


class Insert:
    """``INSERT INTO table (keys) VALUES (...)`` for rows with the same keys."""

    def __init__(self, table: sa.Table, keys: tuple[str, ...], dialect: sa.Dialect) -> None:
        columns = [table.c[k] for k in keys]
        names = ", ".join(dialect.identifier_preparer.quote(c.name) for c in columns)
        values = ", ".join(_placeholder(dialect, k) for k in keys)
        target = dialect.identifier_preparer.format_table(table)
        self.paramstyle = dialect.paramstyle
        self.keys = keys
        self.head = f"INSERT INTO {target} ({names})"
        self.sql = f"{self.head} VALUES ({values})"
        #: PostgreSQL: every row of the group in one ``json`` parameter (see ``insert_json``);
        #: None when a column's type needs a conversion JSON does not give.
        self.json_sql = (
            f"INSERT INTO {target} ({names}) SELECT {names}"
            f" FROM json_populate_recordset(NULL::{target}, %s)"
            if all(c.key == c.name and _json_ready(c.type) for c in columns)
            else None
        )
        #: orjson writes NaN and Infinity as null (the parameter path stores them) and a naive
        #: datetime without an offset (UTCDateTime refuses it): ``check_json`` refuses them.
        self.float_keys = tuple(c.key for c in columns if isinstance(c.type, sa.Float))
        self.datetime_keys = tuple(c.key for c in columns if isinstance(c.type, UTCDateTime))
        self.json_keys = tuple(c.key for c in columns if isinstance(c.type, sa.JSON))
        self.processors = [
            (k, p) for k, c in zip(keys, columns, strict=True) if (p := _bind(c.type, dialect))
        ]

    def check_json(self, rows: Sequence[dict[str, Any]]) -> None:
        """Refuse what ``_dump_json`` would not store faithfully: a non-finite number, in a
        column or inside a JSON value (input validation refuses them before any row is
        built), or a naive datetime (an instant without an offset is ambiguous; a
        programming error)."""
        for key in self.float_keys:
            for row in rows:
                value = row[key]
                if value is not None and not math.isfinite(value):
                    raise ValueError(f"{key}: {value} is not a finite number")
        for key in self.datetime_keys:
            for row in rows:
                value = row[key]
                if value is not None and value.utcoffset() is None:
                    raise ValueError(f"{key}: naive datetime stored; give it a time zone")
        for key in self.json_keys:
            for row in rows:
                if not _finite(row[key]):
                    raise ValueError(f"{key}: a JSON value holds a non-finite number")

    def params(self, row: dict[str, Any]) -> dict[str, Any]:
        if not self.processors:
            return row
        out = dict(row)
        for key, process in self.processors:
            value = out[key]
            if value is not None:
                out[key] = process(value)
        return out


@cache
def insert_for(table: sa.Table, keys: tuple[str, ...], dialect: str = "postgresql") -> Insert:
    return Insert(table, keys, DIALECTS[dialect])


def insert_many(connection: Any, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """SQLite: the rows (grouped by their keys) with ``executemany`` on a sqlite3 connection."""
    for keys, group in _by_keys(rows).items():
        statement = insert_for(table, keys, "sqlite")
        connection.executemany(statement.sql, [statement.params(r) for r in group])


def _by_keys(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row), []).append(row)
    return groups


def _groups(
    parts: Sequence[tuple[sa.Table, Sequence[dict[str, Any]]]],
) -> list[tuple[Insert, list[dict[str, Any]]]]:
    out: list[tuple[Insert, list[dict[str, Any]]]] = []
    for table, rows in parts:
        out += [(insert_for(table, keys), group) for keys, group in _by_keys(rows).items()]
    return out


@cache
def _multi_sql(shape: tuple[tuple[Insert, int], ...]) -> str:
    statements = []
    position = 0
    for insert, count in shape:
        rows = []
        for _ in range(count):
            width = len(insert.keys)
            rows.append("(" + ", ".join(f"${position + c + 1}" for c in range(width)) + ")")
            position += width
        statements.append(f"{insert.head} VALUES {', '.join(rows)}")
    *ctes, last = statements
    if not ctes:
        return last
    return "WITH " + ", ".join(f"w{n} AS ({sql})" for n, sql in enumerate(ctes)) + " " + last


def multi_insert(
    parts: Sequence[tuple[sa.Table, Sequence[dict[str, Any]]]],
) -> tuple[str, list[Any]] | None:
    """All the rows, of several tables, as ONE statement (data-modifying CTEs): atomic on its
    own, so on an autocommit connection it needs no BEGIN or COMMIT. Foreign keys are checked
    at the end of the statement, so parents and children may go in together. For a few rows
    (a single entry); many go in with ``insert_json``. None when there is nothing to insert.

    The statement uses PostgreSQL's own ``$n`` placeholders, for a ``psycopg.AsyncRawCursor``:
    psycopg parses ``%s``-style queries of more than 50 parameters on every execution (its
    cache skips them), and an entry's rows have 60-90."""
    groups = _groups(parts)
    if not groups:
        return None
    params: list[Any] = []
    for insert, rows in groups:
        for row in rows:
            values = insert.params(row)
            params.extend(values[key] for key in insert.keys)
    return _multi_sql(tuple((insert, len(rows)) for insert, rows in groups)), params


async def insert_json(
    cursor: AsyncCursor[Any], table: sa.Table, rows: Sequence[dict[str, Any]]
) -> None:
    """PostgreSQL: the rows (grouped by their keys) as one INSERT per group whose single
    parameter is every row as JSON, expanded by ``json_populate_recordset`` into the table's
    row type."""
    for keys, group in _by_keys(rows).items():
        statement = insert_for(table, keys)
        if statement.json_sql is None:
            raise TypeError(f"{table.name}: a column's type is not written faithfully as JSON")
        statement.check_json(group)
        await cursor.execute(statement.json_sql, (Json(group, dumps=_dump_json),))


class Nullable:
    """A ``Query`` entity that may be absent (the right side of a LEFT JOIN)."""

    def __init__(self, model: Any) -> None:
        self.model = model


class AsRow:
    """A ``Query`` entity decoded as a ``Row`` (app/core/rows.py: plain values, readable as
    attributes) instead of a model instance: building a SQLModel table object costs a
    pydantic validation (a third of a millisecond here), a Row almost nothing."""

    def __init__(self, model: Any) -> None:
        self.model = model


class Query:
    """A SELECT compiled once. Its select list is made of entities: a table model (all its
    columns, in table order, as the ORM loads them) or a labelled column expression. Each row
    comes back as one value per entity: a model instance or the processed column value."""

    def __init__(
        self,
        entities: Sequence[Any],
        build: Callable[[sa.Select[Any]], sa.Select[Any]],
        params: dict[str, sa.types.TypeEngine[Any]],
        dialect: str = "postgresql",
    ) -> None:
        self.dialect = DIALECTS[dialect]
        columns: list[sa.ColumnElement[Any]] = []
        #: (model or None for a single column, may be absent, columns with processors, as a Row)
        self.groups: list[tuple[Any, bool, list[tuple[str, Processor]], bool]] = []
        for entity in entities:
            nullable = isinstance(entity, Nullable)
            as_row = isinstance(entity, AsRow)
            model = entity.model if nullable or as_row else entity
            table = getattr(model, "__table__", None)
            group = list(table.columns) if table is not None else [model]
            columns += group
            self.groups.append(
                (
                    model if table is not None else None,
                    nullable,
                    [(c.key, _result(c, self.dialect)) for c in group],
                    as_row,
                )
            )
        statement = build(sa.select(*columns))
        self.sql = statement.compile(dialect=self.dialect).string
        self.param_processors = {
            name: p for name, type_ in params.items() if (p := _bind(type_, self.dialect))
        }

    def params(self, values: dict[str, Any]) -> dict[str, Any]:
        out = dict(values)
        for key, process in self.param_processors.items():
            if out.get(key) is not None:
                out[key] = process(out[key])
        return out

    def decode(self, row: Sequence[Any]) -> list[Any]:
        out: list[Any] = []
        position = 0
        for model, nullable, columns, as_row in self.groups:
            values = {}
            for key, process in columns:
                value = row[position]
                position += 1
                values[key] = process(value) if process is not None and value is not None else value
            if model is None:
                out.append(next(iter(values.values())))
            elif nullable and all(v is None for v in values.values()):
                out.append(None)
            elif as_row:
                plain = Row(values)
                plain.model = model
                out.append(plain)
            else:
                out.append(model(**values))
        return out

    async def send(
        self, connection: AsyncConnection[Any], values: dict[str, Any]
    ) -> AsyncCursor[Any]:
        """Queue the query (inside a pipeline it goes out with the others); fetch later."""
        return await connection.execute(self.sql, self.params(values))


def connect_kwargs(settings: Settings, url: sa.URL | str) -> dict[str, Any]:
    """psycopg connection arguments for the app's database URL."""
    parsed = make_url(url)
    kwargs: dict[str, Any] = {
        k: v
        for k, v in {
            "host": parsed.host,
            "port": parsed.port,
            "user": parsed.username,
            "password": parsed.password,
            "dbname": parsed.database,
        }.items()
        if v is not None
    }
    kwargs.update({k: v for k, v in parsed.query.items() if isinstance(v, str)})
    kwargs.update(postgres_connect_args(settings))  # as the engine's connections
    return kwargs


class Statement:
    """Any other statement (an UPDATE ...) compiled once for a dialect, with its parameters'
    bind processors; run with the driver's ``execute(sql, statement.params(values))``."""

    def __init__(
        self,
        statement: sa.Executable,
        params: dict[str, sa.types.TypeEngine[Any]],
        dialect: str = "postgresql",
    ) -> None:
        self.dialect = DIALECTS[dialect]
        self.sql = statement.compile(dialect=self.dialect).string  # type: ignore[attr-defined]
        self.param_processors = {
            name: p for name, type_ in params.items() if (p := _bind(type_, self.dialect))
        }

    def params(self, values: dict[str, Any]) -> dict[str, Any]:
        out = dict(values)
        for key, process in self.param_processors.items():
            if out.get(key) is not None:
                out[key] = process(out[key])
        return out


def per_dialect(make: Callable[[str], Any]) -> dict[str, Any]:
    """``{dialect: make(dialect)}`` for both supported databases."""
    return {name: make(name) for name in DIALECTS}
