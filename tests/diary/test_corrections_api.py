"""Corrections: a new version with a reason, never an overwrite; who may correct and when."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, select

from app.diary.models import DiaryEntry, DiaryEntryVersion, MgAdlResponse
from tests.diary.conftest import World
from tests.diary.diary_helpers import (
    ENTRIES,
    MG_ADL,
    NOW,
    PORTAL,
    audit_events,
    entry,
    mg_adl,
    post,
)
from tests.domain_helpers import comparable_problem
from tests.factories import bearer, participant_token, staff_token
from tests.problem_helpers import assert_problem

REASON = "Pressed the wrong answer for talking"


def _created(client: TestClient, headers: dict[str, str], **kw: Any) -> dict[str, Any]:
    sent = entry("mg_adl", MG_ADL, recorded_at="2026-11-22T08:30:00+01:00", **kw)
    response = post(client, headers, sent)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _app_correct(
    client: TestClient, headers: dict[str, str], entry_id: str, data: Any, reason: Any = REASON
) -> Any:
    body: dict[str, Any] = {"data": data}
    if reason is not None:
        body["reason"] = reason
    return client.post(f"{ENTRIES}/{entry_id}/corrections", json=body, headers=headers)


def _portal_url(participant_id: str, entry_id: str, tail: str) -> str:
    return f"{PORTAL}/participants/{participant_id}/diary/entries/{entry_id}/{tail}"


def _investigator(session: Session, world: World, site: str = "X") -> dict[str, str]:
    return bearer(
        staff_token(session, role="investigator", study=world.study, site=world.sites[site])
    )


def test_a_participant_corrects_within_the_window_and_gets_version_2_with_a_new_score(
    client: TestClient, session: Session, world: World
) -> None:
    alice = world.alice
    created = _created(client, alice.headers)
    assert created["score"]["total"] == 13

    response = _app_correct(client, alice.headers, created["id"], mg_adl(talking=3))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"] == created["id"]
    assert body["version"] == 2
    assert body["data"] == mg_adl(talking=3)
    assert body["score"]["total"] == 15
    assert body["score"]["bulbar"] == 6
    # The envelope (when, where, which day) is the original's.
    for key in ("recorded_at", "utc_offset", "time_zone", "diary_date", "received_at", "kind"):
        assert body[key] == created[key]

    read = client.get(f"{ENTRIES}/{created['id']}", headers=alice.headers).json()
    assert read == body
    listed = client.get(ENTRIES, headers=alice.headers).json()["items"]
    assert [(e["id"], e["version"]) for e in listed] == [(created["id"], 2)]

    # Nothing was overwritten: both versions keep their own typed rows.
    session.expire_all()
    totals = sorted(
        r.total
        for r in session.exec(
            select(MgAdlResponse).where(MgAdlResponse.participant_id == alice.participant.id)
        )
    )
    assert totals == [13, 15]


@pytest.mark.parametrize("reason", [None, "", "  ", "ok"])
def test_a_correction_without_a_reason_is_422(
    client: TestClient, world: World, reason: str | None
) -> None:
    created = _created(client, world.alice.headers)
    response = _app_correct(client, world.alice.headers, created["id"], mg_adl(talking=0), reason)
    body = assert_problem(response, 422)
    assert ["body", "reason"] in [e["loc"] for e in body["errors"]]
    read = client.get(f"{ENTRIES}/{created['id']}", headers=world.alice.headers).json()
    assert read["version"] == 1


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"data": mg_adl(talking=4), "reason": REASON}, ["body", "data", "talking"]),
        ({"data": {"text": "wrong kind"}, "reason": REASON}, ["body", "data", "talking"]),
        ({"data": MG_ADL | {"total": 0}, "reason": REASON}, ["body", "data", "total"]),
        ({"data": mg_adl(talking=2), "reason": REASON, "version": 5}, ["body", "version"]),
        ({"data": mg_adl(talking=2), "reason": REASON, "actor_id": "x"}, ["body", "actor_id"]),
    ],
)
def test_an_invalid_correction_is_422_and_changes_nothing(
    client: TestClient, world: World, body: dict[str, Any], loc: list[Any]
) -> None:
    created = _created(client, world.alice.headers)
    response = client.post(
        f"{ENTRIES}/{created['id']}/corrections", json=body, headers=world.alice.headers
    )
    problem = assert_problem(response, 422)
    assert loc in [e["loc"] for e in problem["errors"]], problem
    versions = client.get(f"{ENTRIES}/{created['id']}/versions", headers=world.alice.headers)
    assert len(versions.json()) == 1


def test_the_edit_window_closes_for_the_participant_after_7_days(
    client: TestClient, world: World, clock: time_machine.Coordinates
) -> None:
    alice = world.alice
    created = _created(client, alice.headers)  # diary date 2026-11-22
    clock.move_to(NOW + timedelta(days=7))  # 2026-11-29: the 7th day after, still open
    headers = bearer(participant_token(alice.participant))
    ok = _app_correct(client, headers, created["id"], mg_adl(talking=0))
    assert ok.status_code == 201, ok.text

    clock.move_to(NOW + timedelta(days=8))
    headers = bearer(participant_token(alice.participant))
    closed = _app_correct(client, headers, created["id"], mg_adl(talking=2))
    body = assert_problem(closed, 409, "edit_window_closed")
    assert "7 days" in body["detail"]
    read = client.get(f"{ENTRIES}/{created['id']}", headers=headers).json()
    assert (read["version"], read["data"]["talking"]) == (2, 0)


def test_the_investigator_of_the_site_corrects_at_any_time(
    client: TestClient, session: Session, world: World, clock: time_machine.Coordinates
) -> None:
    alice = world.alice
    created = _created(client, alice.headers)
    clock.move_to(NOW + timedelta(days=90))
    response = client.post(
        _portal_url(alice.id, created["id"], "corrections"),
        json={"data": mg_adl(breathing=0), "reason": "Source document: breathing normal"},
        headers=_investigator(session, world),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["version"], body["data"]["breathing"], body["score"]["respiratory"]) == (2, 0, 0)

    versions = client.get(
        f"{ENTRIES}/{created['id']}/versions", headers=bearer(participant_token(alice.participant))
    ).json()
    assert [(v["version"], v["actor_type"], v["actor_role"]) for v in versions] == [
        (1, "participant", "participant"),
        (2, "staff", "investigator"),
    ]


def test_who_may_correct_in_the_portal(client: TestClient, session: Session, world: World) -> None:
    alice = world.alice
    created = _created(client, alice.headers)
    url = _portal_url(alice.id, created["id"], "corrections")
    body = {"data": mg_adl(talking=0), "reason": "Per source document"}

    monitor = bearer(staff_token(session, role="monitor", study=world.study))
    assert_problem(client.post(url, json=body, headers=monitor), 403)

    other_site = _investigator(session, world, site="Y")
    assert_problem(client.post(url, json=body, headers=other_site), 404)

    assert_problem(client.post(url, json=body, headers=alice.headers), 401)

    read = client.get(f"{ENTRIES}/{created['id']}", headers=alice.headers).json()
    assert read["version"] == 1


def test_a_correction_identical_to_the_current_version_is_409(
    client: TestClient, session: Session, world: World
) -> None:
    alice = world.alice
    created = _created(client, alice.headers)
    assert_problem(_app_correct(client, alice.headers, created["id"], dict(MG_ADL)), 409)
    portal = client.post(
        _portal_url(alice.id, created["id"], "corrections"),
        json={"data": dict(MG_ADL), "reason": "Per source document"},
        headers=_investigator(session, world),
    )
    assert_problem(portal, 409)
    versions = client.get(f"{ENTRIES}/{created['id']}/versions", headers=alice.headers).json()
    assert len(versions) == 1


def test_versions_list_every_version_oldest_first_in_app_and_portal(
    client: TestClient, session: Session, world: World
) -> None:
    alice = world.alice
    created = _created(client, alice.headers)
    assert _app_correct(client, alice.headers, created["id"], mg_adl(talking=3)).status_code == 201
    investigator = _investigator(session, world)
    third = client.post(
        _portal_url(alice.id, created["id"], "corrections"),
        json={"data": mg_adl(talking=2), "reason": "Clarified with the participant"},
        headers=investigator,
    )
    assert third.status_code == 201, third.text

    app_versions = client.get(f"{ENTRIES}/{created['id']}/versions", headers=alice.headers)
    portal_versions = client.get(
        _portal_url(alice.id, created["id"], "versions"), headers=investigator
    )
    monitor = bearer(staff_token(session, role="monitor", study=world.study))
    monitor_versions = client.get(_portal_url(alice.id, created["id"], "versions"), headers=monitor)
    for response in (app_versions, portal_versions, monitor_versions):
        assert response.status_code == 200, response.text
        versions = response.json()
        assert [v["version"] for v in versions] == [1, 2, 3]
        assert [v["reason"] for v in versions] == [
            None,
            REASON,
            "Clarified with the participant",
        ]
        assert [v["data"]["talking"] for v in versions] == [1, 3, 2]
        assert [v["score"]["total"] for v in versions] == [13, 15, 14]
        created_at = [v["created_at"] for v in versions]
        assert created_at == sorted(created_at)
    assert app_versions.json() == portal_versions.json()


def test_each_correction_writes_an_audit_row_with_before_after_and_reason(
    client: TestClient, session: Session, world: World
) -> None:
    alice = world.alice
    created = _created(client, alice.headers)
    assert _app_correct(client, alice.headers, created["id"], mg_adl(talking=3)).status_code == 201

    (event,) = audit_events(session, alice.participant.id, "diary_entry.correct")
    assert event.entity_id == created["id"]
    assert event.reason == REASON
    assert (event.actor_type, event.actor_id) == ("participant", alice.id)
    assert event.changes["version"] == {"before": 1, "after": 2}
    assert event.changes["data"]["before"]["talking"] == 1
    assert event.changes["data"]["after"]["talking"] == 3
    assert event.changes["score"]["before"]["total"] == 13
    assert event.changes["score"]["after"]["total"] == 15


def test_a_participant_cannot_see_or_correct_another_participants_entry(
    client: TestClient, world: World
) -> None:
    bobs = _created(client, world.bob.headers)
    alice = world.alice
    stranger = str(uuid.uuid4())
    for tail, method, body in [
        ("", "GET", None),
        ("/versions", "GET", None),
        ("/corrections", "POST", {"data": mg_adl(talking=0), "reason": REASON}),
    ]:
        theirs = client.request(
            method, f"{ENTRIES}/{bobs['id']}{tail}", json=body, headers=alice.headers
        )
        random = client.request(
            method, f"{ENTRIES}/{stranger}{tail}", json=body, headers=alice.headers
        )
        assert_problem(theirs, 404)
        assert comparable_problem(theirs) == comparable_problem(random)
    assert client.get(ENTRIES, headers=alice.headers).json()["items"] == []
    read = client.get(f"{ENTRIES}/{bobs['id']}", headers=world.bob.headers).json()
    assert read["version"] == 1


@pytest.mark.postgres_only
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE diary_entry_version SET reason = 'rewritten' WHERE entry_id = :id",
        "UPDATE diary_entry_version SET data = '{}'::jsonb WHERE entry_id = :id",
        "DELETE FROM diary_entry_version WHERE entry_id = :id",
    ],
)
def test_postgres_refuses_to_change_or_delete_versions(
    client: TestClient, session: Session, world: World, statement: str
) -> None:
    created = _created(client, world.alice.headers)
    session.expire_all()
    stored = session.exec(
        select(DiaryEntry).where(DiaryEntry.participant_id == world.alice.participant.id)
    ).one()
    with pytest.raises(DBAPIError) as info, session.begin_nested():
        session.execute(text(statement), {"id": stored.id})
    assert "append-only" in str(info.value)
    (version,) = session.exec(
        select(DiaryEntryVersion).where(DiaryEntryVersion.entry_id == stored.id)
    ).all()
    assert version.data == created["data"]
    assert version.reason is None
