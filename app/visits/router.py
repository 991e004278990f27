"""Visit routes: the participant's own schedule (app) and the sites' view (portal)."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from app.auth.deps import CurrentStaff
from app.core.db import SessionDep
from app.core.errors import Unprocessable
from app.core.pagination import Page, PageParams, page_params
from app.core.responses import errors
from app.core.routing import StrictRoute
from app.core.schemas import IsoDate
from app.participants import service as participants_service
from app.participants.deps import CurrentParticipant, ValidParticipant
from app.participants.models import Participant
from app.studies import service as studies_service
from app.visits import calendar, queries, reschedule, service
from app.visits.models import CalendarFeed, Visit
from app.visits.schedule import ScheduleAdherence, VisitState, out_of_window, protocol_target_date
from app.visits.schemas import CalendarLink, VisitAdherence, VisitOut, VisitUpdate

app_router = APIRouter(route_class=StrictRoute, tags=["visits"])
portal_router = APIRouter(route_class=StrictRoute, tags=["visits"])
Pagination = Annotated[PageParams, Depends(page_params)]
MAX_DUE_WITHIN_DAYS = 366


def _out(visit: Visit, today: date, before_days: int) -> VisitOut:
    planned = service.planned_of(visit)
    state = service.state_of(visit, today)
    protocol_target = protocol_target_date(planned, before_days=before_days)
    # Done: where it happened; cancelled: nowhere; otherwise: the date it is scheduled for.
    happens_on = {"completed": visit.completed_on, "cancelled": None}.get(state, visit.target_date)
    return VisitOut(
        id=visit.id,
        participant_id=visit.participant_id,
        name=visit.label,
        kind=visit.kind,  # type: ignore[arg-type]
        day=visit.day,
        target_date=visit.target_date,
        window_start=visit.window_start,
        window_end=visit.window_end,
        status=state,
        completed_on=visit.completed_on,
        out_of_window=out_of_window(planned, happens_on),
        cancel_reason=visit.cancel_reason,
        protocol_target_date=protocol_target,
        rescheduled=visit.target_date != protocol_target,
    )


def _before_days(session: SessionDep, participant: Participant) -> int:
    protocol = studies_service.definition_for_version(session, participant.protocol_version_id)
    return protocol.visits.window.before_days


def _schedule(session: SessionDep, participant: Participant) -> list[VisitOut]:
    today = service.today_for(participant)
    before_days = _before_days(session, participant)
    return [
        _out(v, today, before_days)
        for v in service.visits_of(session, participant_id=participant.id)
    ]


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


def _adherence_out(
    participant: Participant, as_of: date, adherence: ScheduleAdherence
) -> VisitAdherence:
    return VisitAdherence(
        participant_id=participant.id,
        subject_code=participant.subject_code,
        site_id=participant.site_id,
        as_of=as_of,
        due=adherence.due,
        completed_in_window=adherence.completed_in_window,
        completed_out_of_window=adherence.completed_out_of_window,
        adherence=adherence.adherence,
    )


@portal_router.get(
    "/participants/{participant_id}/visits/adherence",
    response_model=VisitAdherence,
    responses=errors(404),
)
def participant_visit_adherence(
    session: SessionDep, participant: ValidParticipant
) -> VisitAdherence:
    """Schedule adherence: visits completed inside their window / visits due so far.

    Due so far: completed visits, and visits whose window has closed (participant-local days);
    cancelled visits never count. Null while nothing is due. A withdrawn participant is
    evaluated as of the withdrawal day.
    """
    as_of, adherence = queries.adherence_many(session, [participant])[participant.id]
    return _adherence_out(participant, as_of, adherence)


VisitAction = Literal["completed", "cancelled", "rescheduled"]


def _action(body: VisitUpdate) -> VisitAction:
    """Which of the three changes the body asks for; mixed bodies are a 422 naming the field."""
    action: VisitAction = body.status or (
        "rescheduled" if body.target_date is not None else "completed"
    )
    if action == "rescheduled":
        if body.target_date is None:
            raise Unprocessable(
                "give target_date to reschedule", field=("body", "target_date"), rule="required"
            )
        if body.completed_on is not None:
            raise Unprocessable(
                "completed_on and target_date cannot be given together",
                field=("body", "completed_on"),
                rule="not_with_target_date",
            )
    elif body.target_date is not None:
        raise Unprocessable(
            f"target_date is only for rescheduling, not for a {action} visit",
            field=("body", "target_date"),
            rule="reschedule_only",
        )
    return action


@portal_router.patch("/visits/{visit_id}", response_model=VisitOut, responses=errors(404, 409))
def update_visit(
    session: SessionDep, staff: CurrentStaff, visit_id: uuid.UUID, body: VisitUpdate
) -> VisitOut:
    """Complete, cancel or reschedule a visit, with a reason (investigators of the
    participant's site; audited).

    - Complete: `completed_on` is the participant-local day it happened, not in the future;
      flagged `out_of_window` when outside the window.
    - Cancel: `status: "cancelled"`; the reason is shown as `cancel_reason`.
    - Reschedule: `target_date` moves an upcoming, open or overdue visit; the window stays, a
      date outside it is flagged `out_of_window`, and the calendar event is updated (SEQUENCE).
      If day 0 later moves, the visit is regenerated at the protocol's new date and the
      reschedule is dropped (audited as another `visit.reschedule`).

    A visit already completed, cancelled or (for rescheduling) missed is a 409.
    """
    action = _action(body)
    visit = service.get(session, visit_id)
    participant = participants_service.get_for_staff(
        session, principal=staff, participant_id=visit.participant_id, permission="clinical.write"
    )
    actor = staff.actor(participant.study_id)
    if action == "rescheduled":
        assert body.target_date is not None  # _action checked it
        reschedule.reschedule(
            session,
            visit=visit,
            participant=participant,
            target_date=body.target_date,
            reason=body.reason,
            actor=actor,
        )
    else:
        service.record_outcome(
            session,
            visit=visit,
            participant=participant,
            completed_on=body.completed_on,
            cancel=action == "cancelled",
            reason=body.reason,
            actor=actor,
        )
    return _out(visit, service.today_for(participant), _before_days(session, participant))


@portal_router.get(
    "/studies/{study_id}/visits", response_model=Page[VisitOut], responses=errors(400, 404)
)
def study_visits(
    session: SessionDep,
    staff: CurrentStaff,
    study_id: uuid.UUID,
    page: Pagination,
    status: Annotated[VisitState | None, Query()] = None,
    from_: Annotated[IsoDate | None, Query(alias="from")] = None,
    to: Annotated[IsoDate | None, Query()] = None,
    site_id: Annotated[uuid.UUID | None, Query()] = None,
    due_within_days: Annotated[
        int | None,
        Query(
            ge=1,
            le=MAX_DUE_WITHIN_DAYS,
            description="Only visits due in the next N days: upcoming, open or overdue, with a "
            "target date up to the participant's local today + N (so overdue ones too).",
        ),
    ] = None,
) -> Page[VisitOut]:
    """Visits across the caller's sites, by target date, a page at a time.

    Filters combine: `status` (each participant's state on their own local today), target date
    in [`from`, `to`] (inclusive, participant-local), `site_id` (within the caller's sites;
    another site gives an empty list), `due_within_days`.
    """
    if from_ and to and to < from_:
        raise Unprocessable("`to` is before `from`", field=("query", "to"), rule="date_range")
    study = studies_service.get_study_for(
        session, principal=staff, study_id=study_id, permission="participant.read"
    )
    filters = queries.VisitFilter(
        status=status, date_from=from_, date_to=to, site_id=site_id, due_within_days=due_within_days
    )
    rows, next_cursor = queries.study_visits(
        session, principal=staff, study_id=study.id, filters=filters, params=page
    )
    items = [_out(v, today, _before_days(session, p)) for v, p, today in rows]
    return Page(items=items, next_cursor=next_cursor)


@portal_router.get(
    "/studies/{study_id}/visit-adherence",
    response_model=Page[VisitAdherence],
    responses=errors(400, 404),
)
def study_visit_adherence(
    session: SessionDep,
    staff: CurrentStaff,
    study_id: uuid.UUID,
    page: Pagination,
    site_id: Annotated[uuid.UUID | None, Query()] = None,
) -> Page[VisitAdherence]:
    """Schedule adherence per participant at the caller's sites, by subject code: visits
    completed inside their window / visits due so far (completed, or window closed; cancelled
    never count); null while nothing is due. Withdrawn participants as of their withdrawal day."""
    study = studies_service.get_study_for(
        session, principal=staff, study_id=study_id, permission="participant.read"
    )
    rows, next_cursor = queries.study_adherence(
        session, principal=staff, study_id=study.id, site_id=site_id, params=page
    )
    return Page(items=[_adherence_out(*row) for row in rows], next_cursor=next_cursor)


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
