"""Participant trends over HTTP (issue 4, items 3-5; TREND in api-contract.md)."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from datetime import date
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from tests.factories import bearer, create_participant, create_study, participant_token, staff_token

ITEMS = (
    "talking",
    "chewing",
    "swallowing",
    "breathing",
    "brushing_teeth_or_combing_hair",
    "arising_from_chair",
    "double_vision",
    "eyelid_droop",
)


def mg_adl(total: int) -> dict[str, int]:
    """Items summing to ``total`` (0-24), filled item by item."""
    items, left = {}, total
    for key in ITEMS:
        items[key] = min(3, left)
        left -= items[key]
    return items


def diary(day: str, total: int) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "kind": "mg_adl",
        "recorded_at": f"{day}T09:00:00+01:00",
        "time_zone": "Europe/Berlin",
        "data": mg_adl(total),
    }


@pytest.fixture
def world(session: Session) -> dict[str, Any]:
    study, sites = create_study(session)
    participant, _ = create_participant(
        session,
        study=study,
        site=sites["X"],
        enrolled_on=date(2026, 1, 1),
        day0_date=date(2026, 1, 5),
    )
    return {
        "pid": participant.id,
        "app": bearer(participant_token(participant)),
        "inv": bearer(staff_token(session, role="investigator", study=study, site=sites["X"])),
        "other": bearer(staff_token(session, role="investigator", study=study, site=sites["Y"])),
    }


def test_published_style_series_gives_improvement_and_mse(
    client: TestClient, world: dict[str, Any]
) -> None:
    """Baseline 8 the day before day 0, then weekly 6, 5, 1: the first >= 2-point fall
    (instruments.md 1.5) in week 1, MSE (MG-ADL <= 1, 1.6) in week 3."""
    entries = [
        diary("2026-01-04", 8),
        diary("2026-01-12", 6),
        diary("2026-01-19", 5),
        diary("2026-01-26", 1),
    ]
    synced = client.post("/app/v1/diary/sync", json={"entries": entries}, headers=world["app"])
    assert [r["status"] for r in synced.json()["results"]] == ["created"] * 4

    trend = client.get(
        f"/portal/v1/participants/{world['pid']}/trends/mg_adl", headers=world["inv"]
    )
    assert trend.status_code == 200, trend.text
    body = trend.json()
    assert body["baseline_value"] == 8
    assert body["baseline_date"] == "2026-01-04"
    assert [(p["date"], p["value"], p["change_from_baseline"]) for p in body["points"]] == [
        ("2026-01-04", 8, 0),
        ("2026-01-12", 6, -2),
        ("2026-01-19", 5, -3),
        ("2026-01-26", 1, -7),
    ]
    assert body["first_improvement_date"] == "2026-01-12"
    assert body["first_mse_date"] == "2026-01-26"
    assert body["sustained_response_start_date"] is None
    assert body["worsening_dates"] == []

    own = client.get("/app/v1/trends/mg_adl", headers=world["app"])
    assert own.status_code == 200
    assert own.json()["first_mse_date"] == "2026-01-26"


def test_worsening_confirmed_by_the_next_value(client: TestClient, world: dict[str, Any]) -> None:
    """Two consecutive values >= 2 above baseline (api-contract.md); the date is the first."""
    entries = [
        diary("2026-01-04", 6),
        diary("2026-01-08", 9),
        diary("2026-01-10", 8),
        diary("2026-01-12", 6),
    ]
    client.post("/app/v1/diary/sync", json={"entries": entries}, headers=world["app"])
    body = client.get(
        f"/portal/v1/participants/{world['pid']}/trends/mg_adl", headers=world["inv"]
    ).json()
    assert body["worsening_dates"] == ["2026-01-08"]


def test_clinic_qmg_trend_uses_the_qmg_delta(client: TestClient, world: dict[str, Any]) -> None:
    """QMG improvement means a fall of at least 3 (api-contract.md; instruments.md 2.2)."""
    keys = (
        "diplopia",
        "ptosis",
        "facial_muscles",
        "swallowing",
        "speech",
        "right_arm",
        "left_arm",
        "vital_capacity",
        "right_grip",
        "left_grip",
        "head_lift",
        "right_leg",
        "left_leg",
    )

    def qmg(total: int) -> dict[str, int]:
        items, left = {}, total
        for key in keys:
            items[key] = min(3, left)
            left -= items[key]
        return items

    for day, total in (("2026-01-05", 20), ("2026-02-02", 18), ("2026-03-02", 17)):
        response = client.post(
            f"/portal/v1/participants/{world['pid']}/assessments",
            json={"instrument": "qmg", "assessed_at": f"{day}T10:00:00+01:00", "items": qmg(total)},
            headers=world["inv"],
        )
        assert response.status_code == 201, response.text
    body = client.get(
        f"/portal/v1/participants/{world['pid']}/trends/qmg", headers=world["inv"]
    ).json()
    assert body["baseline_value"] == 20
    assert [p["source"] for p in body["points"]] == ["clinic"] * 3
    assert body["first_improvement_date"] == "2026-03-02"


def test_svg_is_valid_and_carries_every_point(client: TestClient, world: dict[str, Any]) -> None:
    entries = [diary("2026-01-04", 8), diary("2026-01-12", 6), diary("2026-01-19", 5)]
    client.post("/app/v1/diary/sync", json={"entries": entries}, headers=world["app"])
    response = client.get(
        f"/portal/v1/participants/{world['pid']}/trends/mg_adl.svg", headers=world["inv"]
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("image/svg+xml")
    root = ET.fromstring(response.text)
    ns = "{http://www.w3.org/2000/svg}"
    circles = root.findall(f"{ns}circle")
    assert [(c.get("data-date"), c.get("data-value")) for c in circles] == [
        ("2026-01-04", "8"),
        ("2026-01-12", "6"),
        ("2026-01-19", "5"),
    ]
    assert root.find(f"{ns}line[@class='baseline']") is not None
    assert root.find(f"{ns}rect[@class='improvement-band']") is not None

    empty = client.get(
        f"/portal/v1/participants/{world['pid']}/trends/qmg.svg", headers=world["inv"]
    )
    assert empty.status_code == 200
    assert "No data yet" in ET.fromstring(empty.text).find(f"{ns}text").text  # type: ignore[union-attr]


def test_scope_and_unknown_instrument(client: TestClient, world: dict[str, Any]) -> None:
    path = f"/portal/v1/participants/{world['pid']}/trends"
    assert client.get(f"{path}/mg_adl", headers=world["other"]).status_code == 404
    assert client.get(f"{path}/mg_adl.svg", headers=world["other"]).status_code == 404
    assert client.get(f"{path}/bmi", headers=world["inv"]).status_code == 422
    assert client.get(f"{path}/mg_adl", headers=world["app"]).status_code == 401


def test_corticosteroid_and_steps_trends(client: TestClient, world: dict[str, Any]) -> None:
    client.post(
        f"/portal/v1/participants/{world['pid']}/medications",
        json={
            "medication": "prednisone",
            "dose": 20,
            "unit": "mg",
            "route": "PO",
            "frequency": "once_daily",
            "start_date": "2026-01-01",
            "stop_date": "2026-01-10",
        },
        headers=world["inv"],
    )
    steroid = client.get(
        f"/portal/v1/participants/{world['pid']}/trends/corticosteroid", headers=world["inv"]
    ).json()
    assert steroid["baseline_value"] == 20
    values = {p["date"]: p["value"] for p in steroid["points"]}
    assert values["2026-01-10"] == 20
    assert values["2026-01-11"] == 0

    steps = [
        {
            "id": str(uuid.uuid4()),
            "kind": "steps",
            "recorded_at": f"{d}T22:00:00+01:00",
            "time_zone": "Europe/Berlin",
            "data": {"date": d, "count": c, "source": "watch"},
        }
        for d, c in (
            ("2026-01-02", 2000),
            ("2026-01-03", 4000),
            ("2026-01-06", 5000),
            ("2026-01-07", 7000),
        )
    ]
    client.post("/app/v1/diary/sync", json={"entries": steps}, headers=world["app"])
    body = client.get(
        f"/portal/v1/participants/{world['pid']}/trends/steps", headers=world["inv"]
    ).json()
    assert body["baseline_value"] == 3000
    assert [(p["value"], p["change_from_baseline"]) for p in body["points"]] == [(6000, 3000)]


def test_svg_marks_dosing_days_and_visits(
    client: TestClient, session: Session, world: dict[str, Any]
) -> None:
    """Issue 4 item 5: "dosing days and visits marked" - the study-drug infusion (5 days from
    day 0) and the clinic visits (week 4 completed, week 0 still open, the next one scheduled)."""
    base = f"/portal/v1/participants/{world['pid']}"
    infusion = {
        "product": "blinatumomab",
        "dose": 9,
        "unit": "mcg/day",
        "started_at": "2026-01-05T08:00:00+01:00",
        "ended_at": "2026-01-09T20:00:00+01:00",
        "cycle": 1,
    }
    assert (
        client.post(f"{base}/administrations", json=infusion, headers=world["inv"]).status_code
        == 201
    )
    visits = client.get(f"{base}/visits", headers=world["inv"]).json()
    week4 = next(v for v in visits if v["kind"] == "clinic" and v["day"] == 28)
    done = client.patch(
        f"/portal/v1/visits/{week4['id']}",
        json={"completed_on": "2026-02-03", "reason": "Seen in clinic"},
        headers=world["inv"],
    )
    assert done.status_code == 200, done.text
    entries = [diary("2026-01-04", 8), diary("2026-01-12", 6), diary("2026-02-02", 5)]
    client.post("/app/v1/diary/sync", json={"entries": entries}, headers=world["app"])

    response = client.get(f"{base}/trends/mg_adl.svg", headers=world["inv"])
    assert response.status_code == 200, response.text
    root = ET.fromstring(response.text)
    ns = "{http://www.w3.org/2000/svg}"
    assert [c.get("data-date") for c in root.findall(f"{ns}circle")] == [
        "2026-01-04",
        "2026-01-12",
        "2026-02-02",
    ]
    dosing = root.findall(f"{ns}line[@class='dosing']")
    assert [(d.get("data-date"), d.get("data-end-date")) for d in dosing] == [
        ("2026-01-05", "2026-01-09")
    ]
    completed = root.findall(f"{ns}path[@class='visit-completed']")
    assert [(v.get("data-day"), v.get("data-date")) for v in completed] == [("28", "2026-02-03")]
    scheduled = {v.get("data-day") for v in root.findall(f"{ns}path[@class='visit-scheduled']")}
    assert scheduled == {"0", "56"}  # day 0 not recorded yet; day 56 is the next one
    legend = {g.get("data-kind") for g in root.iter(f"{ns}g") if g.get("class") == "legend-item"}
    assert {"dosing", "visit-completed", "visit-scheduled"} <= legend
    # No identifiers or free text: not the product, the reason or the subject code.
    participant = client.get(base, headers=world["inv"]).json()
    for secret in ("blinatumomab", "Seen in clinic", participant["subject_code"]):
        assert secret not in response.text
