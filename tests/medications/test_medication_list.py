"""The participant's medication list: kept by participant and investigator, versioned, audited;
the daily prednisone-equivalent dose derives from it (issue 3, item 1)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.audit.models import AuditEvent
from tests.factories import bearer, create_participant, create_study, participant_token, staff_token

PREDNISONE = {
    "medication": "prednisone",
    "dose": 20,
    "unit": "mg",
    "route": "PO",
    "frequency": "once_daily",
    "start_date": "2026-02-01",
}


@pytest.fixture
def world(session: Session) -> dict[str, Any]:
    study, sites = create_study(session)
    participant, _ = create_participant(session, study=study, site=sites["X"])
    return {
        "participant": participant,
        "app": bearer(participant_token(participant)),
        "investigator": bearer(
            staff_token(session, role="investigator", study=study, site=sites["X"])
        ),
        "other_site": bearer(
            staff_token(session, role="investigator", study=study, site=sites["Y"])
        ),
        "monitor": bearer(staff_token(session, role="monitor", study=study)),
    }


def test_participant_adds_and_changes_a_medication_with_history(
    client: TestClient, session: Session, world: dict[str, Any]
) -> None:
    created = client.post("/app/v1/medications", json=PREDNISONE, headers=world["app"])
    assert created.status_code == 201, created.text
    line = created.json()
    assert line["medication_code"] == "prednisone"
    assert line["is_corticosteroid"] is True
    assert line["version"] == 1

    missing_reason = client.post(
        f"/app/v1/medications/{line['id']}/changes",
        json={**PREDNISONE, "dose": 15},
        headers=world["app"],
    )
    assert missing_reason.status_code == 422

    changed = client.post(
        f"/app/v1/medications/{line['id']}/changes",
        json={**PREDNISONE, "dose": 15, "reason": "Taper started by the clinic"},
        headers=world["app"],
    )
    assert changed.status_code == 201, changed.text
    assert changed.json()["version"] == 2
    assert changed.json()["dose"] == 15

    versions = client.get(
        f"/portal/v1/participants/{world['participant'].id}/medications/{line['id']}/versions",
        headers=world["investigator"],
    ).json()
    assert [(v["version"], v["dose"], v["reason"]) for v in versions] == [
        (1, 20, None),
        (2, 15, "Taper started by the clinic"),
    ]
    event = session.exec(
        select(AuditEvent).where(
            AuditEvent.entity_id == line["id"], AuditEvent.action == "medication_line.change"
        )
    ).one()
    assert event.changes["dose"] == {"before": 20, "after": 15}
    assert event.actor_type == "participant"


def test_identical_change_is_a_conflict(client: TestClient, world: dict[str, Any]) -> None:
    line = client.post("/app/v1/medications", json=PREDNISONE, headers=world["app"]).json()
    same = client.post(
        f"/app/v1/medications/{line['id']}/changes",
        json={**PREDNISONE, "reason": "No change really"},
        headers=world["app"],
    )
    assert same.status_code == 409


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("unit", "spoonful"),
        ("route", "by magic"),
        ("dose", 0),
        ("dose", "20"),
        ("frequency", "hourly"),
        ("stop_date", "2026-01-01"),
        ("medication", "pred\x00nisone"),
    ],
)
def test_bad_lines_are_refused_with_the_field(
    client: TestClient, world: dict[str, Any], field: str, value: Any
) -> None:
    response = client.post(
        "/app/v1/medications", json={**PREDNISONE, field: value}, headers=world["app"]
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


def test_investigator_keeps_the_list_and_scope_is_enforced(
    client: TestClient, world: dict[str, Any]
) -> None:
    pid = world["participant"].id
    added = client.post(
        f"/portal/v1/participants/{pid}/medications",
        json={
            **PREDNISONE,
            "medication": "Mestinon",
            "dose": 60,
            "frequency": "four_times_daily",
            "reason": "Baseline medication review",
        },
        headers=world["investigator"],
    )
    assert added.status_code == 201, added.text
    assert added.json()["medication_code"] == "pyridostigmine"
    assert added.json()["updated_by_role"] == "investigator"

    own = client.get("/app/v1/medications", headers=world["app"]).json()
    assert [m["medication_code"] for m in own] == ["pyridostigmine"]

    assert (
        client.get(
            f"/portal/v1/participants/{pid}/medications", headers=world["other_site"]
        ).status_code
        == 404
    )
    assert (
        client.get(
            f"/portal/v1/participants/{pid}/medications", headers=world["monitor"]
        ).status_code
        == 200
    )
    assert (
        client.post(
            f"/portal/v1/participants/{pid}/medications", json=PREDNISONE, headers=world["monitor"]
        ).status_code
        == 403
    )


def test_daily_prednisone_equivalent_dose(client: TestClient, world: dict[str, Any]) -> None:
    """Prednisone 20 mg daily, then methylprednisolone 8 mg twice daily from 2026-02-03
    (x1.25 equivalence: 20 mg prednisone-equivalent), an as-needed steroid not counted."""
    pid = world["participant"].id
    headers = world["investigator"]
    pred = client.post(
        f"/portal/v1/participants/{pid}/medications",
        json={**PREDNISONE, "stop_date": "2026-02-02"},
        headers=headers,
    ).json()
    client.post(
        f"/portal/v1/participants/{pid}/medications",
        json={
            **PREDNISONE,
            "medication": "methylprednisolone",
            "dose": 8,
            "frequency": "twice_daily",
            "start_date": "2026-02-03",
        },
        headers=headers,
    )
    as_needed = client.post(
        f"/portal/v1/participants/{pid}/medications",
        json={**PREDNISONE, "medication": "dexamethasone", "dose": 4, "frequency": "as_needed"},
        headers=headers,
    ).json()
    client.post(
        f"/portal/v1/participants/{pid}/medications",
        json={**PREDNISONE, "medication": "pyridostigmine", "dose": 60},
        headers=headers,
    )
    response = client.get(
        f"/portal/v1/participants/{pid}/corticosteroid-doses",
        params={"from": "2026-01-31", "to": "2026-02-04"},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert [(d["date"], d["prednisone_equivalent_mg"]) for d in body["days"]] == [
        ("2026-01-31", 0),
        ("2026-02-01", 20),
        ("2026-02-02", 20),
        ("2026-02-03", 20),
        ("2026-02-04", 20),
    ]
    assert body["days"][1]["lines"] == [pred["id"]]
    assert body["not_derivable"] == [as_needed["id"]]

    backwards = client.get(
        f"/portal/v1/participants/{pid}/corticosteroid-doses",
        params={"from": "2026-02-04", "to": "2026-01-31"},
        headers=headers,
    )
    assert backwards.status_code == 422


def test_other_participants_lines_are_not_found(
    client: TestClient, session: Session, world: dict[str, Any]
) -> None:
    line = client.post("/app/v1/medications", json=PREDNISONE, headers=world["app"]).json()
    study_other, sites_other = create_study(session)
    other, _ = create_participant(session, study=study_other, site=sites_other["X"])
    other_headers = bearer(participant_token(other))
    for path in (f"/app/v1/medications/{line['id']}/versions",):
        assert client.get(path, headers=other_headers).status_code == 404
    response = client.post(
        f"/app/v1/medications/{line['id']}/changes",
        json={**PREDNISONE, "dose": 5, "reason": "Trying to change someone else's"},
        headers=other_headers,
    )
    assert response.status_code == 404
