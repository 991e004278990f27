"""The investigator portal's view of a diary: filtered lists, paging, scope, adherence."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from tests.diary.conftest import World, make_patient
from tests.diary.diary_helpers import NOW, PORTAL, entry, local, page_all, sync
from tests.factories import bearer, staff_token
from tests.problem_helpers import assert_problem

KINDS = ("mg_adl", "vitals", "note")


def _url(participant_id: Any, tail: str = "diary/entries") -> str:
    return f"{PORTAL}/participants/{participant_id}/{tail}"


def _investigator(session: Session, world: World, site: str = "X") -> dict[str, str]:
    return bearer(
        staff_token(session, role="investigator", study=world.study, site=world.sites[site])
    )


def _fill_week(client: TestClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    """One entry of each kind a day, 2026-11-15 ... 2026-11-21, 21 entries."""
    batch = [
        entry(kind, recorded_at=local(f"2026-11-{day}T10:{i:02d}:00"))
        for day in range(15, 22)
        for i, kind in enumerate(KINDS)
    ]
    results = sync(client, headers, batch)
    assert {r["status"] for r in results} == {"created"}
    return [r["entry"] for r in results]


def test_the_list_filters_by_kind_and_inclusive_local_dates(
    client: TestClient, session: Session, world: World
) -> None:
    alice = world.alice
    _fill_week(client, alice.headers)
    # 23:30 on the 19th in Los Angeles is already the 20th in UTC and in Berlin.
    (la,) = sync(
        client,
        alice.headers,
        [
            entry(
                "vitals",
                recorded_at=local("2026-11-19T23:30:00", "America/Los_Angeles"),
                time_zone="America/Los_Angeles",
            )
        ],
    )
    investigator = _investigator(session, world)

    response = client.get(
        _url(alice.id),
        params={"kind": "vitals", "from": "2026-11-17", "to": "2026-11-19"},
        headers=investigator,
    )
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [(e["diary_date"], e["kind"]) for e in items] == [
        ("2026-11-17", "vitals"),
        ("2026-11-18", "vitals"),
        ("2026-11-19", "vitals"),
        ("2026-11-19", "vitals"),
    ]
    assert la["id"] in {e["id"] for e in items}
    assert response.json()["next_cursor"] is None

    only_day = client.get(
        _url(alice.id), params={"from": "2026-11-21", "to": "2026-11-21"}, headers=investigator
    ).json()["items"]
    assert sorted(e["kind"] for e in only_day) == sorted(KINDS)

    from_only = client.get(_url(alice.id), params={"from": "2026-11-20"}, headers=investigator)
    assert {e["diary_date"] for e in from_only.json()["items"]} == {"2026-11-20", "2026-11-21"}

    # The app's own list answers the same.
    own = client.get(
        "/app/v1/diary/entries",
        params={"kind": "vitals", "from": "2026-11-17", "to": "2026-11-19"},
        headers=alice.headers,
    ).json()["items"]
    assert own == items


@pytest.mark.parametrize(
    "params",
    [
        {"from": "2026-11-20", "to": "2026-11-19"},
        {"kind": "diet"},
        {"from": "yesterday"},
        {"to": "2026-02-30"},
    ],
)
def test_bad_filters_are_422(
    client: TestClient, session: Session, world: World, params: dict[str, str]
) -> None:
    response = client.get(
        _url(world.alice.id), params=params, headers=_investigator(session, world)
    )
    assert_problem(response, 422)


def test_paging_returns_every_entry_once_while_new_ones_arrive(
    client: TestClient, session: Session, world: World
) -> None:
    alice = world.alice
    existing = _fill_week(client, alice.headers)
    investigator = _investigator(session, world)

    seen: list[str] = []
    cursor = None
    for round_number in range(50):
        params: dict[str, Any] = {"limit": 4}
        if cursor:
            params["cursor"] = cursor
        body = client.get(_url(alice.id), params=params, headers=investigator).json()
        seen += [e["id"] for e in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
        # New entries arrive while the investigator pages, on earlier and later days.
        day = 16 + round_number % 6
        sync(client, alice.headers, [entry("note", recorded_at=local(f"2026-11-{day}T20:00:00"))])
    counts = Counter(seen)
    assert all(n == 1 for n in counts.values()), counts
    assert {e["id"] for e in existing} <= set(seen)

    everything = page_all(client, _url(alice.id), investigator, limit=200)
    dates = [e["diary_date"] for e in everything]
    assert dates == sorted(dates)


def test_scope_other_site_404_participant_token_401_monitor_reads(
    client: TestClient, session: Session, world: World
) -> None:
    alice = world.alice
    _fill_week(client, alice.headers)
    url = _url(alice.id)

    other_site = client.get(url, headers=_investigator(session, world, site="Y"))
    unknown = client.get(_url(uuid.uuid4()), headers=_investigator(session, world))
    assert_problem(other_site, 404)
    assert_problem(unknown, 404)
    assert other_site.json()["detail"] == unknown.json()["detail"]

    assert_problem(client.get(url, headers=alice.headers), 401)
    assert_problem(client.get(_url(alice.id, "diary/adherence"), headers=alice.headers), 401)

    monitor = bearer(staff_token(session, role="monitor", study=world.study))
    listed = client.get(url, headers=monitor)
    assert listed.status_code == 200
    assert len(listed.json()["items"]) == 21

    # An investigator of site Y sees a site-Y participant, never site X's.
    carol = make_patient(session, world.study, world.sites["Y"])
    sync(client, carol.headers, [entry("note")])
    site_y = _investigator(session, world, site="Y")
    assert len(client.get(_url(carol.id), headers=site_y).json()["items"]) == 1
    assert_problem(client.get(_url(alice.id, "diary/adherence"), headers=site_y), 404)


def test_adherence_counts_days_with_an_entry_since_enrolment(
    client: TestClient, session: Session, world: World
) -> None:
    today = NOW.date()  # 2026-11-22 in Berlin too
    enrolled = today - timedelta(days=10)
    patient = make_patient(session, world.study, world.sites["X"], enrolled_on=enrolled)
    days = [enrolled, enrolled + timedelta(days=4), today]
    batch = [entry("note", recorded_at=local(f"{day.isoformat()}T09:00:00")) for day in days] + [
        entry("vitals", recorded_at=local(f"{days[1].isoformat()}T21:00:00"))
    ]
    assert {r["status"] for r in sync(client, patient.headers, batch)} == {"created"}

    response = client.get(
        _url(patient.id, "diary/adherence"), headers=_investigator(session, world)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["participant_id"] == patient.id
    assert body["period_days"] == 1  # the protocol asks for daily symptoms
    assert body["periods_expected"] == 11
    assert body["periods_with_entry"] == 3
    assert body["adherence"] == pytest.approx(3 / 11, abs=1e-3)
    assert date.fromisoformat(body["start_date"]) == enrolled
    assert date.fromisoformat(body["end_date"]) == today


def test_adherence_before_any_entry_is_zero(
    client: TestClient, session: Session, world: World
) -> None:
    patient = make_patient(session, world.study, world.sites["X"], enrolled_on=NOW.date())
    body = client.get(
        _url(patient.id, "diary/adherence"), headers=_investigator(session, world)
    ).json()
    assert (body["periods_expected"], body["periods_with_entry"], body["adherence"]) == (1, 0, 0)
