"""Shared model plumbing: the metadata naming convention, UUID keys and UTC timestamps.

Importing this module installs the naming convention, so every table module imports it first.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import uuid_utils.compat
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLModel.metadata.naming_convention = NAMING_CONVENTION


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """``timestamptz`` on PostgreSQL; on SQLite an ISO string that comes back UTC-aware.

    Naive datetimes are refused: an instant without an offset is ambiguous.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime stored; give it a time zone")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


#: A new row key: a time-ordered UUIDv7 (RFC 9562: 48 bits of Unix milliseconds, then random
#: bits; monotonic within a millisecond). A random UUIDv4 key puts each insert on a random page
#: of every index on it, so inserts touch - and PostgreSQL writes full-page images of - pages
#: all over the index; v7 keys append at its right edge. Measured in process, 20,000 single
#: entries on PostgreSQL with a checkpoint every 5,000 (docs/performance.md): WAL per request
#: 4.0 -> 5.7 KiB with v4 keys as the tables grew, 3.9 -> 4.9 KiB with v7; primary-key indexes
#: 22 % smaller. The key tells when the row was created, which every such row records anyway.
#: Python 3.14 has ``uuid.uuid7``; before it, uuid-utils' (stdlib ``uuid.UUID`` values; a
#: counter keeps the keys of one millisecond in order without moving their time - the uuid6
#: package's ``uuid7`` adds a millisecond per key instead: 10,000 keys ran 10 s ahead).
#: What is not a row key - a token's session family, a request id - stays random (uuid4).
new_id: Callable[[], uuid.UUID] = getattr(uuid, "uuid7", None) or uuid_utils.compat.uuid7


def uuid_pk() -> Any:
    return Field(default_factory=new_id, primary_key=True)


def utc_column(*, nullable: bool = False, index: bool = False) -> Any:
    return Field(
        default=None,
        sa_type=UTCDateTime(),
        nullable=nullable,
        index=index,
    )


def created_at_field() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)


def json_field(*, nullable: bool = False) -> Any:
    return Field(
        default=None,
        sa_type=sa.JSON().with_variant(JSONB(), "postgresql"),
        nullable=nullable,
    )
