"""Reading the audit trail (admins and monitors, limited to their studies).

Routers are the top layer of each domain: this one uses the auth and participants dependencies,
while the audit models and service stay below them.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BeforeValidator, TypeAdapter
from sqlalchemy import ColumnElement, and_, false, or_
from sqlmodel import col, select

from app.audit import service
from app.audit.models import AuditEvent
from app.audit.schemas import AuditEventPublic
from app.auth.deps import CurrentStaff
from app.auth.principal import Membership
from app.core.db import SessionDep
from app.core.errors import Forbidden, Unprocessable
from app.core.pagination import Page, PageParams, page_params, paginate
from app.core.routing import StrictRoute
from app.core.schemas import iso_only
from app.participants.models import Participant

portal_router = APIRouter(route_class=StrictRoute, tags=["audit"])

_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
_INSTANT: TypeAdapter[datetime] = TypeAdapter(datetime)


def _date_or_instant(value: Any) -> Any:
    """``YYYY-MM-DD`` is a whole UTC day; anything longer is an instant.

    Without this, pydantic's smart union reads a midnight instant such as
    ``2026-01-05T00:00:00+01:00`` as the date 2026-01-05 and drops its offset.
    """
    iso_only(value)
    if isinstance(value, str):
        value = value.strip()
        if _DATE_ONLY.fullmatch(value):
            return date.fromisoformat(value)
        return _INSTANT.validate_python(value)
    return value


DateOrInstant = Annotated[date | datetime, BeforeValidator(_date_or_instant)]


def _instant(value: date | datetime | None, *, end: bool) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise Unprocessable(
                "from/to need an offset, or give a date",
                field=("query", "to" if end else "from"),
                rule="timezone_aware",
            )
        return value + (timedelta(microseconds=1) if end else timedelta(0))
    start = datetime.combine(value, time.min, tzinfo=UTC)
    return start + timedelta(days=1) if end else start


def _readable_scope(readable: list[Membership]) -> ColumnElement[bool]:
    """Whole-study readers see the study's events; site-scoped ones their participants' only."""
    whole_studies = {m.study_id for m in readable if m.study_id is not None and m.site_id is None}
    clauses: list[ColumnElement[bool]] = []
    if whole_studies:
        clauses.append(col(AuditEvent.study_id).in_(whole_studies))
    for m in readable:
        if m.study_id is None or m.site_id is None or m.study_id in whole_studies:
            continue
        at_site = select(Participant.id).where(
            Participant.study_id == m.study_id, Participant.site_id == m.site_id
        )
        clauses.append(
            and_(
                col(AuditEvent.study_id) == m.study_id,
                col(AuditEvent.participant_id).in_(at_site),
            )
        )
    return or_(*clauses) if clauses else false()


@portal_router.get("/audit-events", response_model=Page[AuditEventPublic])
def list_audit_events(
    session: SessionDep,
    staff: CurrentStaff,
    page: Annotated[PageParams, Depends(page_params)],
    entity_type: Annotated[str | None, Query(max_length=60)] = None,
    entity_id: Annotated[str | None, Query(max_length=64)] = None,
    participant_id: Annotated[uuid.UUID | None, Query()] = None,
    from_: Annotated[DateOrInstant | None, Query(alias="from")] = None,
    to: Annotated[DateOrInstant | None, Query()] = None,
) -> Page[AuditEventPublic]:
    """Audit events in the caller's studies (site-scoped readers: their participants' events),
    oldest first. `from`/`to` are inclusive: a date is a whole UTC day, an instant needs an offset.
    """
    readable = [m for m in staff.memberships if m.role in ("admin", "monitor")]
    if not readable:
        raise Forbidden("Only admins and monitors read the audit trail")
    stmt = service.query(
        entity_type=entity_type,
        entity_id=entity_id,
        participant_id=participant_id,
        occurred_from=_instant(from_, end=False),
        occurred_to=_instant(to, end=True),
    )
    if not staff.is_global_admin:
        stmt = stmt.where(_readable_scope(readable))
    rows, next_cursor = paginate(
        session,
        stmt,
        order_by=[AuditEvent.occurred_at, AuditEvent.id],  # type: ignore[list-item]
        params=page,
        scope="audit",
    )
    return Page(items=[AuditEventPublic.model_validate(r) for r in rows], next_cursor=next_cursor)
