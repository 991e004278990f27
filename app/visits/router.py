"""Visit routes: the participant's own schedule (app) and the sites' view (portal)."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from sqlmodel import col, select

from app.auth import scoping
from app.auth.deps import CurrentStaff
from app.core.db import SessionDep
from app.core.errors import Unprocessable
from app.core.responses import errors
from app.core.routing import StrictRoute
from app.participants import service as participants_service
from app.participants.deps import CurrentParticipant, ValidParticipant
from app.participants.models import Participant
from app.studies import service as studies_service
from app.visits import calendar, service
from app.visits.models import CalendarFeed, Visit
from app.visits.schedule import out_of_window
from app.visits.schemas import CalendarLink, VisitOut, VisitUpdate

app_router = APIRouter(route_class=StrictRoute, tags=["visits"])
portal_router = APIRouter(route_class=StrictRoute, tags=["visits"])
State = Literal["upcoming", "open", "overdue", "missed", "completed", "cancelled"]
MAX_STUDY_VISITS = 2000


def _out(visit: Visit, today: date) -> VisitOut:
    return VisitOut(
        id=visit.id,
        participant_id=visit.participant_id,
        name=visit.label,
        kind=visit.kind,  # type: ignore[arg-type]
        day=visit.day,
        target_date=visit.target_date,
        window_start=visit.window_start,
        window_end=visit.window_end,
        status=service.state_of(visit, today),
        completed_on=visit.completed_on,
        out_of_window=out_of_window(service.planned_of(visit), visit.completed_on),
        cancel_reason=visit.cancel_reason,
    )


def _schedule(session: SessionDep, participant: Participant) -> list[VisitOut]:
    today = service.today_for(participant)
    return [_out(v, today) for v in service.visits_of(session, participant_id=participant.id)]


@app_router.get("/visits", response_model=list[VisitOut])
def own_visits(session: SessionDep, participant: CurrentParticipant) -> list[VisitOut]:
    """The participant's visits with windows and states (dates are their local days)."""
    return _schedule(session, participant)


@portal_router.get(
    "/participants/{participant_id}/visits", response_model=list[VisitOut], responses=errors(404)
)
def participant_visits(session: SessionDep, participant: ValidParticipant) -> list[VisitOut]:
    """A participant's visits: upcoming, open, overdue, missed, completed or cancelled."""
    return _schedule(session, participant)


@portal_router.patch("/visits/{visit_id}", response_model=VisitOut, responses=errors(404, 409))
def update_visit(
    session: SessionDep, staff: CurrentStaff, visit_id: uuid.UUID, body: VisitUpdate
) -> VisitOut:
    """Record a visit as completed (its local date; flagged when outside the window) or
    cancelled, with a reason (investigators of the participant's site)."""
    visit = service.get(session, visit_id)
    participant = participants_service.get_for_staff(
        session, principal=staff, participant_id=visit.participant_id, permission="clinical.write"
    )
    service.record_outcome(
        session,
        visit=visit,
        participant=participant,
        completed_on=body.completed_on,
        cancel=body.status == "cancelled",
        reason=body.reason,
        actor=staff.actor(participant.study_id),
    )
    return _out(visit, service.today_for(participant))


@portal_router.get(
    "/studies/{study_id}/visits", response_model=list[VisitOut], responses=errors(404)
)
def study_visits(
    session: SessionDep,
    staff: CurrentStaff,
    study_id: uuid.UUID,
    status: Annotated[State | None, Query()] = None,
    from_: Annotated[date | None, Query(alias="from")] = None,
    to: Annotated[date | None, Query()] = None,
) -> list[VisitOut]:
    """Visits across the caller's sites with a target date in [from, to] (at most 2,000),
    optionally only those in one state (e.g. overdue or missed)."""
    if from_ and to and to < from_:
        raise Unprocessable("`to` is before `from`", field=("query", "to"), rule="date_range")
    study = studies_service.get_study_for(
        session, principal=staff, study_id=study_id, permission="participant.read"
    )
    stmt = (
        select(Visit, Participant)
        .join(Participant, col(Participant.id) == Visit.participant_id)
        .where(
            Visit.study_id == study.id,
            scoping.site_filter(staff, Participant.study_id, Participant.site_id),
        )
        .order_by(col(Visit.target_date), col(Visit.id))
        .limit(MAX_STUDY_VISITS)
    )
    if from_:
        stmt = stmt.where(col(Visit.target_date) >= from_)
    if to:
        stmt = stmt.where(col(Visit.target_date) <= to)
    out = [_out(v, service.today_for(p)) for v, p in session.exec(stmt).all()]
    return [v for v in out if status is None or v.status == status]


# --- calendar feed ------------------------------------------------------------------------

public_router = APIRouter(route_class=StrictRoute, tags=["calendar"])


def _calendar_out(request: Request, feed: CalendarFeed) -> CalendarLink:
    token = calendar.token_for(request.app.state.settings, feed)
    return CalendarLink(
        url=str(request.url_for("visit_calendar", feed_token=token)), feed_token=token
    )


@app_router.get("/calendar", response_model=CalendarLink)
def own_calendar(
    request: Request, session: SessionDep, participant: CurrentParticipant
) -> CalendarLink:
    """The secret URL of the participant's visit calendar, for a calendar app to subscribe to."""
    return _calendar_out(request, calendar.feed_of(session, participant))


@app_router.post("/calendar/rotate", response_model=CalendarLink)
def rotate_calendar(
    request: Request, session: SessionDep, participant: CurrentParticipant
) -> CalendarLink:
    """Revoke the calendar URL (for example a shared or lost phone) and return a new one."""
    return _calendar_out(request, calendar.rotate(session, participant))


@public_router.get(
    "/calendar/v1/{feed_token}.ics",
    response_class=Response,
    responses={200: {"content": {"text/calendar": {}}}, **errors(404)},
)
def visit_calendar(request: Request, session: SessionDep, feed_token: str) -> Response:
    """The participant's visits as iCalendar (RFC 5545). The URL is the credential."""
    participant = calendar.participant_for_token(session, request.app.state.settings, feed_token)
    body = calendar.render(service.visits_of(session, participant_id=participant.id))
    return Response(
        body,
        media_type="text/calendar; charset=utf-8",
        headers={"Cache-Control": "private, max-age=300"},
    )
