"""Study-drug administrations; day 0 defaults to the first one (api-contract.md)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.audit.models import AuditEvent
from app.medications.administrations import DAY0_REASON
from tests.factories import bearer, create_participant, create_study, staff_token

INFUSION = {
    "product": "blinatumomab",
    "dose": 9,
    "unit": "mcg/day",
    "started_at": "2026-01-05T23:30:00-05:00",
    "ended_at": "2026-01-10T09:00:00-05:00",
    "cycle": 1,
}


@pytest.fixture
def world(session: Session) -> dict[str, Any]:
    study, sites = create_study(session)
    participant, _ = create_participant(
        session,
        study=study,
        site=sites["X"],
        time_zone="America/New_York",
        enrolled_on=date(2026, 1, 2),
    )
    return {
        "pid": participant.id,
        "inv": bearer(staff_token(session, role="investigator", study=study, site=sites["X"])),
        "monitor": bearer(staff_token(session, role="monitor", study=study)),
        "other": bearer(staff_token(session, role="investigator", study=study, site=sites["Y"])),
    }


def test_first_administration_sets_day0_in_local_time(
    client: TestClient, session: Session, world: dict[str, Any]
) -> None:
    base = f"/portal/v1/participants/{world['pid']}"
    created = client.post(f"{base}/administrations", json=INFUSION, headers=world["inv"])
    assert created.status_code == 201, created.text
    assert created.json()["start_date"] == "2026-01-05"  # 23:30 in New York, not UTC's 6th
    participant = client.get(base, headers=world["inv"]).json()
    assert participant["day0_date"] == "2026-01-05"
    event = session.exec(
        select(AuditEvent).where(
            AuditEvent.action == "participant.update", AuditEvent.reason == DAY0_REASON
        )
    ).one()
    assert event.changes["day0_date"] == {"before": None, "after": "2026-01-05"}

    second = client.post(
        f"{base}/administrations",
        json={
            **INFUSION,
            "started_at": "2026-01-17T08:00:00-05:00",
            "ended_at": None,
            "cycle": 2,
            "dose": 28,
        },
        headers=world["inv"],
    )
    assert second.status_code == 201
    assert client.get(base, headers=world["inv"]).json()["day0_date"] == "2026-01-05"
    listed = client.get(f"{base}/administrations", headers=world["monitor"]).json()
    assert [(a["cycle"], a["dose"]) for a in listed] == [(1, 9), (2, 28)]


def test_corrections_and_roles(client: TestClient, world: dict[str, Any]) -> None:
    base = f"/portal/v1/participants/{world['pid']}"
    assert (
        client.post(f"{base}/administrations", json=INFUSION, headers=world["monitor"]).status_code
        == 403
    )
    assert (
        client.post(f"{base}/administrations", json=INFUSION, headers=world["other"]).status_code
        == 404
    )
    bad = client.post(
        f"{base}/administrations",
        json={**INFUSION, "ended_at": "2026-01-01T00:00:00Z"},
        headers=world["inv"],
    )
    assert bad.status_code == 422
    created = client.post(f"{base}/administrations", json=INFUSION, headers=world["inv"]).json()
    path = f"/portal/v1/administrations/{created['id']}"
    assert (
        client.post(f"{path}/corrections", json=INFUSION, headers=world["inv"]).status_code == 422
    )
    fixed = client.post(
        f"{path}/corrections",
        json={**INFUSION, "dose": 5, "reason": "Pump log"},
        headers=world["inv"],
    )
    assert fixed.status_code == 201, fixed.text
    assert fixed.json()["version"] == 2
    same = client.post(
        f"{path}/corrections", json={**INFUSION, "dose": 5, "reason": "Again"}, headers=world["inv"]
    )
    assert same.status_code == 409
    history = client.get(f"{path}/versions", headers=world["monitor"]).json()
    assert [(v["version"], v["dose"], v["reason"]) for v in history] == [
        (1, 9, None),
        (2, 5, "Pump log"),
    ]
    assert client.get(f"{path}/versions", headers=world["other"]).status_code == 404
