"""The iCalendar feed of a participant's visits (issue 5 item 4)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from icalendar import Calendar
from sqlmodel import Session

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
        enrolled_on=today - timedelta(days=10),
        day0_date=today - timedelta(days=5),
    )
    return {
        "participant": participant,
        "today": today,
        "app": bearer(participant_token(participant)),
        "inv": bearer(staff_token(session, role="investigator", study=study, site=sites["X"])),
    }


def _feed(client: TestClient, url: str) -> Calendar:
    response = client.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/calendar")
    return Calendar.from_ical(response.content)


def test_feed_parses_with_stable_uids_and_sequence(
    client: TestClient, world: dict[str, Any]
) -> None:
    link = client.get("/app/v1/calendar", headers=world["app"])
    assert link.status_code == 200, link.text
    url = link.json()["url"]
    assert url.endswith(f"/calendar/v1/{link.json()['feed_token']}.ics")
    assert client.get("/app/v1/calendar", headers=world["app"]).json()["url"] == url

    first = _feed(client, url)
    events = first.walk("VEVENT")
    visits = client.get(
        f"/portal/v1/participants/{world['participant'].id}/visits", headers=world["inv"]
    ).json()
    assert len(events) == len(visits)
    assert {str(e["uid"]) for e in events} == {f"{v['id']}@mgdiary" for v in visits}
    assert {str(e["summary"]) for e in events} == {v["name"] for v in visits}
    for event in events:  # no clinical details beyond the visit name and dates
        assert set(event.keys()) <= {
            "UID",
            "SEQUENCE",
            "DTSTAMP",
            "DTSTART",
            "DTEND",
            "SUMMARY",
            "DESCRIPTION",
            "STATUS",
            "TRANSP",
        }

    week4 = next(v for v in visits if v["kind"] == "clinic" and v["day"] == 28)
    moved = client.patch(
        f"/portal/v1/participants/{world['participant'].id}",
        json={
            "day0_date": (world["today"] - timedelta(days=3)).isoformat(),
            "reason": "Infusion started later than planned",
        },
        headers=world["inv"],
    )
    assert moved.status_code == 200
    again = {str(e["uid"]): e for e in _feed(client, url).walk("VEVENT")}
    changed = again[f"{week4['id']}@mgdiary"]
    assert int(changed["sequence"]) == 1
    assert changed.decoded("dtstart").isoformat() != week4["target_date"]
    assert len(again) == len(events)  # updated, not duplicated


def test_rotation_revokes_the_old_url(client: TestClient, world: dict[str, Any]) -> None:
    old = client.get("/app/v1/calendar", headers=world["app"]).json()
    new = client.post("/app/v1/calendar/rotate", headers=world["app"])
    assert new.status_code == 200
    assert new.json()["feed_token"] != old["feed_token"]
    assert client.get(old["url"]).status_code == 404
    _feed(client, new.json()["url"])
    forged = new.json()["feed_token"][:-2] + (
        "AA" if not new.json()["feed_token"].endswith("AA") else "BB"
    )
    assert client.get(f"/calendar/v1/{forged}.ics").status_code == 404
    assert client.get("/calendar/v1/not-a-token.ics").status_code == 404


def test_withdrawal_closes_the_feed(client: TestClient, world: dict[str, Any]) -> None:
    url = client.get("/app/v1/calendar", headers=world["app"]).json()["url"]
    client.post(
        f"/portal/v1/participants/{world['participant'].id}/withdraw",
        json={"reason": "Withdrew consent"},
        headers=world["inv"],
    )
    assert client.get(url).status_code == 404
