"""Dates and times are ISO 8601 text only (found by contract fuzzing): pydantic would read a
number as a Unix timestamp, so ``"started_at": 0`` would store a dose on 1970-01-01 and
``?to=0`` would filter to 1970. A number is refused with a 422 naming the field."""

from __future__ import annotations

import uuid
from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.core.schemas import iso_only
from tests.factories import bearer, create_participant, create_study, participant_token, staff_token


@pytest.mark.parametrize("value", [0, 1_700_000_000, 1.5, "0", " 1700000000 ", "1e9", "-3"])
def test_numbers_are_not_dates(value: object) -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        iso_only(value)


@pytest.mark.parametrize("value", ["2026-11-21", "2026-11-21T08:30:00+01:00", True, None])
def test_iso_text_passes(value: object) -> None:
    assert iso_only(value) == value


def test_a_numeric_instant_or_date_is_422_naming_the_field(
    client: TestClient, session: Session
) -> None:
    study, sites = create_study(session)
    participant, _ = create_participant(
        session, study=study, site=sites["X"], enrolled_on=date(2026, 1, 5)
    )
    inv = bearer(staff_token(session, role="investigator", study=study, site=sites["X"]))
    body = {"product": "blinatumomab", "dose": 9, "unit": "mcg/day", "started_at": 0}
    answer = client.post(
        f"/portal/v1/participants/{participant.id}/administrations", json=body, headers=inv
    )
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["loc"] == ["body", "started_at"]

    app = bearer(participant_token(participant))
    entry = {
        "id": str(uuid.uuid4()),
        "kind": "vitals",
        "recorded_at": 1_700_000_000,
        "time_zone": "Europe/Berlin",
        "data": {"temperature_c": 37.0},
    }
    answer = client.post("/app/v1/diary/entries", json=entry, headers=app)
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["loc"] == ["body", "recorded_at"]

    listed = client.get("/app/v1/diary/entries?to=0", headers=app)
    assert listed.status_code == 422
    assert listed.json()["errors"][0]["loc"] == ["query", "to"]
