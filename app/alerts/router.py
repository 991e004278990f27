"""The investigators' inbox: a study's alerts at the caller's sites, newest first."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from sqlalchemy import and_, or_
from sqlmodel import col
from sqlmodel.sql.expression import SelectOfScalar

from app.alerts import service
from app.alerts.models import Alert
from app.alerts.schemas import AlertOut, UnreadCounts
from app.audit import service as audit
from app.auth import scoping
from app.auth.deps import CurrentStaff
from app.auth.principal import StaffPrincipal
from app.core.db import SessionDep
from app.core.errors import Forbidden, NotFound, Unprocessable
from app.core.pagination import Page, PageParams, page_params, paginate
from app.core.responses import errors
from app.core.routing import StrictRoute
from app.core.schemas import IsoDate
from app.participants.models import Participant
from app.studies import service as studies_service

portal_router = APIRouter(route_class=StrictRoute, tags=["alerts"])

Pagination = Annotated[PageParams, Depends(page_params)]


def _scoped(staff: StaffPrincipal, stmt: SelectOfScalar[Alert]) -> SelectOfScalar[Alert]:
    """Alerts about a participant follow the participant's site; study-wide operational alerts
    are shown to staff of the whole study."""
    return stmt.outerjoin(Participant, col(Participant.id) == Alert.participant_id).where(
        or_(
            and_(
                col(Alert.participant_id).is_(None),
                scoping.site_filter(staff, Alert.study_id, Alert.site_id),
            ),
            scoping.site_filter(staff, Participant.study_id, Participant.site_id),
        )
    )


@portal_router.get(
    "/studies/{study_id}/alerts/unread", response_model=UnreadCounts, responses=errors(404)
)
def unread_alerts(session: SessionDep, staff: CurrentStaff, study_id: uuid.UUID) -> UnreadCounts:
    """How many of the study's alerts at the caller's sites are not yet acknowledged: in total,
    by priority and by event type (the inbox badge)."""
    study = studies_service.get_study_for(
        session, principal=staff, study_id=study_id, permission="participant.read"
    )
    counts = service.unread_counts(session, _scoped(staff, service.inbox_query(study_id=study.id)))
    return UnreadCounts(**counts)


@portal_router.post(
    "/alerts/{alert_id}/acknowledge", response_model=AlertOut, responses=errors(403, 404)
)
def acknowledge_alert(session: SessionDep, staff: CurrentStaff, alert_id: uuid.UUID) -> AlertOut:
    """Mark one alert read (audited; an alert already read stays as it was). Acknowledging,
    dismissing or converting a safety signal marks its alerts read too."""
    alert = session.exec(
        _scoped(staff, service.inbox_query(study_id=None)).where(Alert.id == alert_id)
    ).first()
    if alert is None:
        raise NotFound("No such alert")
    if not staff.can("participant.read", alert.study_id):
        raise Forbidden("Your role does not allow reading this study's alerts")
    if service.acknowledge(session, alert, actor_id=staff.subject):
        audit.record(
            session,
            actor=staff.actor(alert.study_id),
            action="alert.acknowledge",
            entity_type="alert",
            entity_id=alert.id,
            study_id=alert.study_id,
            participant_id=alert.participant_id,
            before={"acknowledged_at": None},
            after={"acknowledged_at": alert.acknowledged_at, "acknowledged_by": staff.subject},
        )
    return AlertOut.model_validate(alert)


@portal_router.get(
    "/studies/{study_id}/alerts", response_model=Page[AlertOut], responses=errors(400, 404)
)
def study_alerts(
    session: SessionDep,
    staff: CurrentStaff,
    study_id: uuid.UUID,
    page: Pagination,
    type: Annotated[
        str | None, Query(max_length=60, description="Event type, e.g. `visit.missed`.")
    ] = None,
    priority: Annotated[Literal["routine", "high", "urgent"] | None, Query()] = None,
    acknowledged: Annotated[
        bool | None, Query(description="Only acknowledged (true) or unacknowledged (false).")
    ] = None,
    from_: Annotated[IsoDate | None, Query(alias="from", description="First UTC day.")] = None,
    to: Annotated[IsoDate | None, Query(description="Last UTC day (inclusive).")] = None,
) -> Page[AlertOut]:
    """The study's alerts (missed visits, safety signals ...) for the caller's sites, newest
    first. Alerts about a participant follow the participant's site; study-wide operational
    alerts are shown to staff of the whole study. `from`/`to` are inclusive UTC days of
    `created_at`."""
    if from_ and to and to < from_:
        raise Unprocessable("`to` is before `from`", field=("query", "to"), rule="date_range")
    study = studies_service.get_study_for(
        session, principal=staff, study_id=study_id, permission="participant.read"
    )
    stmt = _scoped(
        staff,
        service.inbox_query(
            study_id=study.id,
            type=type,
            priority=priority,
            acknowledged=acknowledged,
            created_from=from_,
            created_to=to,
        ),
    )
    rows, next_cursor = paginate(
        session,
        stmt,
        order_by=[Alert.created_at, Alert.id],  # type: ignore[list-item]
        params=page,
        scope=f"alerts:{study.id}",
        descending=True,
    )
    return Page(items=[AlertOut.model_validate(r) for r in rows], next_cursor=next_cursor)
