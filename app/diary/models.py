"""Diary entries: an envelope per client UUID, immutable versions, and typed rows per kind.

An entry is never overwritten: each correction adds a ``diary_entry_version``; the entry row only
points at its newest version. The typed tables (MG-ADL items, vitals, symptoms, doses, steps)
hold every version's values so they can be queried without opening JSON.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel, col

from app.core.models import (
    UTCDateTime,
    created_at_field,
    json_field,
    new_id,
    utc_column,
    uuid_pk,
)

ENTRY_KINDS = ("mg_adl", "vitals", "symptoms", "medication_dose", "steps", "note")


class DiaryEntry(SQLModel, table=True):
    __tablename__ = "diary_entry"
    __table_args__ = (
        sa.UniqueConstraint("participant_id", "client_entry_id"),
        sa.Index("ix_diary_entry_participant_id_diary_date", "participant_id", "diary_date"),
        sa.Index(
            "ix_diary_entry_participant_id_kind_diary_date", "participant_id", "kind", "diary_date"
        ),
        # The safety rules read a participant's recent observations by time (app/safety).
        sa.Index(
            "ix_diary_entry_participant_id_kind_recorded_at",
            "participant_id",
            "kind",
            "recorded_at",
        ),
        sa.CheckConstraint(
            "kind IN ('mg_adl', 'vitals', 'symptoms', 'medication_dose', 'steps', 'note')",
            name="kind",
        ),
    )

    id: uuid.UUID = uuid_pk()
    participant_id: uuid.UUID = Field(foreign_key="participant.id")
    study_id: uuid.UUID = Field(foreign_key="study.id")
    #: The client-generated UUID: the entry's identity for the app, unique per participant.
    client_entry_id: uuid.UUID
    kind: str = Field(max_length=20)
    recorded_at: datetime = Field(sa_type=UTCDateTime(), nullable=False)
    #: The device's UTC offset when recorded, in minutes (timestamptz keeps no offset).
    recorded_offset_minutes: int
    time_zone: str = Field(max_length=64)
    diary_date: date
    received_at: datetime = created_at_field()
    #: SHA-256 of the canonical original submission: a re-sync of it is a duplicate.
    content_hash: str = Field(max_length=64)
    current_version: int = Field(default=1)
    flags: list[str] = json_field()


class DiaryEntryVersion(SQLModel, table=True):
    """One immutable version of an entry's data (append-only, like the audit trail)."""

    __tablename__ = "diary_entry_version"
    __table_args__ = (sa.UniqueConstraint("entry_id", "version"),)

    #: Monotonic: the order of the changes feed.
    seq: int | None = Field(
        default=None,
        primary_key=True,
        sa_type=sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
    )
    id: uuid.UUID = Field(default_factory=new_id, unique=True)
    #: Looked up through the unique (entry_id, version) index, which leads with it.
    entry_id: uuid.UUID = Field(foreign_key="diary_entry.id")
    participant_id: uuid.UUID = Field(foreign_key="participant.id", index=True)
    version: int
    data: dict[str, Any] = json_field()
    score: dict[str, Any] | None = json_field(nullable=True)
    reason: str | None = Field(default=None, max_length=2000)
    created_at: datetime = created_at_field()
    actor_type: str = Field(max_length=20)
    actor_id: str = Field(max_length=255)
    actor_role: str = Field(max_length=40)
    #: PostgreSQL transaction id of the writer; the changes feed only hands out versions whose
    #: transaction is older than every transaction still running (no skipped rows).
    txid: int | None = Field(default=None, sa_type=sa.BigInteger())


class DiaryConflict(SQLModel, table=True):
    """A submission that reused an entry id with different content, kept for data management."""

    __tablename__ = "diary_conflict"

    id: uuid.UUID = uuid_pk()
    participant_id: uuid.UUID = Field(foreign_key="participant.id", index=True)
    study_id: uuid.UUID = Field(foreign_key="study.id", index=True)
    entry_id: uuid.UUID = Field(foreign_key="diary_entry.id")
    client_entry_id: uuid.UUID
    payload: dict[str, Any] = json_field()
    content_hash: str = Field(max_length=64)
    received_at: datetime = created_at_field()
    status: str = Field(default="open", max_length=20)
    resolved_at: datetime | None = utc_column(nullable=True)
    resolution: str | None = Field(default=None, max_length=2000)


class MgAdlResponse(SQLModel, table=True):
    __tablename__ = "mg_adl_response"

    version_id: uuid.UUID = Field(foreign_key="diary_entry_version.id", primary_key=True)
    participant_id: uuid.UUID = Field(foreign_key="participant.id", index=True)
    talking: int
    chewing: int
    swallowing: int
    breathing: int
    brushing_teeth_or_combing_hair: int
    arising_from_chair: int
    double_vision: int
    eyelid_droop: int
    total: int
    ocular: int
    bulbar: int
    respiratory: int
    limb: int
    instrument_version: str = Field(max_length=40)
    recall_period_days: int


class VitalSign(SQLModel, table=True):
    __tablename__ = "vital_sign"
    __table_args__ = (
        # The safety rules look for a participant's fevers (app/safety/engine.py): a range on
        # the temperature finds them without walking every normal reading.
        sa.Index("ix_vital_sign_participant_id_temperature_c", "participant_id", "temperature_c"),
    )

    version_id: uuid.UUID = Field(foreign_key="diary_entry_version.id", primary_key=True)
    participant_id: uuid.UUID = Field(foreign_key="participant.id")
    temperature_c: float | None = None
    heart_rate_bpm: int | None = None
    spo2_percent: int | None = None
    systolic_mmhg: int | None = None
    diastolic_mmhg: int | None = None
    measured_at: datetime | None = utc_column(nullable=True)
    method: str | None = Field(default=None, max_length=40)


class SymptomReport(SQLModel, table=True):
    __tablename__ = "symptom_report"

    id: uuid.UUID = uuid_pk()
    version_id: uuid.UUID = Field(foreign_key="diary_entry_version.id", index=True)
    participant_id: uuid.UUID = Field(foreign_key="participant.id", index=True)
    code: str = Field(max_length=40)
    severity: int
    onset_at: datetime | None = utc_column(nullable=True)


class MedicationDose(SQLModel, table=True):
    __tablename__ = "medication_dose"

    version_id: uuid.UUID = Field(foreign_key="diary_entry_version.id", primary_key=True)
    participant_id: uuid.UUID = Field(foreign_key="participant.id", index=True)
    medication_code: str | None = Field(default=None, max_length=60)
    medication_text: str = Field(max_length=120)
    amount: float
    unit: str = Field(max_length=20)
    route: str = Field(max_length=20)
    taken_at: datetime | None = utc_column(nullable=True)
    schedule: str | None = Field(default=None, max_length=20)


class StepCount(SQLModel, table=True):
    __tablename__ = "step_count"
    __table_args__ = (
        sa.Index("ix_step_count_participant_id_step_date", "participant_id", "step_date"),
    )

    version_id: uuid.UUID = Field(foreign_key="diary_entry_version.id", primary_key=True)
    participant_id: uuid.UUID = Field(foreign_key="participant.id")
    step_date: date
    count: int
    source: str = Field(max_length=60)


class StepInterval(SQLModel, table=True):
    __tablename__ = "step_interval"

    id: int | None = Field(
        default=None,
        primary_key=True,
        sa_type=sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
    )
    version_id: uuid.UUID = Field(foreign_key="diary_entry_version.id", index=True)
    start_at: datetime = Field(sa_type=UTCDateTime(), nullable=False)
    end_at: datetime = Field(sa_type=UTCDateTime(), nullable=False)
    count: int


class IdempotencyRecord(SQLModel, table=True):
    """A completed request under an ``Idempotency-Key`` (per participant), for replays."""

    __tablename__ = "idempotency_record"
    __table_args__ = (sa.UniqueConstraint("participant_id", "key"),)

    id: uuid.UUID = uuid_pk()
    participant_id: uuid.UUID = Field(foreign_key="participant.id")
    key: str = Field(max_length=255)
    request_hash: str = Field(max_length=64)
    status_code: int
    response_body: dict[str, Any] = json_field()
    created_at: datetime = created_at_field()
    expires_at: datetime = Field(sa_type=UTCDateTime(), nullable=False)


def is_current_version() -> sa.ColumnElement[bool]:
    """Join condition: the version row that is its entry's current one."""
    return sa.and_(
        col(DiaryEntryVersion.entry_id) == DiaryEntry.id,
        col(DiaryEntryVersion.version) == DiaryEntry.current_version,
    )
