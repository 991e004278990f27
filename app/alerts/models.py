"""The ``alert`` table: the investigators' inbox and the source of webhook deliveries.

An alert records that something a site must look at happened (a visit was missed, a safety
signal was raised or escalated, an adverse event was recorded, a webhook endpoint keeps failing).
Rows are appended once per event - ``dedup_key`` is unique, so the same event is never recorded
twice - and only their acknowledgement is ever updated. ``data`` holds identifiers, codes, dates,
grades and priorities only, never free text: it is what a webhook receiver will get (issue 7).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.models import created_at_field, json_field, utc_column, uuid_pk

ALERT_PRIORITIES = ("routine", "high", "urgent")


class Alert(SQLModel, table=True):
    __tablename__ = "alert"
    __table_args__ = (
        sa.UniqueConstraint("dedup_key"),
        sa.CheckConstraint("priority IN ('routine', 'high', 'urgent')", name="priority"),
        sa.Index("ix_alert_study_id_created_at", "study_id", "created_at"),
    )

    id: uuid.UUID = uuid_pk()
    study_id: uuid.UUID = Field(foreign_key="study.id")
    #: Null for study-wide operational alerts (e.g. a failing webhook endpoint).
    site_id: uuid.UUID | None = Field(default=None, foreign_key="site.id")
    participant_id: uuid.UUID | None = Field(default=None, foreign_key="participant.id")
    #: The event type, as webhooks name it: ``visit.missed``, ``safety.signal.raised`` ...
    type: str = Field(max_length=60)
    priority: str = Field(max_length=20)
    #: The entity the alert is about (``visit`` and its id, ``safety_signal`` and its id ...).
    subject_type: str = Field(max_length=60)
    subject_id: str = Field(max_length=64)
    data: dict[str, Any] = json_field()
    #: ``<type>:<what makes it one event>``, e.g. ``visit.missed:<visit id>``.
    dedup_key: str = Field(max_length=200)
    created_at: datetime = created_at_field()
    acknowledged_at: datetime | None = utc_column(nullable=True)
    acknowledged_by: str | None = Field(default=None, max_length=255)
