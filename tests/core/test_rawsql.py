"""app/core/rawsql.py: the bulk writes of the capture paths store exactly the values given.

``insert_json`` (a sync batch's rows, every row of a table in one JSON parameter expanded by
``json_populate_recordset``) must store what ``multi_insert`` (a single entry's rows: one
parameter per value, through the columns' own bind processors) stores, for every column type
the tables use, and refuse what it refuses.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, cast

import psycopg
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

from app.core import rawsql
from app.core.models import UTCDateTime
from tests.conftest import TEST_DATABASE_URL

_METADATA = sa.MetaData()
#: One column of each type the models use (SQLModel's AutoString is a String).
_TABLE = sa.Table(
    "rawsql_probe",
    _METADATA,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("text", sa.String(40)),
    sa.Column("count", sa.Integer()),
    sa.Column("big", sa.BigInteger()),
    sa.Column("value", sa.Float()),
    sa.Column("flag", sa.Boolean()),
    sa.Column("day", sa.Date()),
    sa.Column("at", UTCDateTime()),
    sa.Column("doc", sa.JSON().with_variant(JSONB(), "postgresql")),  # as app/core/models.py
    sa.Column("other", sa.Uuid()),
    sa.Column("filled", sa.Integer(), server_default="7"),
)


def test_every_column_of_the_schema_goes_through_json() -> None:
    """Every column type of the models is one whose values JSON carries exactly, so every table
    can be bulk-written (a new type must be checked and added to ``_JSON_READY``;
    ``insert_json`` refuses a table that has another)."""
    import app.main  # noqa: F401  (every model registered)

    unready = [
        f"{table.name}.{column.name}: {column.type!r}"
        for table in SQLModel.metadata.sorted_tables
        for column in table.columns
        if not rawsql._json_ready(column.type)
    ]
    assert unready == []
    assert rawsql.insert_for(_TABLE, ("id", "text")).json_sql is not None


class _Upper(sa.types.TypeDecorator[str]):
    """A type that converts on the way in: JSON would skip its conversion."""

    impl = sa.String()
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return value.upper() if value is not None else None


def test_a_converting_type_decorator_is_not_json_ready() -> None:
    assert not rawsql._json_ready(_Upper())
    assert rawsql._json_ready(UTCDateTime())


def test_a_table_with_an_unchecked_type_is_refused() -> None:
    table = sa.Table("rawsql_unready", sa.MetaData(), sa.Column("name", _Upper()))
    with pytest.raises(TypeError, match="rawsql_unready"):
        asyncio.run(rawsql.insert_json(cast(Any, None), table, [{"name": "x"}]))


def test_a_naive_datetime_is_refused_not_guessed() -> None:
    """orjson would write it without an offset, and PostgreSQL would read it in the session's
    zone; UTCDateTime refuses it, and so does the JSON path."""
    statement = rawsql.insert_for(_TABLE, ("id", "at"))
    statement.check_json([{"id": uuid.uuid4(), "at": datetime(2026, 12, 6, 21, tzinfo=UTC)}])
    with pytest.raises(ValueError, match="naive datetime"):
        statement.check_json([{"id": uuid.uuid4(), "at": datetime(2026, 12, 6, 21, 0)}])


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_are_refused(value: float) -> None:
    """orjson would write them as null: a silent change of a measurement, so they are refused
    (input validation refuses them first; this is the last line)."""
    statement = rawsql.insert_for(_TABLE, ("id", "value"))
    statement.check_json([{"id": uuid.uuid4(), "value": 37.5}, {"id": uuid.uuid4(), "value": None}])
    with pytest.raises(ValueError, match="not a finite number"):
        statement.check_json([{"id": uuid.uuid4(), "value": value}])
    documents = rawsql.insert_for(_TABLE, ("id", "doc"))
    documents.check_json([{"id": uuid.uuid4(), "doc": {"a": [1, 2.5, {"b": None}]}}])
    for doc in ({"t": value}, [1, {"x": [value]}], value):
        with pytest.raises(ValueError, match="non-finite"):
            documents.check_json([{"id": uuid.uuid4(), "doc": doc}])


def _psycopg_url() -> str:
    url = make_url(TEST_DATABASE_URL).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def probe() -> Iterator[None]:
    if not TEST_DATABASE_URL.startswith("postgresql"):
        pytest.skip("needs PostgreSQL (set MGDIARY_TEST_DATABASE_URL)")
    engine = sa.create_engine(TEST_DATABASE_URL)
    _METADATA.drop_all(engine)
    _METADATA.create_all(engine)
    try:
        yield
    finally:
        _METADATA.drop_all(engine)
        engine.dispose()


async def _store(rows: list[dict[str, Any]], how: str) -> list[tuple[Any, ...]]:
    """Insert the rows in a transaction that is rolled back; return what was stored."""
    async with await psycopg.AsyncConnection.connect(_psycopg_url()) as conn:
        async with conn.cursor() as cursor:
            if how == "json":
                await rawsql.insert_json(cursor, _TABLE, rows)
            else:
                statement = rawsql.multi_insert([(_TABLE, rows)])
                assert statement is not None
                async with psycopg.AsyncRawCursor(conn) as raw:
                    await raw.execute(*statement)
            await cursor.execute(
                "SELECT id, text, count, big, value, flag, day, at, doc, other, filled"
                " FROM rawsql_probe ORDER BY id"
            )
            stored = await cursor.fetchall()
        await conn.rollback()
    return stored


_TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=40)
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False, width=64)
    | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12,
)
_ZONES = st.sampled_from([UTC, timezone(timedelta(hours=13)), timezone(timedelta(hours=-9.5))])
_AT = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=_ZONES)


def _row() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"id": st.uuids()},
        optional={
            "text": st.none() | _TEXT,
            "count": st.none() | st.integers(-(2**31), 2**31 - 1),
            "big": st.none() | st.integers(-(2**63), 2**63 - 1),
            "value": st.none() | st.floats(allow_nan=False, allow_infinity=False, width=64),
            "flag": st.none() | st.booleans(),
            "day": st.none() | st.dates(min_value=date(1, 1, 1)),
            "at": st.none() | _AT,
            "doc": _JSON.filter(lambda v: v is not None),
            "other": st.none() | st.uuids(),
        },
    )


@pytest.mark.postgres_only
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(_row(), min_size=1, max_size=6, unique_by=lambda r: r["id"]))
def test_json_stores_what_parameters_store(probe: None, rows: list[dict[str, Any]]) -> None:
    """Rows with different key sets go in as separate groups; left-out columns get their
    defaults; every value comes back as parameters store it (floats to the bit, datetimes to the
    microsecond, nested JSON with any text)."""
    by_json = asyncio.run(_store(rows, "json"))
    by_parameters = asyncio.run(_store(rows, "parameters"))
    assert by_json == by_parameters
    assert len(by_json) == len(rows)
    stored = {row[0]: row for row in by_json}
    for row in rows:
        if "at" in row and row["at"] is not None:
            assert stored[row["id"]][7] == row["at"]
        if "value" in row and row["value"] is not None:
            assert stored[row["id"]][4] == row["value"]


@pytest.mark.postgres_only
def test_json_refuses_what_the_column_refuses(probe: None) -> None:
    """Too long for the column is an error, never cut short (an explicit cast to varchar(n)
    truncates; the recordset's input conversion must not)."""
    with pytest.raises(psycopg.errors.StringDataRightTruncation):
        asyncio.run(_store([{"id": uuid.uuid4(), "text": "x" * 41}], "json"))
    with pytest.raises(psycopg.errors.NumericValueOutOfRange):
        asyncio.run(_store([{"id": uuid.uuid4(), "count": 2**31}], "json"))
