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
    out_of_window: bool = Field(
        description="The visit was done (`completed_on`) or, while not done, is scheduled "
        "(`target_date`, e.g. after a reschedule) outside its window."
    )
    cancel_reason: str | None
    protocol_target_date: date = Field(
        description="The target date the protocol gives this visit; `target_date` differs "
        "from it once the visit has been rescheduled."
    )
    rescheduled: bool = Field(description="`target_date` differs from `protocol_target_date`.")


class VisitUpdate(RequestModel):
    """One change to a visit, always with a `reason` (audited):

    - **complete**: `{"completed_on": "2026-02-03", "reason": "..."}` - the participant-local day
      it happened (not in the future); `status` omitted or `"completed"`.
    - **cancel**: `{"status": "cancelled", "reason": "..."}`.
    - **reschedule**: `{"target_date": "2026-02-10", "reason": "..."}` - the new
      participant-local date of a visit that is upcoming, open or overdue; `status` omitted or
      `"rescheduled"`. The window stays the protocol's; a date outside it is allowed and flagged
      `out_of_window`. Not before the participant's today or the schedule's first day, and at
      most 365 days after the window (422 naming `target_date` and the rule).
    """

    completed_on: date | None = None
    target_date: date | None = Field(default=None, description="New date (reschedule only).")
    status: Literal["completed", "cancelled", "rescheduled"] | None = Field(
        default=None,
        description="What to record; when omitted, `rescheduled` if `target_date` is given, "
        "else `completed`.",
    )
    reason: Reason


class VisitAdherence(ResponseModel):
    """Schedule adherence: visits completed inside their window / visits due so far."""

    participant_id: uuid.UUID
    subject_code: str
    site_id: uuid.UUID
    as_of: date = Field(
        description="The participant-local day evaluated: today, or the withdrawal day."
    )
    due: int = Field(
        description="Visits due so far: completed ones and those whose window has closed "
        "(cancelled visits never count)."
    )
    completed_in_window: int
    completed_out_of_window: int
    adherence: float | None = Field(
        description="`completed_in_window / due`, 0-1; null while nothing is due yet."
    )


class CalendarLink(ResponseModel):
    url: str = Field(description="Subscribe to this URL in a calendar app; keep it private.")
    feed_token: str
