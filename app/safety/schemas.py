from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from app.core.schemas import NoControl, Reason, RequestModel, ResponseModel

Category = Literal["crs", "icans", "mg_worsening", "mg_crisis"]
Priority = Literal["routine", "high", "urgent"]
Status = Literal["open", "acknowledged", "dismissed", "converted"]
Note = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=2000),
    NoControl,
]


class FindingOut(ResponseModel):
    id: uuid.UUID
    rule_id: str = Field(description="The rule that fired, e.g. `crs.fever`.")
    rule_version: str
    category: Category
    priority: Priority | None = Field(description="Null for evidence-only findings.")
    evidence_at: datetime = Field(description="When the evidence was recorded (UTC).")
    evidence: list[dict[str, Any]]
    in_risk_window: bool
    days_since_dose: int | None
    effect: Literal["opened", "escalated", "joined"]
    detected_at: datetime


class SignalOut(ResponseModel):
    id: uuid.UUID
    study_id: uuid.UUID
    site_id: uuid.UUID
    participant_id: uuid.UUID
    category: Category
    priority: Priority = Field(description="The highest priority of the signal's findings.")
    status: Status
    mode: Literal["active", "monitor"] = Field(
        description="`monitor`: recorded under a protocol rule in monitor mode, not alerted."
    )
    first_rule: str = Field(description="`rule_id@version` of the finding that opened it.")
    opened_at: datetime
    first_evidence_at: datetime
    last_evidence_at: datetime
    finding_count: int
    in_risk_window: bool = Field(description="Inside a post-dose risk window when opened.")
    days_since_dose: int | None
    evidence: list[dict[str, Any]] = Field(
        description="Entry ids, fields, codes and values of every finding, oldest first."
    )
    updated_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    acknowledge_note: str | None
    closed_at: datetime | None
    closed_by: str | None
    close_reason: str | None
    adverse_event_id: uuid.UUID | None


class SignalDetail(SignalOut):
    findings: list[FindingOut]


class AcknowledgeBody(RequestModel):
    note: Note | None = None


class DismissBody(RequestModel):
    reason: Reason


class PromptOut(ResponseModel):
    id: uuid.UUID
    kind: Literal["temperature"] = Field(description="What to ask the participant for.")
    rule_id: str
    entry_id: uuid.UUID = Field(description="The diary entry (client id) that prompted it.")
    evidence_at: datetime
    expires_at: datetime
    created_at: datetime


class PromptList(ResponseModel):
    items: list[PromptOut]
