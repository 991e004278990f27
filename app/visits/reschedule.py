"""Moving one pending visit to another participant-local date, with a reason (issue 5 item 2).

The visit keeps its id and its protocol window; only ``target_date`` moves. The move is audited
as ``visit.reschedule`` (target date and SEQUENCE before/after, the reason, and ``out_of_window``:
whether the new date leaves the window) and bumps the visit's iCalendar SEQUENCE, so subscribed
calendars move the event instead of adding another one (RFC 5545 3.8.7.4).

What a later day-0 change does to a rescheduled visit: ``service.sync_schedule`` regenerates
every visit that is still pending from the protocol and the new day 0, so the visit goes back to
the protocol's target date for the new day 0 (with the new window) and the reschedule is dropped.
This is deliberate - a date agreed relative to the old day 0 means nothing relative to the new
one - and not silent: the regeneration is audited as another ``visit.reschedule`` whose
``before`` holds the rescheduled date and whose reason is the day-0 change's, and it bumps
SEQUENCE again. The site reschedules again if the new protocol date does not suit. Completed and
cancelled visits are never regenerated. (``sync_schedule`` resets any pending visit whose dates
differ from the protocol's, so it must run only when day 0 really changes, as it does now.)
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlmodel import Session

from app.audit import service as audit
from app.audit.service import Actor
from app.core.errors import Conflict, Unprocessable
from app.core.models import utcnow
from app.participants.models import Participant
from app.studies import service as studies_service
from app.visits import service
from app.visits.models import Visit
from app.visits.schedule import (
    MAX_RESCHEDULE_DAYS_AFTER_WINDOW,
    RescheduleRule,
    out_of_window,
    plan_visits,
    reschedule_problem,
    schedule_start,
)

#: States a visit can be moved from: not done, not cancelled, not (yet) missed.
PENDING_STATES = frozenset({"upcoming", "open", "overdue"})

_MESSAGES: dict[RescheduleRule, str] = {
    "not_past": "target_date is before the participant's today; record a visit that happened "
    "with completed_on",
    "before_schedule_start": "target_date is before the participant's schedule starts "
    "(the screening window's first day)",
    "too_far": f"target_date is more than {MAX_RESCHEDULE_DAYS_AFTER_WINDOW} days after the "
    "visit's window",
}


def _audited(visit: Visit) -> dict[str, Any]:
    return {"target_date": visit.target_date, "sequence": visit.sequence}


def reschedule(
    session: Session,
    *,
    visit: Visit,
    participant: Participant,
    target_date: dt.date,
    reason: str,
    actor: Actor,
) -> Visit:
    """Move a pending visit to ``target_date`` (participant-local) and audit why.

    409 unless the visit is upcoming, open or overdue on the participant's today (completed,
    cancelled and missed visits stay as they are); 422 on ``body.target_date`` for a date before
    the schedule's first day, before the participant's today, or absurdly far after the window
    (``schedule.reschedule_problem``). Moving to the date it already has changes nothing.
    """
    # Lock the row (PostgreSQL; SQLite writes are serialised anyway) so a concurrent sweep or
    # outcome cannot interleave with this read-check-write.
    session.refresh(visit, with_for_update=True)
    today = service.today_for(participant)
    state = service.state_of(visit, today)
    if state not in PENDING_STATES:
        raise Conflict(f"A {state} visit cannot be rescheduled")
    if participant.day0_date is None:  # pragma: no cover - visits exist only with a day 0
        raise Conflict("The participant has no day 0, so no schedule")
    protocol = studies_service.definition_for_version(session, participant.protocol_version_id)
    first_day = schedule_start(plan_visits(protocol, participant.day0_date))
    rule = reschedule_problem(
        service.planned_of(visit), target_date, today=today, first_day=first_day
    )
    if rule is not None:
        raise Unprocessable(_MESSAGES[rule], field=("body", "target_date"), rule=rule)
    if target_date == visit.target_date:
        return visit
    before = _audited(visit)
    visit.target_date = target_date
    visit.sequence += 1
    visit.updated_at = utcnow()
    session.add(visit)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="visit.reschedule",
        entity_type="visit",
        entity_id=visit.id,
        study_id=visit.study_id,
        participant_id=visit.participant_id,
        before=before,
        # Audit events store the diff: `out_of_window` (after only) always shows in it, so each
        # reschedule says whether the new date leaves the protocol window.
        after={
            **_audited(visit),
            "out_of_window": out_of_window(service.planned_of(visit), target_date),
        },
        reason=reason,
    )
    return visit
