"""Recording single diary entries: what the app gets back and what is stored, per kind."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.diary.models import (
    MedicationDose,
    MgAdlResponse,
    StepCount,
    SymptomReport,
    VitalSign,
)
from app.diary.schemas import MAX_NOTE_LENGTH
from app.scores.instruments.mg_adl import VERSION as MG_ADL_VERSION
from tests.diary.conftest import World
from tests.diary.diary_helpers import (
    APP,
    ENTRIES,
    MG_ADL,
    MG_ADL_ITEMS,
    SAMPLE_DATA,
    conflicts,
    count_entries,
    entry,
    error_locs,
    mg_adl,
    post,
    sync,
    sync_one,
)
from tests.problem_helpers import assert_problem


def _typed(session: Session, model: Any, participant_id: Any) -> list[Any]:
    session.expire_all()
    return list(session.exec(select(model).where(model.participant_id == participant_id)))


# --- MG-ADL ----------------------------------------------------------------------------------


def test_mg_adl_entry_comes_back_with_the_server_score_and_metadata(
    client: TestClient, session: Session, world: World
) -> None:
    alice = world.alice
    sent = entry("mg_adl", MG_ADL, recorded_at="2026-11-22T08:30:00+01:00")
    response = post(client, alice.headers, sent)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"] == sent["id"]
    assert body["kind"] == "mg_adl"
    assert body["recorded_at"] == "2026-11-22T08:30:00+01:00"
    assert body["time_zone"] == "Europe/Berlin"
    assert body["utc_offset"] == "+01:00"
    assert body["diary_date"] == "2026-11-22"
    assert body["version"] == 1
    assert body["flags"] == []
    assert body["data"] == MG_ADL
    assert body["participant_id"] == alice.id
    received = datetime.fromisoformat(body["received_at"])
    assert received.utcoffset() == timedelta(0)
    assert abs(received - datetime.now(UTC)) < timedelta(minutes=1)
    # Ocular = items 7-8, bulbar = 1-3, respiratory = 4, limb = 5-6.
    assert body["score"] == {
        "total": 13,
        "ocular": 5,
        "bulbar": 4,
        "respiratory": 1,
        "limb": 3,
        "instrument_version": MG_ADL_VERSION,
        "recall_period_days": 7,
    }

    # The same entry reads back identically, and the typed row holds items and score.
    read = client.get(f"{ENTRIES}/{sent['id']}", headers=alice.headers)
    assert read.status_code == 200
    assert read.json() == body
    (row,) = _typed(session, MgAdlResponse, alice.participant.id)
    assert (row.total, row.ocular, row.bulbar, row.respiratory, row.limb) == (13, 5, 4, 1, 3)
    assert row.double_vision == 3
    assert row.instrument_version == MG_ADL_VERSION
    assert row.recall_period_days == 7


BAD_ITEM_VALUES: list[tuple[str, Any]] = [
    ("missing", None),
    ("four", 4),
    ("minus_one", -1),
    ("one_and_a_half", 1.5),
    ("string_one", "1"),
    ("true", True),
]


def test_each_mg_adl_item_missing_or_out_of_range_is_invalid_and_named(
    client: TestClient, session: Session, world: World
) -> None:
    alice = world.alice
    batch = []
    cases = []
    for item in MG_ADL_ITEMS:
        for label, value in BAD_ITEM_VALUES:
            data = dict(MG_ADL)
            if label == "missing":
                del data[item]
            else:
                data[item] = value
            batch.append(entry("mg_adl", data))
            cases.append((item, label))
    results = sync(client, alice.headers, batch)
    for (item, label), result in zip(cases, results, strict=True):
        assert result["status"] == "invalid", (item, label, result)
        assert error_locs(result["errors"]) == [f"data.{item}"], (item, label, result)
        assert result.get("entry") is None
    # No imputation: nothing at all was stored.
    assert count_entries(session, alice.participant.id) == 0
    assert _typed(session, MgAdlResponse, alice.participant.id) == []


def test_a_single_invalid_mg_adl_entry_is_a_422_naming_the_item(
    client: TestClient, session: Session, world: World
) -> None:
    response = post(client, world.alice.headers, entry("mg_adl", mg_adl(breathing=4)))
    body = assert_problem(response, 422)
    assert error_locs(body["errors"]) == ["body.data.breathing"]
    assert "3" in body["errors"][0]["msg"]
    assert count_entries(session, world.alice.participant.id) == 0


# --- vitals ----------------------------------------------------------------------------------


def test_fahrenheit_is_stored_as_celsius(
    client: TestClient, session: Session, world: World
) -> None:
    alice = world.alice
    response = post(
        client,
        alice.headers,
        entry(
            "vitals",
            {
                "temperature_f": 101.3,
                "heart_rate_bpm": 96,
                "spo2_percent": 97,
                "systolic_mmhg": 128,
                "diastolic_mmhg": 82,
                "method": "oral",
            },
        ),
    )
    assert response.status_code == 201, response.text
    (row,) = _typed(session, VitalSign, alice.participant.id)
    assert row.temperature_c == pytest.approx(38.5, abs=0.01)
    assert (row.heart_rate_bpm, row.spo2_percent) == (96, 97)
    assert (row.systolic_mmhg, row.diastolic_mmhg) == (128, 82)


@pytest.mark.parametrize(
    ("data", "loc", "words"),
    [
        ({"temperature_c": 29.9}, "data.temperature_c", "30"),
        ({"temperature_c": 45.1}, "data.temperature_c", "45"),
        ({"temperature_f": 120.0}, "data.temperature_f", "113"),
        ({"heart_rate_bpm": 19}, "data.heart_rate_bpm", "20"),
        ({"heart_rate_bpm": 251}, "data.heart_rate_bpm", "250"),
        ({"spo2_percent": 101}, "data.spo2_percent", "100"),
        ({"spo2_percent": 49}, "data.spo2_percent", "50"),
        ({"systolic_mmhg": 300, "diastolic_mmhg": 80}, "data.systolic_mmhg", "260"),
        ({"systolic_mmhg": 120, "diastolic_mmhg": 10}, "data.diastolic_mmhg", "20"),
        ({"systolic_mmhg": 80, "diastolic_mmhg": 80}, "data", "systolic_mmhg must be higher"),
        ({"systolic_mmhg": 70, "diastolic_mmhg": 90}, "data", "systolic_mmhg must be higher"),
        ({"systolic_mmhg": 120}, "data", "both systolic_mmhg and diastolic_mmhg"),
        ({}, "data", "at least one"),
        ({"method": "oral"}, "data", "at least one"),
        ({"temperature_c": 37.0, "temperature_f": 98.6}, "data", "temperature once"),
        ({"heart_rate_bpm": 72.5}, "data.heart_rate_bpm", "integer"),
    ],
)
def test_implausible_vitals_are_refused_with_a_clear_message(
    client: TestClient,
    session: Session,
    world: World,
    data: dict[str, Any],
    loc: str,
    words: str,
) -> None:
    result = sync_one(client, world.alice.headers, entry("vitals", data))
    assert result["status"] == "invalid", result
    assert loc in error_locs(result["errors"]), result
    assert any(words in e["msg"] for e in result["errors"]), result
    assert _typed(session, VitalSign, world.alice.participant.id) == []


# --- symptoms, doses, notes -----------------------------------------------------------------


def test_symptoms_use_codes_from_the_vocabulary_endpoint(
    client: TestClient, session: Session, world: World
) -> None:
    alice = world.alice
    vocabulary = client.get(f"{APP}/vocabularies/symptoms", headers=alice.headers)
    assert vocabulary.status_code == 200, vocabulary.text
    codes = {s["code"] for s in vocabulary.json()["symptoms"]}
    assert {"fever", "headache", "double_vision"} <= codes

    data = {
        "symptoms": [
            {"code": "fever", "severity": 2, "onset_at": "2026-11-22T06:00:00+01:00"},
            {"code": "double_vision", "severity": 1},
        ],
        "note": "Worse in the evening",
    }
    created = post(client, alice.headers, entry("symptoms", data))
    assert created.status_code == 201, created.text
    assert created.json()["data"] == data
    rows = _typed(session, SymptomReport, alice.participant.id)
    assert sorted((r.code, r.severity) for r in rows) == [("double_vision", 1), ("fever", 2)]


@pytest.mark.parametrize(
    ("symptoms", "words"),
    [
        ([{"code": "werewolf_bite", "severity": 2}], "werewolf_bite"),
        ([{"code": "Fever", "severity": 2}], "vocabulary"),
        ([{"code": "fever", "severity": 0}], "greater than or equal to 1"),
        ([{"code": "fever", "severity": 4}], "less than or equal to 3"),
        ([{"code": "fever", "severity": 1}, {"code": "fever", "severity": 2}], "twice"),
        ([], "at least 1"),
    ],
)
def test_unknown_symptom_codes_and_bad_severities_are_refused(
    client: TestClient,
    session: Session,
    world: World,
    symptoms: list[dict[str, Any]],
    words: str,
) -> None:
    result = sync_one(client, world.alice.headers, entry("symptoms", {"symptoms": symptoms}))
    assert result["status"] == "invalid", result
    assert any(words in e["msg"] for e in result["errors"]), result
    assert count_entries(session, world.alice.participant.id) == 0


def test_medication_dose_is_stored_with_the_formulary_code(
    client: TestClient, session: Session, world: World
) -> None:
    alice = world.alice
    data = {
        "medication": "pyridostigmine",
        "amount": 60,
        "unit": "mg",
        "route": "PO",
        "taken_at": "2026-11-22T07:00:00+01:00",
    }
    results = sync(
        client,
        alice.headers,
        [
            entry("medication_dose", data),
            entry("medication_dose", {**data, "unit": "bucket"}),
            entry("medication_dose", {**data, "amount": 0}),
            entry("medication_dose", {**data, "medication": "Grandma's herbal tea"}),
        ],
    )
    assert [r["status"] for r in results] == ["created", "invalid", "invalid", "created"]
    assert "bucket" in results[1]["errors"][0]["msg"]
    assert error_locs(results[2]["errors"]) == ["data.amount"]
    rows = {r.medication_text: r for r in _typed(session, MedicationDose, alice.participant.id)}
    assert rows["pyridostigmine"].medication_code == "pyridostigmine"
    assert (rows["pyridostigmine"].amount, rows["pyridostigmine"].route) == (60, "PO")
    assert rows["Grandma's herbal tea"].medication_code is None


def test_note_length_is_limited(client: TestClient, session: Session, world: World) -> None:
    results = sync(
        client,
        world.alice.headers,
        [
            entry("note", {"text": "x" * MAX_NOTE_LENGTH}),
            entry("note", {"text": "x" * (MAX_NOTE_LENGTH + 1)}),
            entry("note", {"text": ""}),
        ],
    )
    assert [r["status"] for r in results] == ["created", "invalid", "invalid"]
    assert str(MAX_NOTE_LENGTH) in results[1]["errors"][0]["msg"]
    assert error_locs(results[1]["errors"]) == ["data.text"]


# --- unknown fields (mass assignment) --------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("version", 7),
        ("received_at", "2026-01-01T00:00:00+00:00"),
        ("participant_id", "00000000-0000-0000-0000-000000000001"),
        ("flags", []),
        ("score", {"total": 0}),
        ("diary_date", "2026-11-01"),
        ("study_id", "00000000-0000-0000-0000-000000000001"),
    ],
)
def test_server_owned_fields_in_the_envelope_make_the_entry_invalid(
    client: TestClient, session: Session, world: World, field: str, value: Any
) -> None:
    alice = world.alice
    result = sync_one(client, alice.headers, entry(**{field: value}))
    assert result["status"] == "invalid", result
    assert error_locs(result["errors"]) == [field]
    assert result["errors"][0]["type"] == "extra_forbidden"

    single = post(client, alice.headers, entry(**{field: value}))
    body = assert_problem(single, 422)
    assert f"body.{field}" in {".".join(map(str, e["loc"])) for e in body["errors"]}
    assert count_entries(session, alice.participant.id) == 0


@pytest.mark.parametrize(
    ("kind", "extra"),
    [
        ("mg_adl", {"total": 0}),
        ("vitals", {"temperature_k": 310}),
        ("steps", {"calories": 120}),
        ("note", {"author": "nurse"}),
        ("symptoms", {"grade": 3}),
        ("medication_dose", {"prescriber": "dr"}),
    ],
)
def test_unknown_fields_in_data_make_the_entry_invalid(
    client: TestClient, session: Session, world: World, kind: str, extra: dict[str, Any]
) -> None:
    result = sync_one(client, world.alice.headers, entry(kind, {**SAMPLE_DATA[kind], **extra}))
    assert result["status"] == "invalid", result
    (key,) = extra
    assert error_locs(result["errors"]) == [f"data.{key}"]
    assert count_entries(session, world.alice.participant.id) == 0


def test_unknown_kind_is_invalid(client: TestClient, session: Session, world: World) -> None:
    result = sync_one(client, world.alice.headers, {**entry("note"), "kind": "diet"})
    assert result["status"] == "invalid"
    assert error_locs(result["errors"]) == ["kind"]


# --- duplicates and conflicts ----------------------------------------------------------------


def test_the_exact_same_entry_again_is_200_with_the_same_body(
    client: TestClient, session: Session, world: World
) -> None:
    alice = world.alice
    sent = entry("vitals", {"temperature_c": 38.1}, recorded_at="2026-11-22T08:30:00+01:00")
    first = post(client, alice.headers, sent)
    assert first.status_code == 201, first.text
    again = post(client, alice.headers, sent)
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    # The same instant written with milliseconds, and the number written as 38.10, is the same
    # entry too.
    rewritten = json.dumps({**sent, "recorded_at": "2026-11-22T08:30:00.000+01:00"}).replace(
        "38.1", "38.10"
    )
    assert "38.10" in rewritten
    same = client.post(
        ENTRIES, content=rewritten, headers={**alice.headers, "Content-Type": "application/json"}
    )
    assert same.status_code == 200, same.text
    assert same.json() == first.json()
    assert count_entries(session, alice.participant.id) == 1


def test_same_id_with_other_content_is_a_409_kept_for_review_original_unchanged(
    client: TestClient, session: Session, world: World
) -> None:
    alice = world.alice
    original = entry("mg_adl", MG_ADL)
    first = post(client, alice.headers, original)
    assert first.status_code == 201, first.text

    changed = {**original, "data": mg_adl(talking=3)}
    response = post(client, alice.headers, changed)
    assert_problem(response, 409)

    (conflict,) = conflicts(session, alice.participant.id)
    assert str(conflict.client_entry_id) == original["id"]
    assert conflict.payload["data"] == mg_adl(talking=3)
    assert conflict.payload["id"] == original["id"]
    assert conflict.status == "open"

    read = client.get(f"{ENTRIES}/{original['id']}", headers=alice.headers).json()
    assert read == first.json()
    assert read["data"]["talking"] == 1
    assert read["version"] == 1
    assert count_entries(session, alice.participant.id) == 1

    # In a sync the same change is a per-item `conflict`, recorded again; nothing overwritten.
    (result,) = sync(
        client, alice.headers, [{**original, "recorded_at": "2026-11-22T09:00:00+01:00"}]
    )
    assert result["status"] == "conflict"
    assert len(conflicts(session, alice.participant.id)) == 2
    read = client.get(f"{ENTRIES}/{original['id']}", headers=alice.headers).json()
    assert read["recorded_at"] == original["recorded_at"]


def test_entry_ids_are_per_participant(client: TestClient, session: Session, world: World) -> None:
    """Bob's phone reusing the id of Alice's entry stores Bob's own entry, never touches Alice's."""
    sent = entry("note", {"text": "mine"})
    assert post(client, world.alice.headers, sent).status_code == 201
    bob_version = {**sent, "data": {"text": "bob's"}}
    response = post(client, world.bob.headers, bob_version)
    assert response.status_code == 201, response.text
    assert response.json()["participant_id"] == world.bob.id
    alice_read = client.get(f"{ENTRIES}/{sent['id']}", headers=world.alice.headers).json()
    assert alice_read["data"] == {"text": "mine"}
    assert conflicts(session, world.alice.participant.id) == []


# --- steps -------------------------------------------------------------------------------------


def test_a_resent_step_total_supersedes_per_date_and_source(
    client: TestClient, session: Session, world: World
) -> None:
    alice = world.alice
    day = "2026-11-21"
    first = sync(
        client,
        alice.headers,
        [
            entry("steps", {"date": day, "count": 9000, "source": "phone"}),
            entry(
                "steps",
                {
                    "date": day,
                    "count": 7000,
                    "source": "watch",
                    "intervals": [
                        {
                            "start": "2026-11-21T08:00:00+01:00",
                            "end": "2026-11-21T09:00:00+01:00",
                            "count": 3000,
                        }
                    ],
                },
            ),
        ],
    )
    assert [r["status"] for r in first] == ["created", "created"]
    # Later the phone re-sends its corrected total for the same day.
    resent = sync_one(
        client, alice.headers, entry("steps", {"date": day, "count": 5000, "source": "phone"})
    )
    assert resent["status"] == "created"

    session.expire_all()
    rows = session.exec(
        select(StepCount).where(StepCount.participant_id == alice.participant.id)
    ).all()
    assert sorted((r.source, r.count) for r in rows) == [
        ("phone", 5000),
        ("phone", 9000),
        ("watch", 7000),
    ]
    assert {r.step_date for r in rows} == {date(2026, 11, 21)}

    daily = client.get(f"{APP}/steps/daily", params={"from": day, "to": day}, headers=alice.headers)
    assert daily.status_code == 200, daily.text
    (value,) = daily.json()
    # The phone's newest total (5000) replaced 9000; the watch is kept apart and now the largest.
    assert value["sources"] == {"phone": 5000, "watch": 7000}
    assert value["count"] == 7000
    assert value["source"] == "watch"


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        ({"date": "2026-11-21", "count": 100, "source": "phone app"}, "data.source"),
        ({"date": "2026-11-21", "count": 100}, "data.source"),
        ({"date": "21.11.2026", "count": 100, "source": "phone"}, "data.date"),
        ({"date": "2026-01-04", "count": 100, "source": "phone"}, "data.date"),
        (
            {
                "date": "2026-11-21",
                "count": 100,
                "source": "phone",
                "intervals": [
                    {
                        "start": "2026-11-21T09:00:00+01:00",
                        "end": "2026-11-21T08:00:00+01:00",
                        "count": 10,
                    }
                ],
            },
            "data.intervals.0",
        ),
    ],
)
def test_invalid_steps_are_refused(
    client: TestClient, session: Session, world: World, data: dict[str, Any], loc: str
) -> None:
    result = sync_one(client, world.alice.headers, entry("steps", data))
    assert result["status"] == "invalid", result
    assert loc in error_locs(result["errors"]), result
    assert count_entries(session, world.alice.participant.id) == 0
