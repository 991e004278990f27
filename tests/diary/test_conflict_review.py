"""Conflicting submissions are kept for data management review and closed with a reason."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.audit.models import AuditEvent
from tests.factories import bearer, create_participant, create_study, participant_token, staff_token

MG_ADL = {
    "talking": 1,
    "chewing": 0,
    "swallowing": 0,
    "breathing": 0,
    "brushing_teeth_or_combing_hair": 1,
    "arising_from_chair": 1,
    "double_vision": 2,
    "eyelid_droop": 2,
}


def _entry(**data: int) -> dict[str, object]:
    return {
        "id": str(uuid.uuid4()),
        "kind": "mg_adl",
        "recorded_at": "2026-11-20T08:00:00+01:00",
        "time_zone": "Europe/Berlin",
        "data": {**MG_ADL, **data},
    }


def test_conflict_is_listed_for_the_site_and_resolved_once(
    client: TestClient, session: Session
) -> None:
    study, sites = create_study(session)
    participant, _ = create_participant(session, study=study, site=sites["X"])
    app = bearer(participant_token(participant))
    entry = _entry()
    assert client.post("/app/v1/diary/entries", json=entry, headers=app).status_code == 201
    changed = {**entry, "data": {**MG_ADL, "talking": 3}}
    assert client.post("/app/v1/diary/entries", json=changed, headers=app).status_code == 409

    investigator = bearer(staff_token(session, role="investigator", study=study, site=sites["X"]))
    other_site = bearer(staff_token(session, role="investigator", study=study, site=sites["Y"]))
    monitor = bearer(staff_token(session, role="monitor", study=study))

    listed = client.get(f"/portal/v1/studies/{study.id}/diary-conflicts", headers=investigator)
    assert listed.status_code == 200, listed.text
    [conflict] = listed.json()["items"]
    assert conflict["entry_id"] == entry["id"]
    assert conflict["payload"]["data"]["talking"] == 3
    assert conflict["status"] == "open"
    assert (
        client.get(f"/portal/v1/studies/{study.id}/diary-conflicts", headers=other_site).json()[
            "items"
        ]
        == []
    )

    path = f"/portal/v1/diary-conflicts/{conflict['id']}/resolve"
    assert client.post(path, json={"reason": "Reviewed"}, headers=monitor).status_code == 403
    assert client.post(path, json={"reason": "Reviewed"}, headers=other_site).status_code == 404
    assert client.post(path, json={}, headers=investigator).status_code == 422
    resolved = client.post(
        path, json={"reason": "Phone re-sent an edited draft; original kept"}, headers=investigator
    )
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["status"] == "resolved"
    assert client.post(path, json={"reason": "Again"}, headers=investigator).status_code == 409

    assert (
        client.get(f"/portal/v1/studies/{study.id}/diary-conflicts", headers=investigator).json()[
            "items"
        ]
        == []
    )
    closed = client.get(
        f"/portal/v1/studies/{study.id}/diary-conflicts",
        params={"status": "resolved"},
        headers=monitor,
    ).json()["items"]
    assert [c["resolution"] for c in closed] == ["Phone re-sent an edited draft; original kept"]
    stored = client.get(f"/app/v1/diary/entries/{entry['id']}", headers=app).json()
    assert stored["data"]["talking"] == 1
    event = session.exec(
        select(AuditEvent).where(AuditEvent.action == "diary_conflict.resolve")
    ).one()
    assert event.reason == "Phone re-sent an edited draft; original kept"
