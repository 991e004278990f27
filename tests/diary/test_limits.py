"""Input limits (checklist C15-C18): refused with clear errors, never a 500, never half-stored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.diary.models import VitalSign
from tests.diary.conftest import World
from tests.diary.diary_helpers import (
    ENTRIES,
    MG_ADL,
    PORTAL,
    SYNC,
    count_entries,
    entry,
    error_locs,
    post,
    sync,
)
from tests.factories import bearer, staff_token
from tests.problem_helpers import assert_problem

MIB = 1024 * 1024
JSON = {"Content-Type": "application/json"}


def _raw(client: TestClient, url: str, headers: dict[str, str], content: Any) -> Any:
    return client.post(url, content=content, headers={**headers, **JSON})


# --- text --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "data", "loc"),
    [
        ("note", {"text": "before\x00after"}, "data.text"),
        ("note", {"text": "bell\x07"}, "data.text"),
        (
            "symptoms",
            {"symptoms": [{"code": "fever", "severity": 1}], "note": "a\x00"},
            "data.note",
        ),
        ("vitals", {"heart_rate_bpm": 70, "method": "wrist\x00"}, "data.method"),
        (
            "medication_dose",
            {"medication": "pred\x00nisone", "amount": 5, "unit": "mg", "route": "PO"},
            "data.medication",
        ),
    ],
)
def test_nul_and_control_characters_in_text_are_invalid(
    client: TestClient, session: Session, world: World, kind: str, data: dict[str, Any], loc: str
) -> None:
    (result,) = sync(client, world.alice.headers, [entry(kind, data)])
    assert result["status"] == "invalid", result
    assert error_locs(result["errors"]) == [loc]
    assert "control characters" in result["errors"][0]["msg"]

    single = post(client, world.alice.headers, entry(kind, data))
    body = assert_problem(single, 422)
    assert error_locs(body["errors"]) == [f"body.{loc}"]
    assert count_entries(session, world.alice.participant.id) == 0


@pytest.mark.parametrize("size", [1_000_000, 2 * MIB])
def test_a_huge_string_is_413_or_invalid_never_500(
    client: TestClient, session: Session, world: World, size: int
) -> None:
    big = "x" * size
    single = post(client, world.alice.headers, entry("note", {"text": big}))
    assert single.status_code in (413, 422), single.text[:300]
    assert_problem(single, single.status_code)

    in_sync = client.post(
        SYNC,
        json={"entries": [entry("note", {"text": "small"}), entry("note", {"text": big})]},
        headers=world.alice.headers,
    )
    if in_sync.status_code == 200:
        assert [r["status"] for r in in_sync.json()["results"]] == ["created", "invalid"]
    else:
        assert_problem(in_sync, 413)
    assert count_entries(session, world.alice.participant.id) <= 1


# --- numbers -----------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [-1, 2**31, 2**63, 10**30, 200_001, 1.5, "100", True, None])
def test_impossible_step_counts_are_invalid(
    client: TestClient, session: Session, world: World, count: Any
) -> None:
    data = {"date": "2026-11-21", "count": count, "source": "phone"}
    (result,) = sync(client, world.alice.headers, [entry("steps", data)])
    assert result["status"] == "invalid", result
    assert error_locs(result["errors"]) == ["data.count"]
    assert count_entries(session, world.alice.participant.id) == 0


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("where", ["entries", "sync"])
def test_a_nan_or_infinity_literal_makes_the_whole_request_422(
    client: TestClient, session: Session, world: World, literal: str, where: str
) -> None:
    vitals = json.dumps(entry("vitals", {"temperature_c": 0.5})).replace("0.5", literal)
    if where == "entries":
        response = _raw(client, ENTRIES, world.alice.headers, vitals)
    else:
        good = json.dumps(entry("note"))
        response = _raw(client, SYNC, world.alice.headers, f'{{"entries": [{good}, {vitals}]}}')
    body = assert_problem(response, 422)
    assert body["errors"][0]["type"] == "json_invalid"
    assert count_entries(session, world.alice.participant.id) == 0


@pytest.mark.parametrize("number", ["1e999", "-1e999"])
def test_a_number_overflowing_to_infinity_invalidates_only_its_sync_item(
    client: TestClient, session: Session, world: World, number: str
) -> None:
    ok_before, ok_after = entry("note", {"text": "before"}), entry("note", {"text": "after"})
    vitals = json.dumps(entry("vitals", {"temperature_c": 0.5, "heart_rate_bpm": 80}))
    mg = json.dumps(entry("mg_adl", {**MG_ADL, "talking": 0.5}))
    body = (
        f'{{"entries": [{json.dumps(ok_before)}, {vitals.replace("0.5", number)}, '
        f"{mg.replace('0.5', number)}, {json.dumps(ok_after)}]}}"
    )
    response = _raw(client, SYNC, world.alice.headers, body)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["created", "invalid", "invalid", "created"]
    assert error_locs(results[1]["errors"]) == ["data.temperature_c"]
    assert error_locs(results[2]["errors"]) == ["data.talking"]
    assert count_entries(session, world.alice.participant.id) == 2


def test_a_single_entry_with_a_number_overflowing_to_infinity_is_422(
    client: TestClient, session: Session, world: World
) -> None:
    vitals = json.dumps(entry("vitals", {"temperature_c": 0.5, "heart_rate_bpm": 80}))
    response = _raw(client, ENTRIES, world.alice.headers, vitals.replace("0.5", "1e999"))
    body = assert_problem(response, 422)
    assert error_locs(body["errors"]) == ["body.data.temperature_c"]
    session.expire_all()
    assert session.exec(select(VitalSign)).all() == []


def test_an_mg_adl_item_overflowing_to_infinity_is_422_in_a_single_post(
    client: TestClient, session: Session, world: World
) -> None:
    mg = json.dumps(entry("mg_adl", {**MG_ADL, "chewing": 0.5})).replace("0.5", "1e999")
    body = assert_problem(_raw(client, ENTRIES, world.alice.headers, mg), 422)
    assert error_locs(body["errors"]) == ["body.data.chewing"]
    assert count_entries(session, world.alice.participant.id) == 0


# --- time and zones ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "data", "envelope", "loc"),
    [
        ("note", None, {"recorded_at": "2026-11-22T08:30:00"}, "recorded_at"),
        ("note", None, {"recorded_at": "2026-11-22"}, "recorded_at"),
        (
            "vitals",
            {"heart_rate_bpm": 70, "measured_at": "2026-11-22T08:00:00"},
            {},
            "data.measured_at",
        ),
        (
            "symptoms",
            {"symptoms": [{"code": "fever", "severity": 2, "onset_at": "2026-11-22T06:00:00"}]},
            {},
            "data.symptoms.0.onset_at",
        ),
        (
            "steps",
            {
                "date": "2026-11-21",
                "count": 10,
                "source": "watch",
                "intervals": [
                    {"start": "2026-11-21T08:00:00", "end": "2026-11-21T09:00:00", "count": 10}
                ],
            },
            {},
            "data.intervals.0.start",
        ),
    ],
)
def test_naive_datetimes_are_invalid(
    client: TestClient,
    session: Session,
    world: World,
    kind: str,
    data: dict[str, Any] | None,
    envelope: dict[str, Any],
    loc: str,
) -> None:
    sent = {**entry(kind, data), **envelope}
    (result,) = sync(client, world.alice.headers, [sent])
    assert result["status"] == "invalid", result
    assert loc in error_locs(result["errors"])
    assert count_entries(session, world.alice.participant.id) == 0


@pytest.mark.parametrize(
    "zone",
    [
        "Mars/Olympus",
        "+01:00",
        "UTC+1",
        "europe/berlin",
        "",
        "../../etc/passwd",
        "Europe/Berlin\x00",
    ],
)
def test_a_zone_that_is_not_an_iana_name_is_invalid(
    client: TestClient, session: Session, world: World, zone: str
) -> None:
    (result,) = sync(client, world.alice.headers, [entry("note", time_zone=zone)])
    assert result["status"] == "invalid", result
    assert error_locs(result["errors"]) == ["time_zone"]
    assert "IANA" in result["errors"][0]["msg"]
    assert count_entries(session, world.alice.participant.id) == 0


@pytest.mark.parametrize("recorded_at", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_a_recorded_at_at_the_edge_of_the_calendar_is_invalid_not_500(
    client: TestClient, session: Session, world: World, recorded_at: str
) -> None:
    good = entry("note")
    bad = entry("note", recorded_at=recorded_at, time_zone="Pacific/Kiritimati")
    response = client.post(SYNC, json={"entries": [good, bad]}, headers=world.alice.headers)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["created", "invalid"]
    assert error_locs(results[1]["errors"]) == ["recorded_at"]


# --- bodies ------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [ENTRIES, SYNC])
def test_a_2_mib_body_is_413_problem_json(
    client: TestClient, session: Session, world: World, url: str
) -> None:
    notes = [entry("note", {"text": "y" * 1900}) for _ in range(2 * MIB // 1900 + 10)]
    payload = json.dumps({"entries": notes} if url == SYNC else {**notes[0], "pad": "z" * 2 * MIB})
    assert len(payload) > 2 * MIB
    body = assert_problem(_raw(client, url, world.alice.headers, payload), 413)
    assert str(MIB) in body["detail"]

    def chunks() -> Iterator[bytes]:
        data = payload.encode()
        for start in range(0, len(data), 64 * 1024):
            yield data[start : start + 64 * 1024]

    chunked = _raw(client, url, world.alice.headers, chunks())
    assert_problem(chunked, 413)
    assert count_entries(session, world.alice.participant.id) == 0


def test_pathologically_deep_json_is_422_not_500(
    client: TestClient, session: Session, world: World
) -> None:
    deep = '{"entries": [' + "[" * 100_000 + "]" * 100_000 + "]}"
    assert_problem(_raw(client, SYNC, world.alice.headers, deep), 422)


# --- pagination --------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", ["0", "201", "-1", "1000000000", "ten", "1.5"])
def test_a_bad_page_limit_is_422(
    client: TestClient, session: Session, world: World, limit: str
) -> None:
    investigator = bearer(
        staff_token(session, role="investigator", study=world.study, site=world.sites["X"])
    )
    for url, headers in [
        (ENTRIES, world.alice.headers),
        ("/app/v1/diary/changes", world.alice.headers),
        (f"{PORTAL}/participants/{world.alice.id}/diary/entries", investigator),
    ]:
        response = client.get(url, params={"limit": limit}, headers=headers)
        body = assert_problem(response, 422)
        assert ["query", "limit"] in [e["loc"] for e in body["errors"]]


@pytest.mark.parametrize("limit", ["1", "200"])
def test_the_page_limit_bounds_are_accepted(client: TestClient, world: World, limit: str) -> None:
    sync(client, world.alice.headers, [entry("note") for _ in range(3)])
    body = client.get(ENTRIES, params={"limit": limit}, headers=world.alice.headers).json()
    assert len(body["items"]) == min(int(limit), 3)
    assert (body["next_cursor"] is None) == (int(limit) >= 3)


def test_a_tampered_list_cursor_is_400(client: TestClient, session: Session, world: World) -> None:
    sync(client, world.alice.headers, [entry("note") for _ in range(4)])
    cursor = client.get(ENTRIES, params={"limit": 2}, headers=world.alice.headers).json()[
        "next_cursor"
    ]
    assert cursor
    tampered = cursor[:5] + ("x" if cursor[5] != "x" else "y") + cursor[6:]
    for bad in (tampered, "%%%", "A" * 600):
        response = client.get(ENTRIES, params={"cursor": bad}, headers=world.alice.headers)
        assert response.status_code in (400, 422), response.text
        assert_problem(response, response.status_code)
    body = assert_problem(
        client.get(ENTRIES, params={"cursor": tampered}, headers=world.alice.headers), 400
    )
    assert body["code"] == "invalid_cursor"
    # A cursor of Alice's list is no key to Bob's or to a filtered list.
    assert_problem(client.get(ENTRIES, params={"cursor": cursor}, headers=world.bob.headers), 400)
    filtered = client.get(
        ENTRIES, params={"cursor": cursor, "kind": "note"}, headers=world.alice.headers
    )
    assert_problem(filtered, 400)


# --- corrections -------------------------------------------------------------------------------


def test_a_nul_byte_in_a_correction_reason_is_422(
    client: TestClient, session: Session, world: World
) -> None:
    note = entry("note", {"text": "original"})
    sync(client, world.alice.headers, [note])
    response = client.post(
        f"{ENTRIES}/{note['id']}/corrections",
        json={"data": {"text": "fixed"}, "reason": "typo\x00fix"},
        headers=world.alice.headers,
    )
    body = assert_problem(response, 422)
    assert ["body", "reason"] in [e["loc"] for e in body["errors"]]
