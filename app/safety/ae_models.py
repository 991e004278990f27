"""Adverse events recorded by investigators, corrected only by immutable versions.

``adverse_event`` is the head (participant, study, the site it was recorded at, the safety signal
it was converted from); ``adverse_event_version`` is append-only (database triggers refuse UPDATE
and DELETE), one row per recording or correction, like the other clinical records
(``app.audit.versioning``).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.models import created_at_field, json_field, uuid_pk

RELATEDNESS: Final = ("not_related", "unlikely", "possible", "probable", "definite")
#: Relatedness counted as treatment-related in reports.
RELATED: Final = ("possible", "probable", "definite")
SERIOUSNESS_CRITERIA: Final = (
    "death",
    "life_threatening",
    "hospitalisation",
    "disability",
    "congenital_anomaly",
    "important_medical_event",
)
OUTCOMES: Final = (
    "recovered",
    "recovering",
    "not_recovered",
    "recovered_with_sequelae",
    "fatal",
    "unknown",
)
ACTIONS_TAKEN: Final = ("none", "dose_reduced", "interrupted", "withdrawn", "not_applicable")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class AdverseEvent(SQLModel, table=True):
    __tablename__ = "adverse_event"
    __table_args__ = (
        # A signal is converted into one adverse event at most.
        sa.UniqueConstraint("signal_id"),
        sa.Index("ix_adverse_event_study_id_site_id", "study_id", "site_id"),
    )

    id: uuid.UUID = uuid_pk()
    participant_id: uuid.UUID = Field(foreign_key="participant.id", index=True)
    study_id: uuid.UUID = Field(foreign_key="study.id")
    #: The participant's site when the event was recorded.
    site_id: uuid.UUID = Field(foreign_key="site.id")
    current_version: int = Field(default=1)
    created_at: datetime = created_at_field()
    signal_id: uuid.UUID | None = Field(default=None, foreign_key="safety_signal.id")


class AdverseEventVersion(SQLModel, table=True):
    __tablename__ = "adverse_event_version"
    __table_args__ = (
        sa.UniqueConstraint("adverse_event_id", "version"),
        sa.CheckConstraint("grade BETWEEN 1 AND 5", name="grade"),
        sa.CheckConstraint(_in("relatedness", RELATEDNESS), name="relatedness"),
        sa.CheckConstraint(_in("outcome", OUTCOMES), name="outcome"),
        sa.CheckConstraint(_in("action_taken", ACTIONS_TAKEN), name="action_taken"),
    )

    id: uuid.UUID = uuid_pk()
    adverse_event_id: uuid.UUID = Field(foreign_key="adverse_event.id", index=True)
    participant_id: uuid.UUID = Field(foreign_key="participant.id", index=True)
    version: int
    #: The CTCAE term exactly, its MedDRA code and the CTCAE version (app.safety.ctcae).
    ctcae_term: str = Field(max_length=80)
    meddra_code: str = Field(max_length=12)
    ctcae_version: str = Field(max_length=10)
    grade: int
    #: Clinician inputs of the ASTCT grades (app.safety.grading) and the grades they give.
    crs_inputs: dict[str, Any] | None = json_field(nullable=True)
    astct_grade: int | None = None
    icans_inputs: dict[str, Any] | None = json_field(nullable=True)
    icans_grade: int | None = None
    #: ``GRADING_VERSION`` of a computed grade (null when the grade is the investigator's).
    grading_version: str | None = Field(default=None, max_length=20)
    serious: bool
    seriousness_criteria: list[str] = json_field()
    relatedness: str = Field(max_length=20)
    expected: bool
    onset_date: date
    resolution_date: date | None = None
    outcome: str = Field(max_length=30)
    action_taken: str = Field(max_length=20)
    reason: str | None = Field(default=None, max_length=2000)
    created_at: datetime = created_at_field()
    actor_id: str = Field(max_length=255)
    actor_role: str = Field(max_length=40)
