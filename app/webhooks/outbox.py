"""The transactional outbox: one delivery row per (alert, matching endpoint), in the alert's
transaction (issue 7 item 3; checklist E29).

Registered as an alert fan-out hook (app/alerts/service.py ``FANOUT_HOOKS``), so every path
that records an alert - ``raise_alert`` through a session, and the diary capture paths that
insert alert rows with the driver - runs the same one ``INSERT ... SELECT`` right after the
alert row: the alert and its deliveries commit or roll back together, and an alert for a study
without endpoints costs one statement that inserts nothing.

The body is made here, once, and stored: ``{"type", "timestamp", "data"}`` with identifiers,
codes, grades and priorities only (the alert's ``data`` is checked for free text when the alert
is built). Every attempt sends these exact bytes, so the signature of a retry covers the same
body.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from app.alerts import service as alerts
from app.core import followups, rawsql
from app.core.config import get_settings
from app.core.models import UTCDateTime, utcnow

#: Event types about webhooks themselves: never sent to the endpoint they are about (a failing
#: endpoint subscribed to its own failures would otherwise feed itself).
OPERATIONAL = ("webhook.delivery.failed", "webhook.endpoint.disabled")

_MATCH = {
    "postgresql": "e.event_types @> jsonb_build_array(CAST(:event_type AS varchar))",
    "sqlite": "EXISTS (SELECT 1 FROM json_each(e.event_types) WHERE json_each.value = :event_type)",
}
_NEW_ID = {"postgresql": "gen_random_uuid()", "sqlite": "lower(hex(randomblob(16)))"}
_TRUE = {"postgresql": "true", "sqlite": "1"}


def _fanout_sql(dialect: str) -> sa.TextClause:
    return sa.text(
        "INSERT INTO webhook_delivery (id, endpoint_id, alert_id, study_id, event_type, body, "
        "status, attempts, next_attempt_at, created_at, updated_at) "
        f"SELECT {_NEW_ID[dialect]}, e.id, :alert_id, e.study_id, "
        "CAST(:event_type AS varchar(60)), :body, "
        "'pending', 0, :next_attempt_at, :now, :now "
        "FROM webhook_endpoint e "
        f"WHERE e.study_id = :study_id AND e.enabled = {_TRUE[dialect]} "
        f"AND e.id != :exclude_endpoint AND {_MATCH[dialect]}"
    )


_FANOUT_PARAMS: dict[str, sa.types.TypeEngine[Any]] = {
    "alert_id": sa.Uuid(),
    "study_id": sa.Uuid(),
    "exclude_endpoint": sa.Uuid(),
    "event_type": sa.String(),
    "body": sa.Text(),
    "next_attempt_at": UTCDateTime(),
    "now": UTCDateTime(),
}
FANOUT = rawsql.per_dialect(lambda d: rawsql.Statement(_fanout_sql(d), _FANOUT_PARAMS, dialect=d))
#: No endpoint has this id: the parameter for "exclude nobody".
NOBODY = uuid.UUID(int=0)


def iso(value: Any) -> Any:
    """Instants as UTC ``...Z`` and UUIDs as text, for a webhook body."""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def body_of(alert: Any) -> str:
    """The webhook body of an alert: ``{"type", "timestamp", "data"}``, compact JSON."""
    data = {
        "alert_id": iso(alert.id),
        "study_id": iso(alert.study_id),
        "site_id": iso(alert.site_id),
        "participant_id": iso(alert.participant_id),
        "subject_type": alert.subject_type,
        "subject_id": alert.subject_id,
        "priority": alert.priority,
        **alert.data,
    }
    return dumps({"type": alert.type, "timestamp": iso(alert.created_at), "data": data})


def dumps(document: dict[str, Any]) -> str:
    """A webhook body: compact JSON with sorted keys (the stored, signed bytes)."""
    return json.dumps(document, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def first_attempt_at(created_at: datetime) -> datetime:
    """``MGDIARY_WEBHOOK_RETRY_SCHEDULE``'s first delay counts from the alert's creation."""
    return created_at + timedelta(seconds=get_settings().webhook_retry_schedule[0])


def fanout(alert: Any) -> list[followups.Update]:
    data = alert.data if isinstance(alert.data, dict) else {}
    if alert.type in OPERATIONAL and data.get("event_type") in OPERATIONAL:
        # The failure of an operational message is not sent anywhere (inbox only): two failing
        # endpoints subscribed to failures would otherwise feed each other for ever.
        return []
    created = alert.created_at or utcnow()
    exclude = NOBODY
    if alert.type in OPERATIONAL and alert.subject_type == "webhook_endpoint":
        exclude = uuid.UUID(str(alert.subject_id))
    elif alert.type in OPERATIONAL and isinstance(alert.data, dict):
        endpoint = alert.data.get("endpoint_id")
        exclude = uuid.UUID(str(endpoint)) if endpoint else NOBODY
    params = {
        "alert_id": alert.id,
        "study_id": alert.study_id,
        "exclude_endpoint": exclude,
        "event_type": alert.type,
        "body": body_of(alert),
        "next_attempt_at": first_attempt_at(created),
        "now": utcnow(),
    }
    return [followups.Update(FANOUT, params)]


alerts.FANOUT_HOOKS.append(fanout)
