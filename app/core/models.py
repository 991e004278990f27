"""Shared model plumbing: the metadata naming convention, UUID keys and UTC timestamps.

Importing this module installs the naming convention, so every table module imports it first.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
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


def uuid_pk() -> Any:
    return Field(default_factory=uuid.uuid4, primary_key=True)


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
