"""Persisted visit instances: stable ids per (participant, schedule key)."""

from __future__ import annotations

import uuid
from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.models import created_at_field, utc_column, uuid_pk


class Visit(SQLModel, table=True):
    __tablename__ = "visit"
    __table_args__ = (
        sa.UniqueConstraint("participant_id", "key"),
        sa.Index("ix_visit_study_id_target_date", "study_id", "target_date"),
        sa.Index("ix_visit_status_window_end", "status", "window_end"),
        sa.CheckConstraint(
            "status IN ('scheduled', 'completed', 'cancelled', 'missed')", name="status"
        ),
    )

    id: uuid.UUID = uuid_pk()
    participant_id: uuid.UUID = Field(foreign_key="participant.id", index=True)
    study_id: uuid.UUID = Field(foreign_key="study.id")
    key: str = Field(max_length=40)
    #: Shown as the visit's ``name`` in the API ("Week 4 visit"); never a person's name.
    label: str = Field(max_length=80)
    kind: str = Field(max_length=20)
    day: int
    target_date: date
    window_start: date
    window_end: date
    status: str = Field(default="scheduled", max_length=20)
    completed_on: date | None = None
    cancel_reason: str | None = Field(default=None, max_length=2000)
    #: When the sweep found the window closed without the visit (``status`` ``missed``). Kept if
    #: the visit is recorded completed or cancelled later (late data entry).
    missed_at: datetime | None = utc_column(nullable=True)
    #: iCalendar SEQUENCE: bumped whenever the visit's dates or status change.
    sequence: int = Field(default=0)
    created_at: datetime = created_at_field()
    updated_at: datetime = created_at_field()


class CalendarFeed(SQLModel, table=True):
    """The participant's calendar-feed generation; rotating bumps it and old URLs stop working.

    The feed token is derived (HMAC) from the participant id and this generation, so no token
    is stored.
    """

    __tablename__ = "calendar_feed"

    participant_id: uuid.UUID = Field(foreign_key="participant.id", primary_key=True)
    generation: int = Field(default=1)
    rotated_at: datetime = created_at_field()
