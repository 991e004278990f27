"""Persisted visit schedules over HTTP (issue 5 items 1, 2, 4, 5)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.audit.models import AuditEvent
from app.core.time import today_in
from tests.factories import bearer, create_participant, create_study, participant_token, staff_token


@pytest.fixture
def world(session: Session) -> dict[str, Any]:
    study, sites = create_study(session)
    today = today_in("Europe/Berlin")
    participant, _ = create_participant(
        session,
        study=study,
        site=sites["X"],
        enrolled_on=today - timedelta(days=40),
        day0_date=today - timedelta(days=30),
    )
    return {
        "study": study,
        "participant": participant,
        "today": today,
        "app": bearer(participant_token(participant)),
        "inv": bearer(staff_token(session, role="investigator", study=study, site=sites["X"])),
        "monitor": bearer(staff_token(session, role="monitor", study=study)),
        "other": bearer(staff_token(session, role="investigator", study=study, site=sites["Y"])),
    }


def _visits(client: TestClient, world: dict[str, Any], who: str = "inv") -> list[dict[str, Any]]:
    response = client.get(
        f"/portal/v1/participants/{world['participant'].id}/visits", headers=world[who]
    )
    assert response.status_code == 200, response.text
    return list(response.json())


def test_enrolment_with_day0_schedules_the_protocol(
    client: TestClient, world: dict[str, Any]
) -> None:
    """NCT06836973 (trials.md 1): clinic visits every 4 weeks to week 24, cycles on day 0, 12."""
    visits = _visits(client, world)
    clinic = [v for v in visits if v["kind"] == "clinic"]
    assert [v["day"] for v in clinic] == [0, 28, 56, 84, 112, 140, 168]
    assert [v["day"] for v in visits if v["kind"] == "dosing"] == [0, 12]
    day0 = world["today"] - timedelta(days=30)
    week4 = clinic[1]
    assert week4["target_date"] == (day0 + timedelta(days=28)).isoformat()
    assert week4["window_start"] == (day0 + timedelta(days=25)).isoformat()
    assert week4["window_end"] == (day0 + timedelta(days=31)).isoformat()
    assert week4["status"] == "overdue"  # day 30: past the target, window still open
    assert clinic[0]["status"] == "missed"
    assert clinic[2]["status"] == "upcoming"
    assert [v["id"] for v in client.get("/app/v1/visits", headers=world["app"]).json()] == [
        v["id"] for v in visits
    ]


def test_complete_cancel_and_roles(
    client: TestClient, session: Session, world: dict[str, Any]
) -> None:
    visits = _visits(client, world)
    week4 = next(v for v in visits if v["kind"] == "clinic" and v["day"] == 28)
    path = f"/portal/v1/visits/{week4['id']}"
    done_on = (world["today"] - timedelta(days=1)).isoformat()
    assert (
        client.patch(
            path,
            json={"completed_on": done_on, "reason": "Seen in clinic"},
            headers=world["monitor"],
        ).status_code
        == 403
    )
    assert (
        client.patch(
            path, json={"completed_on": done_on, "reason": "Seen in clinic"}, headers=world["other"]
        ).status_code
        == 404
    )
    assert (
        client.patch(path, json={"completed_on": done_on}, headers=world["inv"]).status_code == 422
    )
    future = (world["today"] + timedelta(days=2)).isoformat()
    assert (
        client.patch(
            path, json={"completed_on": future, "reason": "Seen"}, headers=world["inv"]
        ).status_code
        == 422
    )
    done = client.patch(
        path, json={"completed_on": done_on, "reason": "Seen in clinic"}, headers=world["inv"]
    )
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "completed"
    assert done.json()["out_of_window"] is False
    again = client.patch(path, json={"status": "cancelled", "reason": "Oops"}, headers=world["inv"])
    assert again.status_code == 409

    late = next(v for v in visits if v["kind"] == "clinic" and v["day"] == 0)
    outside = client.patch(
        f"/portal/v1/visits/{late['id']}",
        json={"completed_on": done_on, "reason": "Came in late"},
        headers=world["inv"],
    )
    assert outside.json()["out_of_window"] is True
    cancelled = client.patch(
        f"/portal/v1/visits/{next(v for v in visits if v['day'] == 56)['id']}",
        json={"status": "cancelled", "reason": "Participant on holiday"},
        headers=world["inv"],
    )
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["cancel_reason"] == "Participant on holiday"
    event = session.exec(
        select(AuditEvent).where(
            AuditEvent.action == "visit.complete", AuditEvent.entity_id == week4["id"]
        )
    ).one()
    assert event.reason == "Seen in clinic"


def test_day0_change_regenerates_pending_visits_only(
    client: TestClient, world: dict[str, Any]
) -> None:
    visits = _visits(client, world)
    week4 = next(v for v in visits if v["kind"] == "clinic" and v["day"] == 28)
    done_on = (world["today"] - timedelta(days=1)).isoformat()
    client.patch(
        f"/portal/v1/visits/{week4['id']}",
        json={"completed_on": done_on, "reason": "Seen"},
        headers=world["inv"],
    )
    new_day0 = world["today"] - timedelta(days=20)
    moved = client.patch(
        f"/portal/v1/participants/{world['participant'].id}",
        json={
            "day0_date": new_day0.isoformat(),
            "reason": "Infusion date corrected from the pump log",
        },
        headers=world["inv"],
    )
    assert moved.status_code == 200, moved.text
    after = {v["id"]: v for v in _visits(client, world)}
    assert set(after) == {v["id"] for v in visits}  # stable ids
    assert after[week4["id"]]["target_date"] == week4["target_date"]  # completed: kept
    week8 = next(v for v in visits if v["kind"] == "clinic" and v["day"] == 56)
    assert after[week8["id"]]["target_date"] == (new_day0 + timedelta(days=56)).isoformat()


def test_study_view_filters_by_state_and_site(
    client: TestClient, session: Session, world: dict[str, Any]
) -> None:
    study = world["study"]
    base = f"/portal/v1/studies/{study.id}/visits"
    page = client.get(base, params={"status": "overdue"}, headers=world["monitor"]).json()
    assert set(page) == {"items", "next_cursor"}  # api-contract: lists answer {items, next_cursor}
    overdue = page["items"]
    assert {v["participant_id"] for v in overdue} == {str(world["participant"].id)}
    assert all(v["status"] == "overdue" for v in overdue)
    assert client.get(base, headers=world["other"]).json() == {"items": [], "next_cursor": None}
    window = client.get(
        base,
        params={
            "from": date.today().isoformat(),
            "to": (date.today() + timedelta(days=60)).isoformat(),
        },
        headers=world["inv"],
    ).json()["items"]
    assert window
    assert all(date.today().isoformat() <= v["target_date"] for v in window)
    assert (
        client.get(
            base, params={"from": "2026-02-01", "to": "2026-01-01"}, headers=world["inv"]
        ).status_code
        == 422
    )
