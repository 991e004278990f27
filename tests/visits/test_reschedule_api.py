"""Rescheduling one visit with a reason: `PATCH /portal/v1/visits/{id}` with `target_date`
(issue 5 items 2 and 4: "Rescheduling records the reason and whether it leaves the window";
"a rescheduled visit updates the event instead of duplicating it").

Participant in Berlin, day 0 2025-06-01 (NCT06836973: visits every 4 weeks, window +/- 3 days,
screening days -28 .. -1); the clock stands at 2025-06-20 noon local time. Week 4 targets
2025-06-29 with the window 06-26 .. 07-02.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from icalendar import Calendar
from sqlmodel import Session, col, select

from app.audit.models import AuditEvent
from app.visits.models import Visit
from tests.factories import bearer, create_participant, create_study, participant_token, staff_token
from tests.visits.clock import freeze

NOW = datetime(2025, 6, 20, 10, tzinfo=UTC)
DAY0 = date(2025, 6, 1)


@pytest.fixture
def world(session: Session, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    freeze(monkeypatch, NOW)
    study, sites = create_study(session)
    participant, _ = create_participant(
        session,
        study=study,
        site=sites["X"],
        time_zone="Europe/Berlin",
        enrolled_on=date(2025, 5, 1),
        day0_date=DAY0,
    )
    return {
        "study": study,
        "participant": participant,
        "app": bearer(participant_token(participant)),
        "inv": bearer(staff_token(session, role="investigator", study=study, site=sites["X"])),
        "monitor": bearer(staff_token(session, role="monitor", study=study)),
        "other": bearer(staff_token(session, role="investigator", study=study, site=sites["Y"])),
    }


def visits(client: TestClient, world: dict[str, Any]) -> dict[tuple[str, int], dict[str, Any]]:
    response = client.get(
        f"/portal/v1/participants/{world['participant'].id}/visits", headers=world["inv"]
    )
    assert response.status_code == 200, response.text
    return {(v["kind"], v["day"]): v for v in response.json()}


def patch(
    client: TestClient, world: dict[str, Any], visit: dict[str, Any], who: str = "inv", **body: Any
) -> Any:
    return client.patch(f"/portal/v1/visits/{visit['id']}", json=body, headers=world[who])


def problem(response: Any) -> tuple[int, list[Any], str]:
    (error,) = response.json()["errors"]
    return response.status_code, error["loc"], error["type"]


def reschedule_events(session: Session, visit_id: str) -> list[AuditEvent]:
    return list(
        session.exec(
            select(AuditEvent)
            .where(AuditEvent.action == "visit.reschedule", AuditEvent.entity_id == visit_id)
            .order_by(col(AuditEvent.occurred_at), col(AuditEvent.id))
        ).all()
    )


def test_reschedule_inside_the_window(
    client: TestClient, session: Session, world: dict[str, Any]
) -> None:
    week4 = visits(client, world)[("clinic", 28)]
    assert (week4["rescheduled"], week4["protocol_target_date"]) == (False, "2025-06-29")
    moved = patch(client, world, week4, target_date="2025-07-01", reason="Clinic closed on 29th")
    assert moved.status_code == 200, moved.text
    body = moved.json()
    assert body["id"] == week4["id"]
    assert body["target_date"] == "2025-07-01"
    assert (body["window_start"], body["window_end"]) == ("2025-06-26", "2025-07-02")
    assert body["protocol_target_date"] == "2025-06-29"
    assert body["rescheduled"] is True
    assert body["out_of_window"] is False
    assert body["status"] == "upcoming"
    (event,) = reschedule_events(session, week4["id"])
    assert event.reason == "Clinic closed on 29th"
    assert event.changes["target_date"] == {"before": "2025-06-29", "after": "2025-07-01"}
    assert event.changes["out_of_window"] == {"before": None, "after": False}
    assert event.changes["sequence"] == {"before": 0, "after": 1}
    assert event.actor_type == "staff"
    # Both lists show it; the participant sees the new date.
    mine = {v["id"]: v for v in client.get("/app/v1/visits", headers=world["app"]).json()}
    assert mine[week4["id"]]["target_date"] == "2025-07-01"
    study = client.get(
        f"/portal/v1/studies/{world['study'].id}/visits",
        params={"from": "2025-07-01", "to": "2025-07-01"},
        headers=world["monitor"],
    ).json()["items"]
    assert [v["id"] for v in study] == [week4["id"]]


def test_reschedule_outside_the_window_stays_pending_until_the_new_date(
    client: TestClient, session: Session, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Moved to 07-05, past the window's end (07-02): flagged out of window, and it is not
    "missed" on 07-03 .. 07-05 - the agreed date is still ahead - but is the day after."""
    week4 = visits(client, world)[("clinic", 28)]
    moved = patch(client, world, week4, target_date="2025-07-05", reason="Participant abroad")
    assert moved.status_code == 200, moved.text
    assert moved.json()["out_of_window"] is True
    (event,) = reschedule_events(session, week4["id"])
    assert event.changes["out_of_window"] == {"before": None, "after": True}
    for instant, state in [
        ("2025-07-02T12:00:00", "open"),
        ("2025-07-05T21:59:59", "open"),  # 23:59:59 CEST on the new date
        ("2025-07-05T22:00:00", "missed"),
    ]:
        freeze(monkeypatch, datetime.fromisoformat(instant).replace(tzinfo=UTC))
        assert visits(client, world)[("clinic", 28)]["status"] == state, instant
        listed = client.get(
            f"/portal/v1/studies/{world['study'].id}/visits",
            params={"status": state},
            headers=world["monitor"],
        ).json()["items"]
        assert week4["id"] in {v["id"] for v in listed}, instant
    freeze(monkeypatch, datetime(2025, 7, 5, 12, tzinfo=UTC))
    done = patch(client, world, week4, completed_on="2025-07-05", reason="Seen on the new date")
    assert done.status_code == 200, done.text
    assert (done.json()["status"], done.json()["out_of_window"]) == ("completed", True)


def test_reschedule_earlier_into_the_window_and_again(
    client: TestClient, session: Session, world: dict[str, Any]
) -> None:
    """Each move bumps SEQUENCE; moving back to the protocol date clears `rescheduled`; moving to
    the date it already has changes nothing (no audit event, same SEQUENCE)."""
    week4 = visits(client, world)[("clinic", 28)]
    assert (
        patch(client, world, week4, target_date="2025-06-26", reason="Earlier").status_code == 200
    )
    same = patch(client, world, week4, target_date="2025-06-26", reason="Retry of the same")
    assert same.status_code == 200
    back = patch(client, world, week4, target_date="2025-06-29", reason="Back to plan")
    assert back.json()["rescheduled"] is False
    assert [e.reason for e in reschedule_events(session, week4["id"])] == [
        "Earlier",
        "Back to plan",
    ]
    stored = session.get(Visit, uuid.UUID(week4["id"]))
    assert stored is not None
    session.refresh(stored)
    assert stored.sequence == 2


def test_calendar_event_moves_instead_of_duplicating(
    client: TestClient, world: dict[str, Any]
) -> None:
    url = client.get("/app/v1/calendar", headers=world["app"]).json()["url"]

    def events() -> dict[str, Any]:
        feed = Calendar.from_ical(client.get(url).content)
        return {str(e["uid"]): e for e in feed.walk("VEVENT")}

    before = events()
    week4 = visits(client, world)[("clinic", 28)]
    patch(client, world, week4, target_date="2025-07-01", reason="Clinic closed on 29th")
    after = events()
    assert set(after) == set(before)
    uid = f"{week4['id']}@mgdiary"
    assert after[uid].decoded("dtstart") == date(2025, 7, 1)
    assert int(after[uid]["sequence"]) == int(before[uid]["sequence"]) + 1


@pytest.mark.parametrize(
    ("target", "rule"),
    [
        ("2025-06-19", "not_past"),  # yesterday in Berlin
        ("2025-05-03", "before_schedule_start"),  # screening opens 2025-05-04 (day -28)
        ("2026-07-03", "too_far"),  # window end 2025-07-02 + 366 days
    ],
)
def test_refused_dates_name_the_field_and_rule(
    client: TestClient, session: Session, world: dict[str, Any], target: str, rule: str
) -> None:
    week4 = visits(client, world)[("clinic", 28)]
    response = patch(client, world, week4, target_date=target, reason="Move it")
    assert problem(response) == (422, ["body", "target_date"], rule)
    assert reschedule_events(session, week4["id"]) == []


def test_the_latest_and_earliest_dates_allowed(client: TestClient, world: dict[str, Any]) -> None:
    by_kind = visits(client, world)
    latest = patch(client, world, by_kind[("clinic", 28)], target_date="2026-07-02", reason="Far")
    assert latest.status_code == 200, latest.text
    today = patch(client, world, by_kind[("clinic", 56)], target_date="2025-06-20", reason="Now")
    assert today.status_code == 200
    assert today.json()["status"] == "open"  # moved to today, before its window: open now
    assert today.json()["out_of_window"] is True


def test_completed_cancelled_and_missed_visits_cannot_be_rescheduled(
    client: TestClient, world: dict[str, Any]
) -> None:
    by_kind = visits(client, world)
    assert by_kind[("clinic", 0)]["status"] == "missed"
    missed = patch(client, world, by_kind[("clinic", 0)], target_date="2025-06-25", reason="Late")
    assert missed.status_code == 409
    week4, week8 = by_kind[("clinic", 28)], by_kind[("clinic", 56)]
    cancel = patch(client, world, week4, status="cancelled", reason="Withdrew consent")
    assert cancel.status_code == 200
    cancelled = patch(client, world, week4, target_date="2025-06-30", reason="Undo")
    assert cancelled.status_code == 409
    assert cancelled.json()["code"] == "conflict"
    done = patch(client, world, by_kind[("dosing", 12)], completed_on="2025-06-13", reason="Given")
    assert done.status_code == 200, done.text
    moved_done = patch(
        client, world, by_kind[("dosing", 12)], target_date="2025-06-30", reason="Move it"
    )
    assert moved_done.status_code == 409
    assert (
        patch(client, world, week8, target_date="2025-07-28", reason="Fine then").status_code == 200
    )


def test_body_shapes(client: TestClient, world: dict[str, Any]) -> None:
    """Old bodies keep working; a body mixing a reschedule with another change is a 422."""
    by_kind = visits(client, world)
    week4 = by_kind[("clinic", 28)]
    assert problem(patch(client, world, week4, status="rescheduled", reason="Move")) == (
        422,
        ["body", "target_date"],
        "required",
    )
    assert problem(
        patch(
            client,
            world,
            week4,
            target_date="2025-07-01",
            completed_on="2025-06-19",
            reason="Mixed",
        )
    ) == (422, ["body", "completed_on"], "not_with_target_date")
    assert problem(
        patch(client, world, week4, status="cancelled", target_date="2025-07-01", reason="Mixed")
    ) == (422, ["body", "target_date"], "reschedule_only")
    assert patch(client, world, week4, target_date="2025-07-01").status_code == 422  # no reason
    explicit = patch(
        client, world, week4, status="rescheduled", target_date="2025-07-01", reason="Move"
    )
    assert explicit.status_code == 200, explicit.text
    completed = patch(
        client,
        world,
        by_kind[("dosing", 12)],
        status="completed",
        completed_on="2025-06-13",
        reason="Given on the day",
    )
    assert completed.json()["status"] == "completed"
    assert (
        patch(client, world, by_kind[("clinic", 56)], status="cancelled", reason="Stop").json()[
            "status"
        ]
        == "cancelled"
    )


def test_only_investigators_of_the_site(client: TestClient, world: dict[str, Any]) -> None:
    week4 = visits(client, world)[("clinic", 28)]
    body = {"target_date": "2025-07-01", "reason": "Move"}
    assert patch(client, world, week4, who="monitor", **body).status_code == 403
    assert patch(client, world, week4, who="other", **body).status_code == 404


def test_a_day0_change_drops_the_reschedule_and_audits_it(
    client: TestClient, session: Session, world: dict[str, Any]
) -> None:
    """sync_schedule regenerates pending visits from the protocol: the rescheduled visit goes to
    the new day 0's week-4 date, and the audit trail shows the date it had and why it moved."""
    week4 = visits(client, world)[("clinic", 28)]
    patch(client, world, week4, target_date="2025-07-01", reason="Clinic closed on 29th")
    moved = client.patch(
        f"/portal/v1/participants/{world['participant'].id}",
        json={"day0_date": "2025-06-08", "reason": "Infusion started a week later"},
        headers=world["inv"],
    )
    assert moved.status_code == 200, moved.text
    after = visits(client, world)[("clinic", 28)]
    assert after["id"] == week4["id"]
    assert (after["target_date"], after["window_start"], after["window_end"]) == (
        "2025-07-06",
        "2025-07-03",
        "2025-07-09",
    )
    assert after["rescheduled"] is False
    manual, regenerated = reschedule_events(session, week4["id"])
    assert manual.reason == "Clinic closed on 29th"
    assert regenerated.reason == "Infusion started a week later"
    assert regenerated.changes["target_date"] == {"before": "2025-07-01", "after": "2025-07-06"}
