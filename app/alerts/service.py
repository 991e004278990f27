"""Raising alerts (idempotently, in the caller's transaction) and reading the inbox.

Where alerts sit in the import order: like ``app.audit``, the alert table and this service import
only ``app.core``, so any domain that detects something a site must see (the visit sweep, the
safety rules, webhook delivery) can raise an alert in its own transaction. The inbox route
(``app.alerts.router``) is the top layer and uses auth scoping like every portal list.

Hook for the webhook outbox (issue 7): ``ALERT_LISTENERS``. Each listener is called as
``listener(session, alert)`` once per *newly recorded* alert, inside ``raise_alert`` and so in the
transaction that records it; a duplicate (same ``dedup_key``) calls no listener. The outbox
registers one that writes a delivery row per matching endpoint, so the alert and its deliveries
commit (or roll back) together. Listeners must only write to the session (flush at most, never
commit) and must not call out of the process.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, func, select
from sqlmodel.sql.expression import SelectOfScalar

from app.alerts.models import ALERT_PRIORITIES, Alert
from app.core import followups
from app.core.models import new_id, utcnow
from app.core.rows import new_row

AlertListener = Callable[[Session, Alert], None]
#: Called with (session, alert) for every newly recorded alert, in the same transaction.
ALERT_LISTENERS: list[AlertListener] = []
#: Statements to run after an alert row is inserted, in the same transaction, on any write
#: path (the webhook outbox's fan-out registers here: app/webhooks/outbox.py). Each hook gets
#: the alert's row values and returns ``followups.Update``s.
FanoutHook = Callable[[Any], list[followups.Update]]
FANOUT_HOOKS: list[FanoutHook] = []


def fanout(alert: Any) -> list[followups.Update]:
    """The statements the registered hooks want run for a newly inserted alert."""
    return [update for hook in FANOUT_HOOKS for update in hook(alert)]


#: Strings in ``data`` are identifiers, codes and dates (``mg_crisis``, ``clinic-d028``, ISO
#: dates, UUIDs): no spaces, at most 100 characters. Anything else is likely free text.
CODE = re.compile(r"[\w.:+\-/@]{0,100}")


class AlertDataError(ValueError):
    """``data`` held something other than identifiers, codes, numbers and dates."""


def _clean(value: Any, path: str) -> Any:
    """``data`` as JSON, refusing values that look like free text (a programming error)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise AlertDataError(f"{path}: naive datetime")
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        if not CODE.fullmatch(value):
            raise AlertDataError(f"{path}: alert data carries codes and identifiers, not text")
        return value
    if isinstance(value, list | tuple):
        return [_clean(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {str(k): _clean(v, f"{path}.{k}") for k, v in value.items()}
    raise AlertDataError(f"{path}: {type(value).__name__} is not allowed in alert data")


def build_alert(
    *,
    type: str,
    priority: str,
    study_id: uuid.UUID,
    site_id: uuid.UUID | None,
    participant_id: uuid.UUID | None,
    subject_type: str,
    subject_id: uuid.UUID | str,
    dedup_key: str,
    data: dict[str, Any],
    now: datetime | None = None,
) -> Alert:
    """An alert's row values (app/core/rows.py) for the bulk write paths (diary capture), with
    ``data`` checked for free text; ``raise_alert`` writes one through a session."""
    if priority not in ALERT_PRIORITIES:
        raise ValueError(f"priority must be one of {ALERT_PRIORITIES}, not {priority!r}")
    return new_row(
        Alert,
        id=new_id(),
        study_id=study_id,
        site_id=site_id,
        participant_id=participant_id,
        type=type,
        priority=priority,
        subject_type=subject_type,
        subject_id=str(subject_id),
        data=_clean(data, "data"),
        dedup_key=dedup_key,
        created_at=now or utcnow(),
        acknowledged_at=None,
        acknowledged_by=None,
    )


def raise_alert(
    session: Session,
    *,
    type: str,
    priority: str,
    study_id: uuid.UUID,
    site_id: uuid.UUID | None,
    participant_id: uuid.UUID | None,
    subject_type: str,
    subject_id: uuid.UUID | str,
    dedup_key: str,
    data: dict[str, Any],
    now: datetime | None = None,
) -> tuple[Alert | None, bool]:
    """Record an alert unless one with ``dedup_key`` exists; returns ``(alert, is_new)``.

    ``INSERT ... ON CONFLICT (dedup_key) DO NOTHING``: a concurrent transaction recording the
    same alert is not an error (PostgreSQL waits for it and then does nothing). For a duplicate the
    result is ``(None, False)``. New alerts are passed to every ``ALERT_LISTENERS`` entry.
    """
    values: dict[str, Any] = dict(
        build_alert(
            type=type,
            priority=priority,
            study_id=study_id,
            site_id=site_id,
            participant_id=participant_id,
            subject_type=subject_type,
            subject_id=subject_id,
            dedup_key=dedup_key,
            data=data,
            now=now,
        )
    )
    dialect = session.get_bind().dialect.name
    if dialect not in ("postgresql", "sqlite"):  # pragma: no cover - the two supported databases
        raise RuntimeError(f"raise_alert does not support {dialect}")
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(Alert)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["dedup_key"])
        .returning(col(Alert.id))
    )
    # Pending ORM rows (the subject, say) first: this INSERT bypasses the unit of work.
    session.flush()
    inserted = session.execute(statement).scalar_one_or_none()
    if inserted is None:
        return None, False
    alert = session.get(Alert, inserted)
    assert alert is not None
    connection = session.connection()
    for update in fanout(alert):
        compiled = update.statements[connection.dialect.name]
        connection.exec_driver_sql(compiled.sql, compiled.params(update.params))
    for listener in ALERT_LISTENERS:
        listener(session, alert)
    return alert, True


def inbox_query(
    *,
    study_id: uuid.UUID | None,
    type: str | None = None,
    priority: str | None = None,
    acknowledged: bool | None = None,
    created_from: date | None = None,
    created_to: date | None = None,
) -> SelectOfScalar[Alert]:
    """A study's alerts, filtered; ``created_from``/``created_to`` are inclusive UTC days."""
    stmt = select(Alert)
    if study_id is not None:
        stmt = stmt.where(Alert.study_id == study_id)
    if type is not None:
        stmt = stmt.where(Alert.type == type)
    if priority is not None:
        stmt = stmt.where(Alert.priority == priority)
    if acknowledged is True:
        stmt = stmt.where(col(Alert.acknowledged_at).is_not(None))
    elif acknowledged is False:
        stmt = stmt.where(col(Alert.acknowledged_at).is_(None))
    if created_from is not None:
        stmt = stmt.where(col(Alert.created_at) >= datetime.combine(created_from, time.min, UTC))
    if created_to is not None and created_to < date.max:
        end = datetime.combine(created_to + timedelta(days=1), time.min, UTC)
        stmt = stmt.where(col(Alert.created_at) < end)
    return stmt


def unread_counts(session: Session, stmt: SelectOfScalar[Alert]) -> dict[str, Any]:
    """Unacknowledged alerts of an (already scoped) inbox query, in one aggregate query:
    ``{"total", "by_priority", "by_type"}``."""
    inner = stmt.where(col(Alert.acknowledged_at).is_(None)).subquery()
    rows = session.execute(
        sa.select(inner.c.priority, inner.c.type, func.count()).group_by(
            inner.c.priority, inner.c.type
        )
    ).all()
    by_priority = dict.fromkeys(ALERT_PRIORITIES, 0)
    by_type: dict[str, int] = {}
    for priority, type_, count in rows:
        by_priority[priority] += int(count)
        by_type[type_] = by_type.get(type_, 0) + int(count)
    return {"total": sum(by_priority.values()), "by_priority": by_priority, "by_type": by_type}


def acknowledge(
    session: Session, alert: Alert, *, actor_id: str, now: datetime | None = None
) -> bool:
    """Mark one alert read; False when it already was (nothing changes)."""
    if alert.acknowledged_at is not None:
        return False
    alert.acknowledged_at = now or utcnow()
    alert.acknowledged_by = actor_id
    session.add(alert)
    session.flush()
    return True


def acknowledge_subject(
    session: Session, *, subject_type: str, subject_id: uuid.UUID | str, actor_id: str
) -> int:
    """Mark every unread alert about one subject (a safety signal) read; returns how many."""
    statement = (
        sa.update(Alert)
        .where(
            col(Alert.subject_type) == subject_type,
            col(Alert.subject_id) == str(subject_id),
            col(Alert.acknowledged_at).is_(None),
        )
        .values(acknowledged_at=utcnow(), acknowledged_by=actor_id)
    )
    result = session.execute(statement)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
