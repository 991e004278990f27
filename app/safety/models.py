"""Safety signals, the findings that make them up, and the app's prompts.

- ``safety_signal`` is what the contract calls a signal (an episode): one participant, one
  category, open while findings keep arriving inside the protocol's dedup window. Its
  ``priority`` is the highest of its findings; a higher one escalates it (and raises an alert).
  Investigators acknowledge, dismiss (with a reason) or convert it into an adverse event; those
  status changes are audited.
- ``safety_finding`` is append-only: one row per rule that fired on some evidence, with the rule
  id and version, the evidence (entry ids and values) and whether it escalated the signal.
- ``safety_prompt`` is append-only: the app is asked for something (a measured temperature after
  a fever-like symptom). A prompt is answered by the data itself - a later temperature reading -
  so nothing is updated; ``GET /app/v1/safety/prompts`` derives which are still open.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.models import created_at_field, json_field, utc_column, uuid_pk

SIGNAL_CATEGORIES = ("crs", "icans", "mg_worsening", "mg_crisis")
SIGNAL_PRIORITIES = ("routine", "high", "urgent")
SIGNAL_STATUSES = ("open", "acknowledged", "dismissed", "converted")
#: Statuses a new finding may still join (dismissed and converted signals are closed).
JOINABLE_STATUSES = ("open", "acknowledged")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class SafetySignal(SQLModel, table=True):
    __tablename__ = "safety_signal"
    __table_args__ = (
        sa.CheckConstraint(_in("category", SIGNAL_CATEGORIES), name="category"),
        sa.CheckConstraint(_in("priority", SIGNAL_PRIORITIES), name="priority"),
        sa.CheckConstraint(_in("status", SIGNAL_STATUSES), name="status"),
        sa.CheckConstraint("mode IN ('active', 'monitor')", name="mode"),
        sa.Index("ix_safety_signal_participant_id_category", "participant_id", "category"),
        sa.Index("ix_safety_signal_study_id_opened_at", "study_id", "opened_at"),
    )

    id: uuid.UUID = uuid_pk()
    study_id: uuid.UUID = Field(foreign_key="study.id")
    site_id: uuid.UUID = Field(foreign_key="site.id")
    participant_id: uuid.UUID = Field(foreign_key="participant.id")
    category: str = Field(max_length=20)
    priority: str = Field(max_length=20)
    status: str = Field(default="open", max_length=20)
    #: ``active`` signals raise alerts; ``monitor`` ones are recorded only (protocol rule modes).
    mode: str = Field(default="active", max_length=10)
    #: The rule (id@version) that opened the signal.
    first_rule: str = Field(max_length=80)
    opened_at: datetime = created_at_field()
    #: The instants of the earliest and latest evidence (entries' recorded times): the dedup
    #: window runs from the latest.
    first_evidence_at: datetime = utc_column()
    last_evidence_at: datetime = utc_column()
    finding_count: int = Field(default=1)
    #: Inside the protocol's post-dose risk window at the evidence that opened it.
    in_risk_window: bool = False
    days_since_dose: int | None = None
    #: Evidence items (entry ids, codes, values) of every finding, oldest first.
    evidence: list[dict[str, Any]] = json_field()
    updated_at: datetime = created_at_field()
    acknowledged_at: datetime | None = utc_column(nullable=True)
    acknowledged_by: str | None = Field(default=None, max_length=255)
    acknowledge_note: str | None = Field(default=None, max_length=2000)
    closed_at: datetime | None = utc_column(nullable=True)
    closed_by: str | None = Field(default=None, max_length=255)
    close_reason: str | None = Field(default=None, max_length=2000)
    adverse_event_id: uuid.UUID | None = None


class SafetyFinding(SQLModel, table=True):
    __tablename__ = "safety_finding"

    id: uuid.UUID = uuid_pk()
    signal_id: uuid.UUID = Field(foreign_key="safety_signal.id", index=True)
    participant_id: uuid.UUID = Field(foreign_key="participant.id")
    rule_id: str = Field(max_length=60)
    rule_version: str = Field(max_length=20)
    category: str = Field(max_length=20)
    #: Null for evidence-only findings (constitutional features joining a CRS signal).
    priority: str | None = Field(default=None, max_length=20)
    evidence_at: datetime = utc_column()
    evidence: list[dict[str, Any]] = json_field()
    in_risk_window: bool = False
    days_since_dose: int | None = None
    #: What the finding did to its signal: ``opened``, ``escalated`` or ``joined``.
    effect: str = Field(max_length=20)
    detected_at: datetime = created_at_field()


class SafetyPrompt(SQLModel, table=True):
    __tablename__ = "safety_prompt"
    __table_args__ = (
        sa.Index("ix_safety_prompt_participant_id_evidence_at", "participant_id", "evidence_at"),
    )

    id: uuid.UUID = uuid_pk()
    participant_id: uuid.UUID = Field(foreign_key="participant.id")
    study_id: uuid.UUID = Field(foreign_key="study.id")
    #: What the app should ask for: ``temperature``.
    kind: str = Field(max_length=30)
    rule_id: str = Field(max_length=60)
    rule_version: str = Field(max_length=20)
    #: The entry (client id) and instant that prompted it.
    entry_id: uuid.UUID
    evidence_at: datetime = utc_column()
    #: The prompt lapses at this instant if not answered.
    expires_at: datetime = utc_column()
    created_at: datetime = created_at_field()
