"""Helpers shared by the studies, participants and audit tests (not fixtures)."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from httpx2 import Response
from sqlmodel import Session, col, select

from app.audit.models import AuditEvent
from app.auth.tokens import PORTAL_AUDIENCE, issue_token
from app.studies.builtin import BLINATUMOMAB_NCT06836973
from tests.factories import ring

PORTAL = "/portal/v1"


def definition_body(**overrides: Any) -> dict[str, Any]:
    """A JSON protocol definition (the blinatumomab template) with a unique registry id."""
    data = copy.deepcopy(BLINATUMOMAB_NCT06836973)
    data["registry_id"] = f"TEST-{uuid.uuid4().hex[:8]}"
    data["sites"] = [{"code": "X", "name": "Site X"}, {"code": "Y", "name": "Site Y"}]
    data.update(overrides)
    return data


def portal_token_for(subject: str) -> str:
    """A portal token for an existing (or future) staff subject, without granting anything."""
    return issue_token(ring(), subject=subject, audience=PORTAL_AUDIENCE, ttl_seconds=600)


def error_locs(response: Response) -> set[str]:
    """The dotted ``loc`` of every item in a problem+json ``errors`` list."""
    return {".".join(str(p) for p in item["loc"]) for item in response.json().get("errors") or []}


def comparable_problem(response: Response) -> dict[str, Any]:
    """A problem document without the parts that differ per request (path, request id)."""
    body = dict(response.json())
    body.pop("instance", None)
    body.pop("request_id", None)
    return {"status": response.status_code, **body}


def audit_rows(session: Session, **where: Any) -> list[AuditEvent]:
    """Audit rows matching column equalities, oldest first (reads what requests committed)."""
    session.expire_all()
    stmt = select(AuditEvent)
    for name, value in where.items():
        stmt = stmt.where(getattr(AuditEvent, name) == value)
    return list(session.exec(stmt.order_by(col(AuditEvent.occurred_at), col(AuditEvent.id))))
