"""The portal's study-wide visit lists: paging with state, due-date and site filters, and
schedule adherence per participant (issue 5 item 5; api-contract "Lists answer {items,
next_cursor}")."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.participants.models import Participant
from tests.factories import bearer, create_participant, create_study, staff_token
from tests.visits.clock import freeze

# 2025-06-15T10:00Z: 06-16 00:00 on Kiritimati (UTC+14), 06-14 23:00 in Pago Pago (UTC-11).
NOW = datetime(2025, 6, 15, 10, tzinfo=UTC)
DAY0 = date(2025, 6, 16)


@pytest.fixture
def world(session: Session, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """One participant on Kiritimati and one in Berlin at site X, four in Pago Pago at site Y,
    all with day 0 on 2025-06-16: at NOW the visits of one day are in different states."""
    freeze(monkeypatch, NOW)
    study, sites = create_study(session)

    def enrol(zone: str, site: str, code: str) -> Participant:
        participant, _ = create_participant(
            session,
            study=study,
            site=sites[site],
            subject_code=code,
            time_zone=zone,
            enrolled_on=date(2025, 5, 1),
            day0_date=DAY0,
        )
        return participant

    return {
        "study": study,
        "sites": sites,
        "kiritimati": enrol("Pacific/Kiritimati", "X", "K-1"),
        "berlin": enrol("Europe/Berlin", "X", "B-1"),
        "pago": [enrol("Pacific/Pago_Pago", "Y", f"P-{i}") for i in range(4)],
        "monitor": bearer(staff_token(session, role="monitor", study=study)),
        "inv_x": bearer(staff_token(session, role="investigator", study=study, site=sites["X"])),
        "inv_y": bearer(staff_token(session, role="investigator", study=study, site=sites["Y"])),
    }


def pages(
    client: TestClient, url: str, headers: dict[str, str], limit: int, **params: Any
) -> list[list[dict[str, Any]]]:
    out = []
    cursor = None
    while True:
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        response = client.get(url, params=query, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"items", "next_cursor"}
        out.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return out
        assert len(out) < 200, "paging does not end"


def visits_url(world: dict[str, Any]) -> str:
    return f"/portal/v1/studies/{world['study'].id}/visits"


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"status": "open"},
        {"status": "upcoming"},
        {"status": "missed"},
        {"due_within_days": 1},
        {"due_within_days": 30, "from": "2025-06-16"},
    ],
)
def test_pages_hold_exactly_the_matching_visits_once(
    client: TestClient, world: dict[str, Any], params: dict[str, Any]
) -> None:
    """Small pages (1, 2, 3 items) concatenate to the one big page: nothing lost, nothing twice,
    in (target date, id) order - although most candidates of a state filter at NOW turn out not
    to match (the states differ by participant time zone)."""
    url, monitor = visits_url(world), world["monitor"]
    (everything,) = pages(client, url, monitor, 200, **params)
    assert everything, "the case should list something"
    keys = [(v["target_date"], v["id"]) for v in everything]
    assert keys == sorted(keys)
    for limit in (1, 2, 3):
        paged = pages(client, url, monitor, limit, **params)
        assert all(len(page) <= limit for page in paged)
        assert [v["id"] for page in paged for v in page] == [v["id"] for v in everything]


def test_state_filter_at_an_instant_where_zones_disagree(
    client: TestClient, world: dict[str, Any]
) -> None:
    """At NOW the infusion day (06-16) has begun on Kiritimati only; Pago Pago's screening
    (target 06-15) is still open while Kiritimati's has been missed."""
    url, monitor = visits_url(world), world["monitor"]
    opened = {
        (v["participant_id"], v["kind"])
        for page in pages(client, url, monitor, 2, status="open")
        for v in page
    }
    kiritimati = str(world["kiritimati"].id)
    assert {pid for pid, kind in opened if kind == "dosing"} == {kiritimati}
    # Everyone else is on 06-15 or 06-14: screening (to 06-15) and week 0 (from 06-13) open.
    others = {str(world["berlin"].id)} | {str(p.id) for p in world["pago"]}
    assert opened == {(kiritimati, "dosing"), (kiritimati, "clinic")} | {
        (pid, kind) for pid in others for kind in ("screening", "clinic")
    }
    missed = [v for page in pages(client, url, monitor, 2, status="missed") for v in page]
    assert [(v["participant_id"], v["kind"]) for v in missed] == [(kiritimati, "screening")]


def test_site_filter_stays_inside_the_callers_sites(
    client: TestClient, world: dict[str, Any]
) -> None:
    url = visits_url(world)
    x, y = str(world["sites"]["X"].id), str(world["sites"]["Y"].id)
    pago = {str(p.id) for p in world["pago"]}

    def participants(headers: dict[str, str], **params: Any) -> set[str]:
        return {
            v["participant_id"] for page in pages(client, url, headers, 50, **params) for v in page
        }

    assert participants(world["monitor"], site_id=y) == pago
    assert participants(world["monitor"], site_id=x) == {
        str(world["kiritimati"].id),
        str(world["berlin"].id),
    }
    assert participants(world["inv_x"]) == participants(world["monitor"], site_id=x)
    assert participants(world["inv_x"], site_id=y) == set()  # another site: nothing, not 403
    assert participants(world["inv_y"]) == pago


def test_bad_queries(client: TestClient, session: Session, world: dict[str, Any]) -> None:
    url, monitor = visits_url(world), world["monitor"]
    for days in (0, 367):
        response = client.get(url, params={"due_within_days": days}, headers=monitor)
        assert response.status_code == 422
        assert response.json()["errors"][0]["loc"] == ["query", "due_within_days"]
    assert client.get(url, params={"due_within_days": 366}, headers=monitor).status_code == 200
    cursor = client.get(url, params={"limit": 1}, headers=monitor).json()["next_cursor"]
    tampered = cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB")
    assert client.get(url, params={"cursor": tampered}, headers=monitor).status_code == 400
    other, _ = create_study(session)
    foreign = client.get(
        f"/portal/v1/studies/{other.id}/visits", params={"cursor": cursor}, headers=monitor
    )
    assert foreign.status_code == 404  # not the monitor's study
    admin = bearer(staff_token(session, role="admin"))
    reused = client.get(
        f"/portal/v1/studies/{other.id}/visits", params={"cursor": cursor}, headers=admin
    )
    assert reused.status_code == 400  # a cursor of another study's list


# --- schedule adherence -----------------------------------------------------------------------


def test_adherence_per_participant_and_across_the_study(
    client: TestClient,
    session: Session,
    world: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On 2025-09-01 (Berlin) the Berlin participant's visits due so far: screening, the two
    infusion starts (days 0, 12), weeks 0 and 4 - week 8 was cancelled and week 12's window
    (09-05 .. 09-11) is still ahead. Done: week 0 on time, week 4 late, infusion 1 on its day:
    2 of 5 in window. Nobody else did anything (Kiritimati: week 8 due too, 0 of 6)."""
    freeze(monkeypatch, datetime(2025, 9, 1, 10, tzinfo=UTC))
    berlin = world["berlin"]
    visits = {
        (v["kind"], v["day"]): v
        for v in client.get(
            f"/portal/v1/participants/{berlin.id}/visits", headers=world["inv_x"]
        ).json()
    }
    for key, body in [
        (("clinic", 0), {"completed_on": "2025-06-17", "reason": "Seen on time"}),
        (("clinic", 28), {"completed_on": "2025-07-20", "reason": "Seen late"}),
        (("dosing", 0), {"completed_on": "2025-06-16", "reason": "Infused"}),
        (("clinic", 56), {"status": "cancelled", "reason": "Holiday"}),
    ]:
        response = client.patch(
            f"/portal/v1/visits/{visits[key]['id']}", json=body, headers=world["inv_x"]
        )
        assert response.status_code == 200, response.text
    one = client.get(
        f"/portal/v1/participants/{berlin.id}/visits/adherence", headers=world["inv_x"]
    )
    assert one.status_code == 200, one.text
    assert one.json() == {
        "participant_id": str(berlin.id),
        "subject_code": "B-1",
        "site_id": str(world["sites"]["X"].id),
        "as_of": "2025-09-01",
        "due": 5,
        "completed_in_window": 2,
        "completed_out_of_window": 1,
        "adherence": 0.4,
    }
    assert (
        client.get(
            f"/portal/v1/participants/{berlin.id}/visits/adherence", headers=world["inv_y"]
        ).status_code
        == 404
    )
    url = f"/portal/v1/studies/{world['study'].id}/visit-adherence"
    rows = [r for page in pages(client, url, world["monitor"], 2) for r in page]
    assert [r["subject_code"] for r in rows] == ["B-1", "K-1", "P-0", "P-1", "P-2", "P-3"]
    assert rows[0] == one.json()
    nothing_done = rows[1]
    assert (nothing_done["due"], nothing_done["adherence"]) == (6, 0.0)
    y_rows = [r for page in pages(client, url, world["inv_y"], 50) for r in page]
    assert [r["subject_code"] for r in y_rows] == ["P-0", "P-1", "P-2", "P-3"]
    x_only = [
        r
        for page in pages(client, url, world["monitor"], 50, site_id=str(world["sites"]["X"].id))
        for r in page
    ]
    assert [r["subject_code"] for r in x_only] == ["B-1", "K-1"]


def test_adherence_is_null_before_anything_is_due_and_stops_at_withdrawal(
    client: TestClient,
    session: Session,
    world: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At NOW nothing is due for the Berlin participant (screening closes 06-15 at midnight).
    Withdrawn on 2025-07-10, the Pago Pago participant is evaluated as of that day even when
    asked on 2025-09-01: screening, infusion 1, week 0 (window to 06-19) and infusion 2 (06-28)
    are due; week 4's window (07-11 .. 07-17) had not opened: 0 of 4."""
    url = f"/portal/v1/participants/{world['berlin'].id}/visits/adherence"
    early = client.get(url, headers=world["monitor"]).json()
    assert (early["due"], early["adherence"]) == (0, None)

    pago: Participant = world["pago"][0]
    pago.status = "withdrawn"
    pago.withdrawn_at = datetime(2025, 7, 10, 20, tzinfo=UTC)  # 07-10 09:00 in Pago Pago
    session.add(pago)
    session.flush()
    freeze(monkeypatch, datetime(2025, 9, 1, 10, tzinfo=UTC))
    row = client.get(
        f"/portal/v1/participants/{pago.id}/visits/adherence", headers=world["monitor"]
    ).json()
    assert row["as_of"] == "2025-07-10"
    assert (row["due"], row["adherence"]) == (4, 0.0)
