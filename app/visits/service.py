"""Persisting each participant's schedule and recording what happened at each visit.

When day 0 is set or moves, pending visits are regenerated from the protocol; completed,
cancelled and missed visits keep their dates; visits the new schedule no longer has are cancelled.
Every change is audited with its reason. A missed visit (marked by the sweep, ``sweep.py``) can
still be recorded completed (late data entry) or cancelled.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from app.audit import service as audit
from app.audit.service import Actor
from app.core.errors import Conflict, NotFound, Unprocessable
from app.core.models import utcnow
from app.participants import service as participants_service
from app.participants.models import Participant
from app.studies import service as studies_service
from app.visits.models import Visit
from app.visits.schedule import PlannedVisit, VisitState, plan_visits, visit_state

_DATES = ("target_date", "window_start", "window_end", "label", "day")
REMOVED = "No longer in the schedule after day 0 changed"
#: Stored statuses a visit can still be completed or cancelled from.
OPEN_STATUSES = frozenset({"scheduled", "missed"})


def _snapshot(visit: Visit) -> dict[str, Any]:
    return {
        name: getattr(visit, name) for name in (*_DATES, "status", "completed_on", "cancel_reason")
    }


def sync_schedule(
    session: Session, *, participant: Participant, actor: Actor, reason: str | None
) -> None:
    """Bring the participant's pending visits in line with the protocol and day 0."""
    existing = {
        v.key: v for v in session.exec(select(Visit).where(Visit.participant_id == participant.id))
    }
    planned: dict[str, PlannedVisit] = {}
    if participant.day0_date is not None:
        protocol = studies_service.definition_for_version(session, participant.protocol_version_id)
        planned = {p.key: p for p in plan_visits(protocol, participant.day0_date)}
    for key, plan in planned.items():
        visit = existing.get(key)
        if visit is None:
            visit = Visit(
                participant_id=participant.id,
                study_id=participant.study_id,
                key=key,
                label=plan.name,
                kind=plan.kind,
                day=plan.day,
                target_date=plan.target_date,
                window_start=plan.window_start,
                window_end=plan.window_end,
            )
            session.add(visit)
            session.flush()
            audit.record(
                session,
                actor=actor,
                action="visit.schedule",
                entity_type="visit",
                entity_id=visit.id,
                study_id=participant.study_id,
                participant_id=participant.id,
                after=_snapshot(visit),
                reason=reason,
            )
            continue
        if visit.status != "scheduled":
            continue  # completed, cancelled and missed visits keep their dates
        before = _snapshot(visit)
        for name in _DATES:
            setattr(visit, name, getattr(plan, "name" if name == "label" else name))
        if _snapshot(visit) != before:
            _touch(session, visit, "visit.reschedule", before, actor, reason)
    for key, visit in existing.items():
        if key not in planned and visit.status == "scheduled":
            before = _snapshot(visit)
            visit.status, visit.cancel_reason = "cancelled", REMOVED
            _touch(session, visit, "visit.cancel", before, actor, reason or REMOVED)


def _touch(
    session: Session,
    visit: Visit,
    action: str,
    before: dict[str, Any],
    actor: Actor,
    reason: str | None,
) -> None:
    visit.updated_at = utcnow()
    visit.sequence += 1
    session.add(visit)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=action,
        entity_type="visit",
        entity_id=visit.id,
        study_id=visit.study_id,
        participant_id=visit.participant_id,
        before=before,
        after=_snapshot(visit),
        reason=reason,
    )


def planned_of(visit: Visit) -> PlannedVisit:
    return PlannedVisit(
        key=visit.key,
        name=visit.label,
        kind=visit.kind,  # type: ignore[arg-type]
        day=visit.day,
        target_date=visit.target_date,
        window_start=visit.window_start,
        window_end=visit.window_end,
    )


def today_for(participant: Participant) -> dt.date:
    return utcnow().astimezone(ZoneInfo(participant.time_zone)).date()


def state_of(visit: Visit, today: dt.date) -> VisitState:
    """The visit's state on the participant's ``today``; a visit the sweep marked is ``missed``
    whatever ``today`` says (until it is recorded completed or cancelled)."""
    if visit.status == "missed":
        return "missed"
    return visit_state(
        planned_of(visit),
        today=today,
        completed_on=visit.completed_on,
        cancelled=visit.status == "cancelled",
    )


def visits_of(session: Session, *, participant_id: uuid.UUID) -> list[Visit]:
    return list(
        session.exec(
            select(Visit)
            .where(Visit.participant_id == participant_id)
            .order_by(col(Visit.target_date), col(Visit.key))
        ).all()
    )


def get(session: Session, visit_id: uuid.UUID) -> Visit:
    visit = session.get(Visit, visit_id)
    if visit is None:
        raise NotFound("No such visit")
    return visit


def record_outcome(
    session: Session,
    *,
    visit: Visit,
    participant: Participant,
    completed_on: dt.date | None,
    cancel: bool,
    reason: str,
    actor: Actor,
) -> Visit:
    """Complete a visit (on a local date, not in the future) or cancel it; both need a reason.

    A visit the sweep marked missed can still be completed (late data entry: flagged out of
    window when its date is outside the window) or cancelled. The row is re-read under a lock
    (PostgreSQL), so a concurrent sweep or second request cannot slip in between.
    """
    session.refresh(visit, with_for_update=True)
    if visit.status not in OPEN_STATUSES:
        raise Conflict(f"The visit is already {visit.status}")
    before = _snapshot(visit)
    if cancel:
        visit.status, visit.cancel_reason = "cancelled", reason
        _touch(session, visit, "visit.cancel", before, actor, reason)
        return visit
    if completed_on is None:
        raise Unprocessable(
            "give completed_on, or status cancelled",
            field=("body", "completed_on"),
            rule="required",
        )
    if completed_on > today_for(participant):
        raise Unprocessable(
            "completed_on is in the future", field=("body", "completed_on"), rule="not_future"
        )
    visit.status, visit.completed_on = "completed", completed_on
    _touch(session, visit, "visit.complete", before, actor, reason)
    return visit


def _on_day0_changed(
    session: Session, participant: Participant, actor: Actor, reason: str | None
) -> None:
    sync_schedule(session, participant=participant, actor=actor, reason=reason)


if _on_day0_changed not in participants_service.DAY0_LISTENERS:
    participants_service.DAY0_LISTENERS.append(_on_day0_changed)


WITHDRAWAL_REASON = "The participant was withdrawn from the study"


def close_on_withdrawal(
    session: Session, participant: Participant, actor: Actor, reason: str
) -> None:
    """A withdrawn participant's schedule stops: each visit still pending becomes ``missed``
    if its window had already closed on the participant's local day (it counts against schedule
    adherence up to withdrawal, as the sweep would have counted it), otherwise ``cancelled``
    (it is no longer due). Each change is audited with the withdrawal's reason."""
    today = today_for(participant)
    now = utcnow()
    why = f"{WITHDRAWAL_REASON}: {reason}"
    for visit in visits_of(session, participant_id=participant.id):
        if visit.status != "scheduled":
            continue
        before = _snapshot(visit)
        if state_of(visit, today) == "missed":
            visit.status, visit.missed_at = "missed", now
            _touch(session, visit, "visit.missed", before, actor, why)
        else:
            visit.status, visit.cancel_reason = "cancelled", WITHDRAWAL_REASON
            _touch(session, visit, "visit.cancel", before, actor, why)


if close_on_withdrawal not in participants_service.WITHDRAWAL_LISTENERS:
    participants_service.WITHDRAWAL_LISTENERS.append(close_on_withdrawal)
