"""Studies, their sites and their versioned protocol definitions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.models import created_at_field, json_field, uuid_pk


class Study(SQLModel, table=True):
    __tablename__ = "study"

    id: uuid.UUID = uuid_pk()
    registry_id: str | None = Field(default=None, max_length=40, unique=True)
    title: str = Field(max_length=300)
    time_zone: str = Field(max_length=64)
    status: str = Field(default="active", max_length=20)
    current_protocol_version: int = Field(default=1)
    created_at: datetime = created_at_field()
    created_by: str = Field(max_length=255)


class Site(SQLModel, table=True):
    __tablename__ = "site"
    __table_args__ = (sa.UniqueConstraint("study_id", "code"),)

    id: uuid.UUID = uuid_pk()
    study_id: uuid.UUID = Field(foreign_key="study.id", index=True)
    code: str = Field(max_length=40)
    name: str = Field(max_length=200)
    time_zone: str | None = Field(default=None, max_length=64)
    created_at: datetime = created_at_field()


class ProtocolVersion(SQLModel, table=True):
    """One immutable version of a study's protocol definition."""

    __tablename__ = "protocol_version"
    __table_args__ = (sa.UniqueConstraint("study_id", "version"),)

    id: uuid.UUID = uuid_pk()
    study_id: uuid.UUID = Field(foreign_key="study.id", index=True)
    version: int = Field(ge=1)
    definition: dict[str, Any] = json_field()
    reason: str | None = Field(default=None, max_length=2000)
    created_at: datetime = created_at_field()
    created_by: str = Field(max_length=255)
