"""A participant's medication list: one line per medication, corrected by immutable versions."""

from __future__ import annotations

import uuid
from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.models import UTCDateTime, created_at_field, utc_column, uuid_pk


class MedicationLine(SQLModel, table=True):
    __tablename__ = "medication_line"

    id: uuid.UUID = uuid_pk()
    participant_id: uuid.UUID = Field(foreign_key="participant.id", index=True)
    study_id: uuid.UUID = Field(foreign_key="study.id")
    current_version: int = Field(default=1)
    created_at: datetime = created_at_field()


class MedicationLineVersion(SQLModel, table=True):
    """What the line said from ``created_at`` on; append-only."""

    __tablename__ = "medication_line_version"
    __table_args__ = (sa.UniqueConstraint("line_id", "version"),)

    id: uuid.UUID = uuid_pk()
    line_id: uuid.UUID = Field(foreign_key="medication_line.id", index=True)
    version: int
    medication_code: str | None = Field(default=None, max_length=60)
    medication_text: str = Field(max_length=120)
    dose: float
    unit: str = Field(max_length=20)
    route: str = Field(max_length=20)
    frequency: str = Field(max_length=30)
    start_date: date
    stop_date: date | None = None
    reason: str | None = Field(default=None, max_length=2000)
    created_at: datetime = created_at_field()
    actor_type: str = Field(max_length=20)
    actor_id: str = Field(max_length=255)
    actor_role: str = Field(max_length=40)


class StudyDrugAdministration(SQLModel, table=True):
    """A dose or infusion of the study drug; corrected by versions, never overwritten."""

    __tablename__ = "study_drug_administration"

    id: uuid.UUID = uuid_pk()
    participant_id: uuid.UUID = Field(foreign_key="participant.id", index=True)
    study_id: uuid.UUID = Field(foreign_key="study.id")
    current_version: int = Field(default=1)
    created_at: datetime = created_at_field()


class StudyDrugAdministrationVersion(SQLModel, table=True):
    __tablename__ = "study_drug_administration_version"
    __table_args__ = (sa.UniqueConstraint("administration_id", "version"),)

    id: uuid.UUID = uuid_pk()
    administration_id: uuid.UUID = Field(foreign_key="study_drug_administration.id", index=True)
    participant_id: uuid.UUID = Field(foreign_key="participant.id", index=True)
    version: int
    product: str = Field(max_length=120)
    dose: float
    unit: str = Field(max_length=20)
    started_at: datetime = Field(sa_type=UTCDateTime(), nullable=False)
    ended_at: datetime | None = utc_column(nullable=True)
    start_date: date
    cycle: int | None = None
    dose_level: str | None = Field(default=None, max_length=40)
    reason: str | None = Field(default=None, max_length=2000)
    created_at: datetime = created_at_field()
    actor_id: str = Field(max_length=255)
    actor_role: str = Field(max_length=40)
