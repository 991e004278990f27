"""The append-only audit trail (21 CFR Part 11, ICH E6(R3)): who, when, what changed, why."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.models import UTCDateTime, json_field, utcnow, uuid_pk


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"
    __table_args__ = (
        sa.Index("ix_audit_event_entity", "entity_type", "entity_id"),
        sa.Index("ix_audit_event_participant_id_occurred_at", "participant_id", "occurred_at"),
        sa.Index("ix_audit_event_study_id_occurred_at", "study_id", "occurred_at"),
    )

    id: uuid.UUID = uuid_pk()
    occurred_at: datetime = Field(
        default_factory=utcnow, sa_type=UTCDateTime(), nullable=False, index=True
    )
    actor_type: str = Field(max_length=20)  # participant | staff | system
    actor_id: str = Field(max_length=255)
    actor_role: str = Field(max_length=40)
    action: str = Field(max_length=60)
    entity_type: str = Field(max_length=60)
    entity_id: str = Field(max_length=64)
    study_id: uuid.UUID | None = Field(default=None)
    participant_id: uuid.UUID | None = Field(default=None)
    changes: dict[str, Any] = json_field()
    reason: str | None = Field(default=None, max_length=2000)
    request_id: str | None = Field(default=None, max_length=128)
