from __future__ import annotations

import uuid
from datetime import date
from typing import Literal

from pydantic import Field

from app.core.schemas import Reason, RequestModel, ResponseModel


class VisitOut(ResponseModel):
    id: uuid.UUID
    participant_id: uuid.UUID
    name: str
    kind: Literal["screening", "clinic", "dosing"]
    day: int = Field(description="Target day relative to day 0.")
    target_date: date
    window_start: date
    window_end: date
    status: Literal["upcoming", "open", "overdue", "missed", "completed", "cancelled"]
    completed_on: date | None
    out_of_window: bool
    cancel_reason: str | None


class VisitUpdate(RequestModel):
    """Record a visit as done (`completed_on`, participant-local) or `cancelled`, with a reason."""

    completed_on: date | None = None
    status: Literal["completed", "cancelled"] = "completed"
    reason: Reason


class CalendarLink(ResponseModel):
    url: str = Field(description="Subscribe to this URL in a calendar app; keep it private.")
    feed_token: str
