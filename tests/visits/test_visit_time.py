"""Visit dates are the participant's local calendar days (issue 5 item 3, "Time").

Windows count calendar days, so a visit's state changes at the participant's local midnight -
whatever the UTC offset is that day (23- and 25-hour days at the DST changes) - and one UTC
instant is a different local day at UTC+14 (Pacific/Kiritimati) than at UTC-11
(Pacific/Pago_Pago). The participant's own list (`GET /app/v1/visits`) and the study list
(`GET /portal/v1/studies/{id}/visits`, whose state filter runs partly in SQL) must agree.
DST dates from the tz database: Europe/Berlin 2025-03-30 and 2025-10-26, America/New_York
2025-03-09 and 2025-11-02.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.participants.models import Participant
from app.studies.models import Study
from app.visits.queries import MAX_UTC_OFFSET, MIN_UTC_OFFSET, local_today_bounds
from tests.factories import bearer, create_participant, create_study, participant_token, staff_token
from tests.visits.clock import freeze

STATES = ("upcoming", "open", "overdue", "missed", "completed", "cancelled")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def enrol(session: Session, study: Study, site: Any, zone: str, day0: date) -> Participant:
    participant, _ = create_participant(
        session,
        study=study,
        site=site,
        time_zone=zone,
        enrolled_on=day0 - timedelta(days=30),
        day0_date=day0,
    )
    return participant


def own(client: TestClient, participant: Participant) -> dict[str, dict[str, Any]]:
    response = client.get("/app/v1/visits", headers=bearer(participant_token(participant)))
    assert response.status_code == 200, response.text
    return {v["id"]: v for v in response.json()}


def study_list(
    client: TestClient, study: Study, headers: dict[str, str], **params: Any
) -> list[dict[str, Any]]:
    """Every page of the study list (small pages, so paging runs too)."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, "limit": 7, **({"cursor": cursor} if cursor else {})}
        response = client.get(
            f"/portal/v1/studies/{study.id}/visits", params=query, headers=headers
        )
        assert response.status_code == 200, response.text
        items.extend(response.json()["items"])
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return items


def assert_lists_agree(
    client: TestClient,
    study: Study,
    headers: dict[str, str],
    participants: list[Participant],
    now: datetime,
) -> dict[str, dict[str, Any]]:
    """Each state filter of the study list returns exactly the visits the participants' own
    lists show in that state, and `due_within_days` the upcoming/open/overdue ones due by then."""
    today = {str(p.id): now.astimezone(ZoneInfo(p.time_zone)).date() for p in participants}
    mine: dict[str, dict[str, Any]] = {}
    for p in participants:
        mine.update(own(client, p))
    everything = study_list(client, study, headers)
    assert {v["id"]: v["status"] for v in everything} == {i: v["status"] for i, v in mine.items()}
    for state in STATES:
        listed = study_list(client, study, headers, status=state)
        assert [v["status"] for v in listed] == [state] * len(listed)
        assert {v["id"] for v in listed} == {i for i, v in mine.items() if v["status"] == state}
    for days in (1, 3):
        due = {v["id"] for v in study_list(client, study, headers, due_within_days=days)}
        expected = {
            i
            for i, v in mine.items()
            if v["status"] in {"upcoming", "open", "overdue"}
            and date.fromisoformat(v["target_date"]) <= today[v["participant_id"]] + timedelta(days)
        }
        assert due == expected, days
    return mine


@pytest.fixture
def study(session: Session) -> tuple[Study, dict[str, Any], dict[str, str]]:
    study, sites = create_study(session)
    monitor = bearer(staff_token(session, role="monitor", study=study))
    return study, sites, monitor


def at(monkeypatch: pytest.MonkeyPatch, instant: datetime) -> datetime:
    freeze(monkeypatch, instant)
    return instant


def by_key(visits: dict[str, dict[str, Any]], kind: str, day: int) -> dict[str, Any]:
    return next(v for v in visits.values() if v["kind"] == kind and v["day"] == day)


# --- DST: a day of 23 or 25 hours, states change at local midnight ----------------------------

DST_CASES = [
    # zone, day 0 (a DST change day), local midnight starting day 0, the next local midnight
    ("Europe/Berlin", date(2025, 3, 30), "2025-03-29T23:00:00", "2025-03-30T22:00:00"),
    ("Europe/Berlin", date(2025, 10, 26), "2025-10-25T22:00:00", "2025-10-26T23:00:00"),
    ("America/New_York", date(2025, 3, 9), "2025-03-09T05:00:00", "2025-03-10T04:00:00"),
    ("America/New_York", date(2025, 11, 2), "2025-11-02T04:00:00", "2025-11-03T05:00:00"),
]


@pytest.mark.parametrize(("zone", "day0", "starts", "ends"), DST_CASES)
def test_a_dosing_day_lasts_from_local_midnight_to_local_midnight_across_dst(
    client: TestClient,
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
    study: tuple[Study, dict[str, Any], dict[str, str]],
    zone: str,
    day0: date,
    starts: str,
    ends: str,
) -> None:
    """The day-0 infusion (a one-day window) is open for the whole local day: 23 hours on the
    spring change, 25 on the autumn one - never 24 hours from a fixed UTC offset."""
    st, sites, monitor = study
    participant = enrol(session, st, sites["X"], zone, day0)
    start, end = utc(starts), utc(ends)
    assert (end - start) in {timedelta(hours=23), timedelta(hours=25)}
    second = timedelta(seconds=1)
    for instant, state in [
        (start - second, "upcoming"),
        (start, "open"),
        (end - second, "open"),
        (end, "missed"),
    ]:
        now = at(monkeypatch, instant)
        mine = assert_lists_agree(client, st, monitor, [participant], now)
        assert by_key(mine, "dosing", 0)["status"] == state, instant


def test_windows_count_calendar_days_across_the_autumn_change(
    client: TestClient,
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
    study: tuple[Study, dict[str, Any], dict[str, str]],
) -> None:
    """Day 0 2025-10-06 in Berlin (CEST); week 4 lies after the change to CET. Day 28 is the
    calendar date 2025-11-03 (28 x 24 h from local midnight would end on 2025-11-02), the window
    is 2025-10-31 .. 2025-11-06, and the state moves at CET midnights (23:00 UTC)."""
    st, sites, monitor = study
    participant = enrol(session, st, sites["X"], "Europe/Berlin", date(2025, 10, 6))
    at(monkeypatch, utc("2025-10-30T22:59:59"))
    week4 = by_key(own(client, participant), "clinic", 28)
    assert (week4["window_start"], week4["target_date"], week4["window_end"]) == (
        "2025-10-31",
        "2025-11-03",
        "2025-11-06",
    )
    for instant, state in [
        ("2025-10-30T22:59:59", "upcoming"),
        ("2025-10-30T23:00:00", "open"),  # 2025-10-31 00:00 CET
        ("2025-11-03T22:59:59", "open"),  # the target day's last second
        ("2025-11-03T23:00:00", "overdue"),
        ("2025-11-06T22:59:59", "overdue"),  # the window's last day, inclusive
        ("2025-11-06T23:00:00", "missed"),
    ]:
        now = at(monkeypatch, utc(instant))
        mine = assert_lists_agree(client, st, monitor, [participant], now)
        assert mine[week4["id"]]["status"] == state, instant


def test_new_york_windows_count_calendar_days_across_the_spring_change(
    client: TestClient,
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
    study: tuple[Study, dict[str, Any], dict[str, str]],
) -> None:
    """Day 0 2025-02-14 in New York (EST); week 4 (2025-03-14, window 03-11 .. 03-17) lies after
    the change to EDT on 2025-03-09, so its days start at 04:00 UTC, not 05:00."""
    st, sites, monitor = study
    participant = enrol(session, st, sites["X"], "America/New_York", date(2025, 2, 14))
    at(monkeypatch, utc("2025-03-11T03:59:59"))
    week4 = by_key(own(client, participant), "clinic", 28)
    assert (week4["window_start"], week4["window_end"]) == ("2025-03-11", "2025-03-17")
    assert week4["status"] == "upcoming"
    for instant, state in [("2025-03-11T04:00:00", "open"), ("2025-03-18T04:00:00", "missed")]:
        now = at(monkeypatch, utc(instant))
        mine = assert_lists_agree(client, st, monitor, [participant], now)
        assert mine[week4["id"]]["status"] == state, instant


# --- UTC+14 and UTC-11: one instant, different local days --------------------------------------


def test_the_same_instant_is_a_different_day_at_utc_plus_14_and_utc_minus_11(
    client: TestClient,
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
    study: tuple[Study, dict[str, Any], dict[str, str]],
) -> None:
    """Both participants have day 0 on 2025-06-16; the infusion's window is that day only.

    At 2025-06-15T10:00Z it is 06-16 00:00 on Kiritimati (open) and 06-14 23:00 in Pago Pago
    (upcoming). At 2025-06-16T10:00Z Kiritimati has missed it while Pago Pago is still an hour
    before its day 0, which begins at 11:00Z.
    """
    st, sites, monitor = study
    day0 = date(2025, 6, 16)
    kiritimati = enrol(session, st, sites["X"], "Pacific/Kiritimati", day0)
    pago = enrol(session, st, sites["Y"], "Pacific/Pago_Pago", day0)
    both = [kiritimati, pago]
    expected = [
        ("2025-06-15T09:59:59", "upcoming", "upcoming"),
        ("2025-06-15T10:00:00", "open", "upcoming"),
        ("2025-06-16T09:59:59", "open", "upcoming"),
        ("2025-06-16T10:00:00", "missed", "upcoming"),
        ("2025-06-16T10:59:59", "missed", "upcoming"),
        ("2025-06-16T11:00:00", "missed", "open"),
        ("2025-06-17T10:59:59", "missed", "open"),
        ("2025-06-17T11:00:00", "missed", "missed"),
    ]
    for instant, k_state, p_state in expected:
        now = at(monkeypatch, utc(instant))
        mine = assert_lists_agree(client, st, monitor, both, now)
        states = {
            v["participant_id"]: v["status"]
            for v in mine.values()
            if v["kind"] == "dosing" and v["day"] == 0
        }
        assert states == {str(kiritimati.id): k_state, str(pago.id): p_state}, instant


def test_due_within_days_uses_each_participants_own_today(
    client: TestClient,
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
    study: tuple[Study, dict[str, Any], dict[str, str]],
) -> None:
    """At 2025-06-15T10:00Z: Kiritimati is on 06-16 (screening closed 06-15: missed; infusion
    and week-0 visit due today), Pago Pago on 06-14 (screening due by 06-15, infusion not yet
    within one day)."""
    st, sites, monitor = study
    day0 = date(2025, 6, 16)
    kiritimati = enrol(session, st, sites["X"], "Pacific/Kiritimati", day0)
    pago = enrol(session, st, sites["Y"], "Pacific/Pago_Pago", day0)
    at(monkeypatch, utc("2025-06-15T10:00:00"))
    due = study_list(client, st, monitor, due_within_days=1)
    assert sorted((v["participant_id"] == str(pago.id), v["kind"], v["day"]) for v in due) == [
        (False, "clinic", 0),
        (False, "dosing", 0),
        (True, "screening", -1),
    ]
    assert by_key(own(client, kiritimati), "screening", -1)["status"] == "missed"
    assert by_key(own(client, pago), "screening", -1)["status"] == "open"


def test_filters_hold_at_the_edges_of_the_earliest_and_latest_local_day(
    client: TestClient,
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
    study: tuple[Study, dict[str, Any], dict[str, str]],
) -> None:
    """Participants at UTC-12 (Etc/GMT+12), UTC-11, UTC+14 and in Berlin, the lists compared at
    the instants where the earliest or latest local date on Earth changes - the bounds the SQL
    pre-filter uses - and around them."""
    st, sites, monitor = study
    day0 = date(2025, 6, 16)
    people = [
        enrol(session, st, sites["X"], zone, day0)
        for zone in ("Etc/GMT+12", "Pacific/Pago_Pago", "Pacific/Kiritimati", "Europe/Berlin")
    ]
    edges = [utc("2025-06-15T10:00:00"), utc("2025-06-16T12:00:00"), utc("2025-06-17T00:00:00")]
    for edge in edges:
        for delta in (timedelta(seconds=-1), timedelta(0), timedelta(hours=1)):
            now = at(monkeypatch, edge + delta)
            assert_lists_agree(client, st, monitor, people, now)


def test_local_today_bounds_cover_every_zone() -> None:
    """Every zone of the tz database, at instants across years, has a local date inside the
    bounds the study list pre-filters with (UTC-12 .. UTC+14)."""
    instants = [
        datetime(year, month, 15, hour, tzinfo=UTC)
        for year in (2025, 2026, 2030)
        for month in (1, 4, 7, 10)
        for hour in (0, 11, 23)
    ]
    for name in sorted(available_timezones()):
        zone = ZoneInfo(name)
        for instant in instants:
            offset = instant.astimezone(zone).utcoffset()
            assert offset is not None
            assert MIN_UTC_OFFSET <= offset <= MAX_UTC_OFFSET, (name, instant)
            lo, hi = local_today_bounds(instant)
            assert lo <= instant.astimezone(zone).date() <= hi
