"""Participants: pseudonymous, per study and site. No names, contact data or birth dates."""

from __future__ import annotations

import uuid
from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.models import created_at_field, utc_column, uuid_pk

PARTICIPANT_STATUSES = ("screening", "enrolled", "withdrawn", "completed")


class Participant(SQLModel, table=True):
    __tablename__ = "participant"
    __table_args__ = (
        sa.UniqueConstraint("study_id", "subject_code"),
        sa.CheckConstraint(
            "status IN ('screening', 'enrolled', 'withdrawn', 'completed')", name="status"
        ),
        sa.Index("ix_participant_study_id_site_id", "study_id", "site_id"),
    )

    id: uuid.UUID = uuid_pk()
    study_id: uuid.UUID = Field(foreign_key="study.id")
    site_id: uuid.UUID = Field(foreign_key="site.id")
    protocol_version_id: uuid.UUID = Field(foreign_key="protocol_version.id")
    subject_code: str = Field(max_length=40)
    time_zone: str = Field(max_length=64)
    status: str = Field(default="enrolled", max_length=20)
    enrolled_date: date
    day0_date: date | None = None
    dose_level: str | None = Field(default=None, max_length=40)
    created_at: datetime = created_at_field()
    updated_at: datetime = created_at_field()
    withdrawn_at: datetime | None = utc_column(nullable=True)
    withdrawal_reason: str | None = Field(default=None, max_length=2000)
    activated_at: datetime | None = utc_column(nullable=True)
