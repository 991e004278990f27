"""Reading the audit trail (admins and monitors, limited to their studies).

Routers are the top layer of each domain: this one uses the auth and participants dependencies,
while the audit models and service stay below them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlmodel import col

from app.audit import service
from app.audit.models import AuditEvent
from app.audit.schemas import AuditEventPublic
from app.auth.deps import CurrentStaff
from app.core.db import SessionDep
from app.core.errors import Forbidden, Unprocessable
from app.core.pagination import Page, PageParams, page_params, paginate
from app.core.routing import StrictRoute

portal_router = APIRouter(route_class=StrictRoute, tags=["audit"])


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


@portal_router.get("/audit-events", response_model=Page[AuditEventPublic])
def list_audit_events(
    session: SessionDep,
    staff: CurrentStaff,
    page: Annotated[PageParams, Depends(page_params)],
    entity_type: Annotated[str | None, Query(max_length=60)] = None,
    entity_id: Annotated[str | None, Query(max_length=64)] = None,
    participant_id: Annotated[uuid.UUID | None, Query()] = None,
    from_: Annotated[date | datetime | None, Query(alias="from")] = None,
    to: Annotated[date | datetime | None, Query()] = None,
) -> Page[AuditEventPublic]:
    """Audit events in the caller's studies, oldest first; `from`/`to` are inclusive (UTC days)."""
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
        study_ids = {m.study_id for m in readable if m.study_id is not None}
        stmt = stmt.where(col(AuditEvent.study_id).in_(study_ids))
    rows, next_cursor = paginate(
        session,
        stmt,
        order_by=[AuditEvent.occurred_at, AuditEvent.id],  # type: ignore[list-item]
        params=page,
        scope="audit",
    )
    return Page(items=[AuditEventPublic.model_validate(r) for r in rows], next_cursor=next_cursor)
