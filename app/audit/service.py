"""Writing and reading the audit trail. Writes join the caller's transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from app.audit.models import AuditEvent
from app.core.requestid import current_request_id
from app.core.rows import new_row


@dataclass(frozen=True)
class Actor:
    """Who made a change: a participant, a staff member or the system (CLI, worker)."""

    type: str
    id: str
    role: str


SYSTEM = Actor(type="system", id="mgdiary", role="system")


_PLAIN = frozenset({str, int, float, bool, type(None)})


def _jsonable(value: Any) -> Any:
    kind = type(value)
    if kind in _PLAIN:  # most values: answered before the isinstance checks
        return value
    # Plain members are taken as they are, without a call each (an entry's data is all plain).
    if kind is dict:
        return {
            k if type(k) is str else str(k): v if type(v) in _PLAIN else _jsonable(v)
            for k, v in value.items()
        }
    if kind is list:
        return [v if type(v) in _PLAIN else _jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def diff(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    """Field-level changes ``{field: {"before": x, "after": y}}`` for the fields that differ."""
    if before is None and after is not None and all(v is not None for v in after.values()):
        # A creation: every field changed from nothing.
        return {key: {"before": None, "after": _jsonable(after[key])} for key in sorted(after)}
    before = before or {}
    after = after or {}
    changes: dict[str, Any] = {}
    for key in sorted(set(before) | set(after)):
        old, new = _jsonable(before.get(key)), _jsonable(after.get(key))
        if old != new:
            changes[key] = {"before": old, "after": new}
    return changes


def _values(
    actor: Actor,
    action: str,
    entity_type: str,
    entity_id: uuid.UUID | str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    reason: str | None,
    study_id: uuid.UUID | None,
    participant_id: uuid.UUID | None,
) -> dict[str, Any]:
    return {
        "actor_type": actor.type,
        "actor_id": actor.id,
        "actor_role": actor.role,
        "action": action,
        "entity_type": entity_type,
        "entity_id": str(entity_id),
        "study_id": study_id,
        "participant_id": participant_id,
        "changes": diff(before, after),
        "reason": reason,
        "request_id": current_request_id(),
    }


def build(
    *,
    actor: Actor,
    action: str,
    entity_type: str,
    entity_id: uuid.UUID | str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str | None = None,
    study_id: uuid.UUID | None = None,
    participant_id: uuid.UUID | None = None,
) -> AuditEvent:
    """An audit event's row values (app/core/rows.py), for bulk inserts in the same
    transaction; ``record`` writes one through the session."""
    values = _values(
        actor, action, entity_type, entity_id, before, after, reason, study_id, participant_id
    )
    return new_row(AuditEvent, **values)


def record(
    session: Session,
    *,
    actor: Actor,
    action: str,
    entity_type: str,
    entity_id: uuid.UUID | str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str | None = None,
    study_id: uuid.UUID | None = None,
    participant_id: uuid.UUID | None = None,
) -> AuditEvent:
    """Write an audit event in the caller's transaction."""
    values = _values(
        actor, action, entity_type, entity_id, before, after, reason, study_id, participant_id
    )
    event = AuditEvent(**values)
    session.add(event)
    session.flush()
    return event


def query(
    *,
    entity_type: str | None = None,
    entity_id: str | None = None,
    participant_id: uuid.UUID | None = None,
    occurred_from: datetime | None = None,
    occurred_to: datetime | None = None,
) -> SelectOfScalar[AuditEvent]:
    stmt = select(AuditEvent)
    if entity_type:
        stmt = stmt.where(AuditEvent.entity_type == entity_type)
    if entity_id:
        stmt = stmt.where(AuditEvent.entity_id == entity_id)
    if participant_id:
        stmt = stmt.where(AuditEvent.participant_id == participant_id)
    if occurred_from:
        stmt = stmt.where(col(AuditEvent.occurred_at) >= occurred_from)
    if occurred_to:
        stmt = stmt.where(col(AuditEvent.occurred_at) < occurred_to)
    return stmt
