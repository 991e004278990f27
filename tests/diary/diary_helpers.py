"""Builders and readers shared by the diary API tests (no fixtures here)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlmodel import Session, col, select

from app.audit.models import AuditEvent
from app.diary.models import DiaryConflict, DiaryEntry, DiaryEntryVersion

#: The suite's "now": a Sunday noon UTC (13:00 in Berlin), the machine's date.
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
APP = "/app/v1"
PORTAL = "/portal/v1"
ENTRIES = f"{APP}/diary/entries"
SYNC = f"{APP}/diary/sync"
CHANGES = f"{APP}/diary/changes"

MG_ADL_ITEMS = (
    "talking",
    "chewing",
    "swallowing",
    "breathing",
    "brushing_teeth_or_combing_hair",
    "arising_from_chair",
    "double_vision",
    "eyelid_droop",
)
#: total 13; ocular 3 + 2 = 5, bulbar 1 + 2 + 1 = 4, respiratory 1, limb 1 + 2 = 3.
MG_ADL = {
    "talking": 1,
    "chewing": 2,
    "swallowing": 1,
    "breathing": 1,
    "brushing_teeth_or_combing_hair": 1,
    "arising_from_chair": 2,
    "double_vision": 3,
    "eyelid_droop": 2,
}

SAMPLE_DATA: dict[str, dict[str, Any]] = {
    "mg_adl": MG_ADL,
    "vitals": {"temperature_c": 37.2, "heart_rate_bpm": 72},
    "symptoms": {"symptoms": [{"code": "headache", "severity": 2}]},
    "medication_dose": {"medication": "pyridostigmine", "amount": 60, "unit": "mg", "route": "PO"},
    "steps": {"date": "2026-11-21", "count": 4200, "source": "phone"},
    "note": {"text": "Tired after the stairs."},
}


def local(text: str, zone: str = "Europe/Berlin") -> str:
    """``2026-11-21T08:30`` in ``zone`` as an ISO string with that zone's offset."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).isoformat()


def ago(**delta: float) -> str:
    """An instant ``delta`` before the (possibly travelled) clock, in Berlin time."""
    return (
        (datetime.now(UTC) - timedelta(**delta)).astimezone(ZoneInfo("Europe/Berlin")).isoformat()
    )


def entry(
    kind: str = "mg_adl",
    data: dict[str, Any] | None = None,
    *,
    recorded_at: str | None = None,
    time_zone: str = "Europe/Berlin",
    entry_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": entry_id or str(uuid.uuid4()),
        "kind": kind,
        "recorded_at": recorded_at or ago(hours=1),
        "time_zone": time_zone,
        "data": dict(SAMPLE_DATA[kind]) if data is None else data,
        **extra,
    }


def mg_adl(**items: Any) -> dict[str, Any]:
    return {**MG_ADL, **items}


def post(client: TestClient, headers: dict[str, str], body: Any, **kw: Any) -> Any:
    return client.post(ENTRIES, json=body, headers=headers, **kw)


def sync(client: TestClient, headers: dict[str, str], entries: list[Any]) -> list[dict[str, Any]]:
    response = client.post(SYNC, json={"entries": entries}, headers=headers)
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    assert len(results) == len(entries)
    return results


def sync_one(client: TestClient, headers: dict[str, str], item: Any) -> dict[str, Any]:
    return sync(client, headers, [item])[0]


def error_locs(errors: list[dict[str, Any]]) -> list[str]:
    return [".".join(str(p) for p in e["loc"]) for e in errors]


def count_entries(session: Session, participant_id: Any) -> int:
    return session.exec(
        select(func.count())
        .select_from(DiaryEntry)
        .where(DiaryEntry.participant_id == participant_id)
    ).one()


def count_versions(session: Session, participant_id: Any) -> int:
    return session.exec(
        select(func.count())
        .select_from(DiaryEntryVersion)
        .where(DiaryEntryVersion.participant_id == participant_id)
    ).one()


def audit_events(session: Session, participant_id: Any, action: str) -> list[AuditEvent]:
    session.expire_all()
    return list(
        session.exec(
            select(AuditEvent)
            .where(AuditEvent.participant_id == participant_id, AuditEvent.action == action)
            .order_by(col(AuditEvent.occurred_at))
        )
    )


def conflicts(session: Session, participant_id: Any) -> list[DiaryConflict]:
    session.expire_all()
    return list(
        session.exec(select(DiaryConflict).where(DiaryConflict.participant_id == participant_id))
    )


def page_all(
    client: TestClient, url: str, headers: dict[str, str], *, limit: int, **params: Any
) -> list[dict[str, Any]]:
    """Every item of a paginated list, following ``next_cursor``."""
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        query = {"limit": limit, **params}
        if cursor:
            query["cursor"] = cursor
        response = client.get(url, params=query, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= limit
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("pagination never ended")
