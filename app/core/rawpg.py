"""SQLAlchemy-defined statements run straight on psycopg's async connections, pipelined.

The diary capture path on PostgreSQL (app/diary/capture.py) makes two network round trips per
request: its reads in one pipeline, its inserts and the COMMIT in another. SQLAlchemy cannot
pipeline, and its per-statement cost (measured on this machine: about 0.3-0.4 ms of CPU per
round trip through the async session, against about 0.1 ms for psycopg alone; see
docs/performance.md) was most of a request's CPU. So the tables and queries stay defined in
SQLAlchemy - the models are the one source of truth for names and types - and this module
compiles each statement once for the PostgreSQL dialect and applies the columns' own bind and
result processors (the same conversions SQLAlchemy would apply), then runs it with psycopg.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

import sqlalchemy as sa
from psycopg import AsyncConnection, AsyncCursor
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

from app.core.config import Settings
from app.core.db import postgres_connect_args

DIALECT = postgresql.dialect(paramstyle="pyformat")  # type: ignore[no-untyped-call]
Processor = Callable[[Any], Any] | None


def _bind(column: sa.Column[Any]) -> Processor:
    return column.type.dialect_impl(DIALECT).bind_processor(DIALECT)


def _result(column: sa.ColumnElement[Any]) -> Processor:
    return column.type.dialect_impl(DIALECT).result_processor(DIALECT, None)


class Insert:
    """``INSERT INTO table (keys) VALUES (...)`` for rows with the same keys."""

    def __init__(self, table: sa.Table, keys: tuple[str, ...]) -> None:
        columns = [table.c[k] for k in keys]
        names = ", ".join(DIALECT.identifier_preparer.quote(c.name) for c in columns)
        values = ", ".join(f"%({k})s" for k in keys)
        target = DIALECT.identifier_preparer.format_table(table)
        self.sql = f"INSERT INTO {target} ({names}) VALUES ({values})"
        self.copy_sql = f"COPY {target} ({names}) FROM STDIN"
        self.processors = [(k, p) for k, c in zip(keys, columns, strict=True) if (p := _bind(c))]

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
def insert_for(table: sa.Table, keys: tuple[str, ...]) -> Insert:
    return Insert(table, keys)


async def insert_rows(
    cursor: AsyncCursor[Any], table: sa.Table, rows: Sequence[dict[str, Any]]
) -> None:
    """Queue the rows (grouped by their keys) on a pipelined connection's cursor."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row), []).append(row)
    for keys, group in groups.items():
        statement = insert_for(table, keys)
        if len(group) == 1:  # the common case of a single entry: execute costs less
            await cursor.execute(statement.sql, statement.params(group[0]))
        else:
            await cursor.executemany(statement.sql, [statement.params(r) for r in group])


async def copy_rows(
    cursor: AsyncCursor[Any], table: sa.Table, rows: Sequence[dict[str, Any]]
) -> None:
    """COPY the rows in (text format; grouped by their keys): one round trip per group."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row), []).append(row)
    for keys, group in groups.items():
        statement = insert_for(table, keys)
        async with cursor.copy(statement.copy_sql) as copy:
            for row in group:
                values = statement.params(row)
                await copy.write_row([values[k] for k in keys])


class Query:
    """A SELECT compiled once. Its select list is made of entities: a table model (all its
    columns, in table order, as the ORM loads them) or a labelled column expression. Each row
    comes back as one value per entity: a model instance or the processed column value."""

    def __init__(
        self,
        entities: Sequence[Any],
        build: Callable[[sa.Select[Any]], sa.Select[Any]],
        params: dict[str, sa.types.TypeEngine[Any]],
    ) -> None:
        columns: list[sa.ColumnElement[Any]] = []
        self.groups: list[tuple[Any, list[tuple[str, Processor]]]] = []
        for entity in entities:
            table = getattr(entity, "__table__", None)
            group = list(table.columns) if table is not None else [entity]
            columns += group
            self.groups.append(
                (entity if table is not None else None, [(c.key, _result(c)) for c in group])
            )
        statement = build(sa.select(*columns))
        self.sql = statement.compile(dialect=DIALECT).string
        self.param_processors = {
            name: p
            for name, type_ in params.items()
            if (p := type_.dialect_impl(DIALECT).bind_processor(DIALECT))
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
        for model, columns in self.groups:
            values = {}
            for key, process in columns:
                value = row[position]
                position += 1
                values[key] = process(value) if process is not None and value is not None else value
            out.append(model(**values) if model is not None else next(iter(values.values())))
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
