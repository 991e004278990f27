from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from app.core.schemas import ResponseModel


class AlertOut(ResponseModel):
    id: uuid.UUID
    study_id: uuid.UUID
    site_id: uuid.UUID | None = Field(description="Null for study-wide operational alerts.")
    participant_id: uuid.UUID | None
    type: str = Field(description="The event type, e.g. `visit.missed`.")
    priority: Literal["routine", "high", "urgent"]
    subject_type: str = Field(description="What the alert is about, e.g. `visit`.")
    subject_id: str
    data: dict[str, Any] = Field(description="Identifiers, codes and dates only; no free text.")
    created_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None


class UnreadCounts(ResponseModel):
    total: int
    by_priority: dict[str, int] = Field(description="`routine`, `high`, `urgent`.")
    by_type: dict[str, int] = Field(description="By event type, e.g. `safety.signal.raised`.")
