"""Clinic assessments and labs: recorded by investigators, scored exactly, corrected by
versions with a reason (issue 4, item 2)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.audit.models import AuditEvent
from tests.factories import bearer, create_participant, create_study, participant_token, staff_token

QMG_GRADES = {
    "diplopia": 2,
    "ptosis": 1,
    "facial_muscles": 1,
    "swallowing": 0,
    "speech": 1,
    "right_arm": 2,
    "left_arm": 2,
    "vital_capacity": 1,
    "right_grip": 0,
    "left_grip": 1,
    "head_lift": 2,
    "right_leg": 1,
    "left_leg": 1,
}
MGC_LEVELS = {
    "ptosis": 1,
    "diplopia": 1,
    "eye_closure": 1,
    "talking": 1,
    "chewing": 1,
    "swallowing": 1,
    "breathing": 1,
    "neck": 1,
    "shoulder_abduction": 1,
    "hip_flexion": 1,
}


@pytest.fixture
def world(session: Session) -> dict[str, Any]:
    study, sites = create_study(session)
    participant, _ = create_participant(session, study=study, site=sites["X"])
    return {
        "pid": participant.id,
        "participant": bearer(participant_token(participant)),
        "inv": bearer(staff_token(session, role="investigator", study=study, site=sites["X"])),
        "other": bearer(staff_token(session, role="investigator", study=study, site=sites["Y"])),
        "monitor": bearer(staff_token(session, role="monitor", study=study)),
    }


def _post(client: TestClient, world: dict[str, Any], body: dict[str, Any], who: str = "inv") -> Any:
    return client.post(
        f"/portal/v1/participants/{world['pid']}/assessments", json=body, headers=world[who]
    )


def test_qmg_from_grades_is_scored_and_listed(client: TestClient, world: dict[str, Any]) -> None:
    response = _post(
        client,
        world,
        {"instrument": "qmg", "assessed_at": "2026-02-02T10:00:00+01:00", "items": QMG_GRADES},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["score"]["total"] == sum(QMG_GRADES.values()) == 15
    assert body["assessed_date"] == "2026-02-02"
    listed = client.get(
        f"/portal/v1/participants/{world['pid']}/assessments",
        params={"instrument": "qmg"},
        headers=world["monitor"],
    ).json()
    assert [a["id"] for a in listed] == [body["id"]]


def test_qmg_measurements_are_converted(client: TestClient, world: dict[str, Any]) -> None:
    """instruments.md 2.1: diplopia held 5 s is grade 2 (1-10 s); grades given directly for the
    descriptive items; female grip 30 kg is grade 0 (>= 25 kg)."""
    grades = {k: v for k, v in QMG_GRADES.items() if k not in ("diplopia", "right_grip")}
    response = _post(
        client,
        world,
        {
            "instrument": "qmg",
            "assessed_at": "2026-02-02T10:00:00+01:00",
            "items": grades,
            "measurements": {"diplopia": 5, "right_grip": 30},
            "sex": "female",
        },
    )
    assert response.status_code == 201, response.text
    assert response.json()["score"]["total"] == 15  # diplopia 2, right grip 0 as above


def test_qmg_vital_capacity_measurement_needs_the_protocol_threshold(
    client: TestClient, world: dict[str, Any]
) -> None:
    """instruments.md 12 item 2: vital-capacity cut-offs are unconfirmed; unset, refused."""
    grades = {k: v for k, v in QMG_GRADES.items() if k != "vital_capacity"}
    response = _post(
        client,
        world,
        {
            "instrument": "qmg",
            "assessed_at": "2026-02-02T10:00:00+01:00",
            "items": grades,
            "measurements": {"vital_capacity": 70},
        },
    )
    assert response.status_code == 422
    assert ["body", "items", "vital_capacity"] in [e["loc"] for e in response.json()["errors"]]


def test_mgc_levels_map_to_weighted_points(client: TestClient, world: dict[str, Any]) -> None:
    response = _post(
        client,
        world,
        {"instrument": "mgc", "assessed_at": "2026-02-02T10:00:00Z", "items": MGC_LEVELS},
    )
    assert response.status_code == 201, response.text
    total = response.json()["score"]["total"]
    assert 0 < total <= 50
    assert total != sum(MGC_LEVELS.values())  # weighted, not the raw levels


@pytest.mark.parametrize(
    "body",
    [
        {
            "instrument": "qmg",
            "assessed_at": "2026-02-02T10:00:00Z",
            "items": {**QMG_GRADES, "diplopia": 4},
        },
        {
            "instrument": "qmg",
            "assessed_at": "2026-02-02T10:00:00Z",
            "items": {k: v for k, v in QMG_GRADES.items() if k != "ptosis"},
        },
        {
            "instrument": "mg_qol15r",
            "assessed_at": "2026-02-02T10:00:00Z",
            "items": {f"q{i}": 1 for i in range(1, 15)},
        },
        {
            "instrument": "mgc",
            "assessed_at": "2026-02-02T10:00:00Z",
            "items": MGC_LEVELS,
            "measurements": {"ptosis": 3},
        },
        {"instrument": "qmg", "assessed_at": "2026-02-02T10:00:00", "items": QMG_GRADES},
        {
            "instrument": "qmg",
            "assessed_at": "2026-02-02T10:00:00Z",
            "items": QMG_GRADES,
            "score": 3,
        },
    ],
    ids=[
        "out-of-range",
        "missing",
        "incomplete-qol",
        "measurements-not-qmg",
        "naive-time",
        "server-owned-field",
    ],
)
def test_bad_assessments_are_422(
    client: TestClient, world: dict[str, Any], body: dict[str, Any]
) -> None:
    response = _post(client, world, body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


def test_scope_and_roles(client: TestClient, world: dict[str, Any]) -> None:
    body = {
        "instrument": "mg_qol15r",
        "assessed_at": "2026-02-02T10:00:00Z",
        "items": {f"q{i}": 1 for i in range(1, 16)},
    }
    assert _post(client, world, body, "monitor").status_code == 403
    assert _post(client, world, body, "other").status_code == 404
    assert _post(client, world, body, "participant").status_code == 401
    created = _post(client, world, body).json()
    assert created["score"]["total"] == 15
    assert (
        client.get(
            f"/portal/v1/assessments/{created['id']}/versions", headers=world["other"]
        ).status_code
        == 404
    )


def test_correction_rescores_and_keeps_history(
    client: TestClient, session: Session, world: dict[str, Any]
) -> None:
    created = _post(
        client,
        world,
        {"instrument": "qmg", "assessed_at": "2026-02-02T10:00:00Z", "items": QMG_GRADES},
    ).json()
    path = f"/portal/v1/assessments/{created['id']}/corrections"
    fixed = {"assessed_at": "2026-02-02T10:00:00Z", "items": {**QMG_GRADES, "diplopia": 3}}
    assert client.post(path, json=fixed, headers=world["inv"]).status_code == 422  # no reason
    assert (
        client.post(
            path, json={**fixed, "reason": "Diplopia re-timed"}, headers=world["monitor"]
        ).status_code
        == 403
    )
    corrected = client.post(
        path, json={**fixed, "reason": "Diplopia re-timed"}, headers=world["inv"]
    )
    assert corrected.status_code == 201, corrected.text
    assert corrected.json()["score"]["total"] == 16
    assert corrected.json()["version"] == 2
    same = client.post(path, json={**fixed, "reason": "Again"}, headers=world["inv"])
    assert same.status_code == 409
    versions = client.get(
        f"/portal/v1/assessments/{created['id']}/versions", headers=world["monitor"]
    ).json()
    assert [(v["version"], v["score"]["total"], v["reason"]) for v in versions] == [
        (1, 15, None),
        (2, 16, "Diplopia re-timed"),
    ]
    event = session.exec(
        select(AuditEvent).where(AuditEvent.action == "clinic_assessment.correct")
    ).one()
    assert event.changes["total"] == {"before": 15, "after": 16}
    assert event.reason == "Diplopia re-timed"


def test_labs_are_recorded_with_units_and_corrected(
    client: TestClient, world: dict[str, Any]
) -> None:
    base = f"/portal/v1/participants/{world['pid']}/labs"
    bad_unit = client.post(
        base,
        json={
            "analyte": "anti_achr",
            "value": 12.5,
            "unit": "mg/dL",
            "collected_at": "2026-02-02T09:00:00Z",
        },
        headers=world["inv"],
    )
    assert bad_unit.status_code == 422
    created = client.post(
        base,
        json={
            "analyte": "cd19_b_cells",
            "value": 0,
            "unit": "cells/uL",
            "qualifier": "<",
            "collected_at": "2026-02-02T09:00:00Z",
        },
        headers=world["inv"],
    )
    assert created.status_code == 201, created.text
    lab = created.json()
    corrected = client.post(
        f"/portal/v1/labs/{lab['id']}/corrections",
        json={
            "value": 1,
            "unit": "cells/uL",
            "collected_at": "2026-02-02T09:00:00Z",
            "reason": "Lab reissued the report",
        },
        headers=world["inv"],
    )
    assert corrected.status_code == 201, corrected.text
    assert corrected.json()["value"] == 1
    assert corrected.json()["qualifier"] == "="
    wrong_unit = client.post(
        f"/portal/v1/labs/{lab['id']}/corrections",
        json={"value": 1, "unit": "g/L", "collected_at": "2026-02-02T09:00:00Z", "reason": "Oops"},
        headers=world["inv"],
    )
    assert wrong_unit.status_code == 422
    listed = client.get(base, params={"analyte": "cd19_b_cells"}, headers=world["monitor"]).json()
    assert [(item["version"], item["value"]) for item in listed] == [(2, 1)]
    history = client.get(f"/portal/v1/labs/{lab['id']}/versions", headers=world["inv"]).json()
    assert [v["version"] for v in history] == [1, 2]
