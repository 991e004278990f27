"""Clinic data: instrument assessments and lab results, each corrected by immutable versions."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.models import UTCDateTime, created_at_field, json_field, uuid_pk

INSTRUMENTS = ("mg_adl", "qmg", "mgc", "mg_qol15r", "mg_qol15")
ANALYTES = (
    "anti_achr",
    "anti_musk",
    "anti_lrp4",
    "cd19_b_cells",
    "b_cells_naive",
    "b_cells_memory",
    "car_t_cells",
    "igg",
)


class ClinicAssessment(SQLModel, table=True):
    __tablename__ = "clinic_assessment"

    id: uuid.UUID = uuid_pk()
    participant_id: uuid.UUID = Field(foreign_key="participant.id", index=True)
    study_id: uuid.UUID = Field(foreign_key="study.id")
    instrument: str = Field(max_length=20)
    current_version: int = Field(default=1)
    created_at: datetime = created_at_field()


class ClinicAssessmentVersion(SQLModel, table=True):
    __tablename__ = "clinic_assessment_version"
    __table_args__ = (
        sa.UniqueConstraint("assessment_id", "version"),
        sa.Index(
            "ix_clinic_assessment_version_participant",
            "participant_id",
            "instrument",
            "assessed_date",
        ),
    )

    id: uuid.UUID = uuid_pk()
    assessment_id: uuid.UUID = Field(foreign_key="clinic_assessment.id", index=True)
    participant_id: uuid.UUID = Field(foreign_key="participant.id")
    version: int
    instrument: str = Field(max_length=20)
    assessed_at: datetime = Field(sa_type=UTCDateTime(), nullable=False)
    assessed_date: date
    visit_id: uuid.UUID | None = None
    items: dict[str, Any] = json_field()
    measurements: dict[str, Any] | None = json_field(nullable=True)
    sex: str | None = Field(default=None, max_length=10)
    total: int
    subscores: dict[str, Any] = json_field()
    instrument_version: str = Field(max_length=40)
    reason: str | None = Field(default=None, max_length=2000)
    created_at: datetime = created_at_field()
    actor_id: str = Field(max_length=255)
    actor_role: str = Field(max_length=40)


class LabResult(SQLModel, table=True):
    __tablename__ = "lab_result"

    id: uuid.UUID = uuid_pk()
    participant_id: uuid.UUID = Field(foreign_key="participant.id", index=True)
    study_id: uuid.UUID = Field(foreign_key="study.id")
    analyte: str = Field(max_length=30)
    current_version: int = Field(default=1)
    created_at: datetime = created_at_field()


class LabResultVersion(SQLModel, table=True):
    __tablename__ = "lab_result_version"
    __table_args__ = (sa.UniqueConstraint("lab_id", "version"),)

    id: uuid.UUID = uuid_pk()
    lab_id: uuid.UUID = Field(foreign_key="lab_result.id", index=True)
    participant_id: uuid.UUID = Field(foreign_key="participant.id", index=True)
    version: int
    analyte: str = Field(max_length=30)
    value: float
    unit: str = Field(max_length=20)
    qualifier: str = Field(default="=", max_length=2)
    collected_at: datetime = Field(sa_type=UTCDateTime(), nullable=False)
    collected_date: date
    visit_id: uuid.UUID | None = None
    reason: str | None = Field(default=None, max_length=2000)
    created_at: datetime = created_at_field()
    actor_id: str = Field(max_length=255)
    actor_role: str = Field(max_length=40)
