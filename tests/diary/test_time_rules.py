"""Time: the instant and offset as sent, the participant-local diary date, and clock rules."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, select

from app.diary.models import DiaryEntry
from tests.diary.conftest import World
from tests.diary.diary_helpers import (
    ENTRIES,
    NOW,
    count_entries,
    entry,
    error_locs,
    local,
    post,
    sync,
    sync_one,
)
from tests.problem_helpers import assert_problem

ZONES = frozenset(available_timezones())


def _created(client: TestClient, headers: dict[str, str], sent: dict[str, Any]) -> dict[str, Any]:
    response = post(client, headers, sent)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize(
    ("wall_clock", "zone", "offset", "diary_date"),
    [
        # Late evening in Auckland (NZDT, +13:00): still the 20th there, the 20th in UTC too.
        ("2026-11-20T23:30:00", "Pacific/Auckland", "+13:00", "2026-11-20"),
        # Just after midnight in Auckland: the 21st there, still the 20th in UTC and Berlin.
        ("2026-11-21T00:30:00", "Pacific/Auckland", "+13:00", "2026-11-21"),
        # Just after midnight in Los Angeles (PST, -08:00).
        ("2026-11-21T00:30:00", "America/Los_Angeles", "-08:00", "2026-11-21"),
        # Late evening in Los Angeles: the 20th there, already the 21st in UTC and Berlin.
        ("2026-11-20T23:30:00", "America/Los_Angeles", "-08:00", "2026-11-20"),
        # The extreme offsets.
        ("2026-11-21T00:30:00", "Pacific/Kiritimati", "+14:00", "2026-11-21"),
        ("2026-11-21T23:30:00", "Pacific/Kiritimati", "+14:00", "2026-11-21"),
        ("2026-11-20T23:30:00", "Pacific/Pago_Pago", "-11:00", "2026-11-20"),
        ("2026-11-21T00:30:00", "Pacific/Pago_Pago", "-11:00", "2026-11-21"),
        # A half-hour and a 45-minute offset.
        ("2026-11-21T23:50:00", "Asia/Kolkata", "+05:30", "2026-11-21"),
        ("2026-11-21T00:10:00", "Asia/Kathmandu", "+05:45", "2026-11-21"),
    ],
)
def test_an_entry_lands_on_its_local_diary_date_with_the_offset_sent(
    client: TestClient,
    world: World,
    wall_clock: str,
    zone: str,
    offset: str,
    diary_date: str,
) -> None:
    alice = world.alice
    recorded_at = local(wall_clock, zone)
    assert recorded_at == f"{wall_clock}{offset}"
    body = _created(client, alice.headers, entry("note", recorded_at=recorded_at, time_zone=zone))
    assert body["recorded_at"] == recorded_at
    assert body["utc_offset"] == offset
    assert body["time_zone"] == zone
    assert body["diary_date"] == diary_date
    assert "offset_mismatch" not in body["flags"]

    # The `from`/`to` filters use that local date.
    listed = client.get(
        ENTRIES, params={"from": diary_date, "to": diary_date}, headers=alice.headers
    ).json()["items"]
    assert [e["id"] for e in listed] == [body["id"]]
    other_day = (date.fromisoformat(diary_date) + timedelta(days=1)).isoformat()
    assert (
        client.get(
            ENTRIES, params={"from": other_day, "to": other_day}, headers=alice.headers
        ).json()["items"]
        == []
    )


def test_the_repeated_hour_at_the_autumn_dst_change_keeps_two_instants(
    client: TestClient, session: Session, world: World
) -> None:
    """02:30 happens twice in Berlin on 2026-10-25: once at +02:00 (CEST), once at +01:00 (CET)."""
    alice = world.alice
    summer = _created(
        client,
        alice.headers,
        entry("note", {"text": "first 02:30"}, recorded_at="2026-10-25T02:30:00+02:00"),
    )
    winter = _created(
        client,
        alice.headers,
        entry("note", {"text": "second 02:30"}, recorded_at="2026-10-25T02:30:00+01:00"),
    )
    assert summer["recorded_at"] == "2026-10-25T02:30:00+02:00"
    assert summer["utc_offset"] == "+02:00"
    assert winter["recorded_at"] == "2026-10-25T02:30:00+01:00"
    assert winter["utc_offset"] == "+01:00"
    instants = {datetime.fromisoformat(b["recorded_at"]) for b in (summer, winter)}
    assert instants == {
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
    }
    for body in (summer, winter):
        assert body["diary_date"] == "2026-10-25"
        assert body["flags"] == ["late"]  # both offsets are right for Berlin at those instants

    # Read back from the database (timestamptz keeps no offset): still exactly as sent.
    for body in (summer, winter):
        read = client.get(f"{ENTRIES}/{body['id']}", headers=alice.headers).json()
        assert read["recorded_at"] == body["recorded_at"]
        assert read["utc_offset"] == body["utc_offset"]
    session.expire_all()
    stored = session.exec(
        select(DiaryEntry).where(DiaryEntry.participant_id == alice.participant.id)
    ).all()
    assert sorted(e.recorded_offset_minutes for e in stored) == [60, 120]


def test_a_spring_forward_wall_clock_that_does_not_exist_is_kept_and_flagged(
    client: TestClient, world: World
) -> None:
    """02:30 never happened in Berlin on 2026-03-29; a phone sending +01:00 is off by an hour."""
    body = _created(
        client,
        world.alice.headers,
        entry("note", recorded_at="2026-03-29T02:30:00+01:00"),
    )
    assert body["recorded_at"] == "2026-03-29T02:30:00+01:00"
    assert body["diary_date"] == "2026-03-29"
    assert "offset_mismatch" in body["flags"]


def test_a_device_clock_three_hours_ahead_is_accepted_and_flagged(
    client: TestClient, world: World
) -> None:
    ahead = (NOW + timedelta(hours=3)).astimezone(ZoneInfo("Europe/Berlin")).isoformat()
    body = _created(client, world.alice.headers, entry("note", recorded_at=ahead))
    assert body["flags"] == ["clock_ahead"]
    assert body["recorded_at"] == ahead
    received = datetime.fromisoformat(body["received_at"])
    assert received.utcoffset() == timedelta(0)
    assert received < datetime.fromisoformat(ahead)


def test_a_few_seconds_ahead_is_not_flagged(client: TestClient, world: World) -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=30)).astimezone(ZoneInfo("Europe/Berlin"))
    soon_text = soon.isoformat()
    body = _created(client, world.alice.headers, entry("note", recorded_at=soon_text))
    assert body["flags"] == []


def test_an_offset_that_does_not_match_the_zone_is_flagged(
    client: TestClient, world: World
) -> None:
    body = _created(
        client,
        world.alice.headers,
        entry("note", recorded_at="2026-11-22T08:30:00+05:00", time_zone="Europe/Berlin"),
    )
    assert body["flags"] == ["offset_mismatch"]
    assert body["utc_offset"] == "+05:00"
    # The diary date is the day in the entry's zone: 03:30 UTC is 04:30 in Berlin.
    assert body["diary_date"] == "2026-11-22"


def test_more_than_24_hours_ahead_is_invalid(
    client: TestClient, session: Session, world: World
) -> None:
    alice = world.alice
    berlin = ZoneInfo("Europe/Berlin")
    results = sync(
        client,
        alice.headers,
        [
            entry("note", recorded_at=(NOW + timedelta(hours=25)).astimezone(berlin).isoformat()),
            entry("note", recorded_at=(NOW + timedelta(days=400)).astimezone(berlin).isoformat()),
            entry("note", recorded_at=(NOW + timedelta(hours=23)).astimezone(berlin).isoformat()),
        ],
    )
    assert [r["status"] for r in results] == ["invalid", "invalid", "created"]
    for result in results[:2]:
        assert error_locs(result["errors"]) == ["recorded_at"]
        assert "24 h" in result["errors"][0]["msg"]
    assert results[2]["entry"]["flags"] == ["clock_ahead"]

    single = post(
        client,
        alice.headers,
        entry("note", recorded_at=(NOW + timedelta(hours=30)).isoformat()),
    )
    body = assert_problem(single, 422)
    assert error_locs(body["errors"]) == ["body.recorded_at"]
    assert count_entries(session, alice.participant.id) == 1


def test_before_enrolment_is_invalid_by_the_local_date(
    client: TestClient, session: Session, world: World
) -> None:
    """Enrolled on 2026-01-05 (Berlin). 00:30 on the 5th in Berlin is still the 4th in UTC."""
    results = sync(
        client,
        world.alice.headers,
        [
            entry("note", recorded_at="2026-01-04T23:30:00+01:00"),
            entry("note", recorded_at="2025-06-01T12:00:00+02:00"),
            entry("note", recorded_at="2026-01-05T00:30:00+01:00"),
        ],
    )
    assert [r["status"] for r in results] == ["invalid", "invalid", "created"]
    for result in results[:2]:
        assert error_locs(result["errors"]) == ["recorded_at"]
        assert "enrolment" in result["errors"][0]["msg"]
        assert "2026-01-05" in result["errors"][0]["msg"]
    assert results[2]["entry"]["diary_date"] == "2026-01-05"
    assert count_entries(session, world.alice.participant.id) == 1


@pytest.mark.parametrize(
    ("age", "flags"),
    [
        (timedelta(days=4), ["late"]),
        (timedelta(hours=73), ["late"]),
        (timedelta(hours=71), []),
        (timedelta(minutes=5), []),
    ],
)
def test_an_entry_arriving_long_after_it_was_recorded_is_accepted_and_flagged_late(
    client: TestClient, world: World, age: timedelta, flags: list[str]
) -> None:
    recorded = (datetime.now(UTC) - age).astimezone(ZoneInfo("Europe/Berlin"))
    result = sync_one(client, world.alice.headers, entry("note", recorded_at=recorded.isoformat()))
    assert result["status"] == "created", result
    assert result["entry"]["flags"] == flags
    assert result["entry"]["diary_date"] == recorded.date().isoformat()
    received = datetime.fromisoformat(result["entry"]["received_at"])
    assert abs(received - datetime.now(UTC)) < timedelta(minutes=1)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    moment=st.datetimes(
        min_value=datetime(2026, 1, 6),
        max_value=datetime(2026, 11, 20, 23, 59, 59),
        timezones=st.timezones(),
        allow_imaginary=False,
    )
)
def test_any_aware_instant_round_trips_exactly_and_dates_in_its_own_zone(
    client: TestClient, world: World, moment: datetime
) -> None:
    zone = getattr(moment.tzinfo, "key", None)
    assume(zone in ZONES)
    assert zone is not None
    offset = moment.utcoffset()
    assert offset is not None
    assume(offset.seconds % 60 == 0)

    result = sync_one(
        client, world.alice.headers, entry("note", recorded_at=moment.isoformat(), time_zone=zone)
    )
    assert result["status"] == "created", result
    read = client.get(f"{ENTRIES}/{result['id']}", headers=world.alice.headers).json()
    for body in (result["entry"], read):
        returned = datetime.fromisoformat(body["recorded_at"])
        # The same instant to the microsecond, written with the same wall clock and offset
        # (compared through UTC: a datetime in a repeated hour never equals another zone's).
        assert returned.astimezone(UTC) == moment.astimezone(UTC)
        assert returned.replace(tzinfo=None) == moment.replace(tzinfo=None, fold=0)
        assert returned.utcoffset() == offset
        assert body["diary_date"] == moment.date().isoformat()
        assert body["diary_date"] == moment.astimezone(ZoneInfo(zone)).date().isoformat()
        minutes = int(offset.total_seconds() // 60)
        sign = "-" if minutes < 0 else "+"
        assert body["utc_offset"] == f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
        assert "offset_mismatch" not in body["flags"]
