"""The safety step on diary capture's production paths (psycopg on PostgreSQL, sqlite3 on
SQLite), where requests really commit: the signal, its finding and its alert are committed with
the entry before the 2xx, batches and single entries alike, and concurrent fevers of one
participant still make one signal (the per-participant advisory lock, app/core/followups.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app.alerts.models import Alert
from app.core.config import get_settings
from app.main import create_app
from app.participants.models import Participant
from app.safety.models import SafetyFinding, SafetyPrompt, SafetySignal
from tests.factories import bearer, create_participant, create_study, participant_token
from tests.scratch_database import scratch_engines


@pytest.fixture(scope="module")
def scratch_engine() -> Iterator[Engine]:
    with scratch_engines(1) as (engine,):
        yield engine


@pytest.fixture
def client(scratch_engine: Engine) -> Iterator[TestClient]:
    app = create_app(get_settings(), engine=scratch_engine)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def participant(scratch_engine: Engine) -> Participant:
    with Session(scratch_engine, expire_on_commit=False) as session:
        study, sites = create_study(session)
        participant, _ = create_participant(
            session,
            study=study,
            site=sites["X"],
            enrolled_on=(datetime.now(UTC) - timedelta(days=10)).date(),
        )
        session.commit()
    return participant


def _vitals(minutes_ago: float, **data: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "kind": "vitals",
        "recorded_at": (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat(),
        "time_zone": "Europe/Berlin",
        "data": data,
    }


def _committed(engine: Engine, participant: Participant) -> dict[str, Any]:
    with Session(engine) as session:
        signals = session.exec(
            select(SafetySignal).where(SafetySignal.participant_id == participant.id)
        ).all()
        findings = session.exec(
            select(SafetyFinding).where(SafetyFinding.participant_id == participant.id)
        ).all()
        alerts = session.exec(
            select(Alert)
            .where(Alert.participant_id == participant.id)
            .order_by(col(Alert.created_at))
        ).all()
        prompts = session.exec(
            select(SafetyPrompt).where(SafetyPrompt.participant_id == participant.id)
        ).all()
    return {"signals": signals, "findings": findings, "alerts": alerts, "prompts": prompts}


def test_signal_alert_and_escalation_commit_with_the_entries(
    client: TestClient, scratch_engine: Engine, participant: Participant
) -> None:
    headers = bearer(participant_token(participant))
    first = client.post(
        "/app/v1/diary/entries", json=_vitals(60, temperature_c=38.4), headers=headers
    )
    assert first.status_code == 201, first.text
    found = _committed(scratch_engine, participant)
    [signal] = found["signals"]
    assert (signal.category, signal.priority) == ("crs", "routine")
    assert [a.type for a in found["alerts"]] == ["safety.signal.raised"]

    # A batch with more fevers (more than the COPY threshold of rows on PostgreSQL) and a low
    # SpO2: one escalation, nothing else.
    batch = [_vitals(50 - i * 0.5, temperature_c=38.6) for i in range(40)]
    batch.append(_vitals(5, spo2_percent=89))
    synced = client.post("/app/v1/diary/sync", json={"entries": batch}, headers=headers)
    assert synced.status_code == 200, synced.text
    assert {r["status"] for r in synced.json()["results"]} == {"created"}
    found = _committed(scratch_engine, participant)
    [signal] = found["signals"]
    assert signal.priority == "urgent"
    assert signal.finding_count == len(found["findings"]) == 42
    assert [a.type for a in found["alerts"]] == ["safety.signal.raised", "safety.signal.escalated"]

    # The same batch again: duplicates, no new finding.
    again = client.post("/app/v1/diary/sync", json={"entries": batch}, headers=headers)
    assert {r["status"] for r in again.json()["results"]} == {"duplicate"}
    assert len(_committed(scratch_engine, participant)["findings"]) == 42


def test_a_prompt_is_committed_and_answered(
    client: TestClient, scratch_engine: Engine, participant: Participant
) -> None:
    headers = bearer(participant_token(participant))
    chills = {
        "id": str(uuid.uuid4()),
        "kind": "symptoms",
        "recorded_at": (datetime.now(UTC) - timedelta(minutes=30)).isoformat(),
        "time_zone": "Europe/Berlin",
        "data": {"symptoms": [{"code": "chills", "severity": 2}]},
    }
    assert client.post("/app/v1/diary/entries", json=chills, headers=headers).status_code == 201
    assert len(_committed(scratch_engine, participant)["prompts"]) == 1
    prompts = client.get("/app/v1/safety/prompts", headers=headers).json()["items"]
    assert [p["kind"] for p in prompts] == ["temperature"]
    reading = _vitals(1, temperature_c=37.2)
    assert client.post("/app/v1/diary/entries", json=reading, headers=headers).status_code == 201
    assert client.get("/app/v1/safety/prompts", headers=headers).json()["items"] == []


def test_the_outbox_rows_commit_with_the_alert_on_the_production_path(
    client: TestClient, scratch_engine: Engine, participant: Participant
) -> None:
    """Issue 7 item 3 / checklist E29 on the driver paths: a fever's alert and one delivery per
    matching endpoint are in the same commit as the entry."""
    from app.webhooks import signing
    from app.webhooks.models import WebhookDelivery, WebhookEndpoint

    with Session(scratch_engine) as session:
        endpoint = WebhookEndpoint(
            study_id=participant.study_id,
            url="https://receiver.example.org/hook",
            event_types=["safety.signal.escalated", "safety.signal.raised"],
            secret=signing.new_secret(),
            created_by="tests",
        )
        session.add(endpoint)
        session.commit()
        endpoint_id = endpoint.id
    headers = bearer(participant_token(participant))
    single = client.post(
        "/app/v1/diary/entries", json=_vitals(60, temperature_c=38.4), headers=headers
    )
    assert single.status_code == 201, single.text
    batch = [_vitals(50 - i, temperature_c=38.6) for i in range(70)]  # COPY on PostgreSQL
    batch.append(_vitals(5, spo2_percent=88))
    assert (
        client.post("/app/v1/diary/sync", json={"entries": batch}, headers=headers).status_code
        == 200
    )
    found = _committed(scratch_engine, participant)
    with Session(scratch_engine) as session:
        rows = session.exec(
            select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
        ).all()
    assert sorted(r.event_type for r in rows) == ["safety.signal.escalated", "safety.signal.raised"]
    assert {r.alert_id for r in rows} == {a.id for a in found["alerts"]}


def test_mg_adl_history_is_read_on_the_production_path(
    client: TestClient, scratch_engine: Engine, participant: Participant
) -> None:
    """The MG rules' history read (previous MG-ADL, baseline window) on the driver paths: a
    swallowing item newly 3 against the previous entry is an urgent finding."""
    headers = bearer(participant_token(participant))
    items = dict.fromkeys(
        (
            "talking",
            "chewing",
            "swallowing",
            "breathing",
            "brushing_teeth_or_combing_hair",
            "arising_from_chair",
            "double_vision",
            "eyelid_droop",
        ),
        1,
    )
    for minutes, swallowing in ((90, 1), (30, 3)):
        body = {
            "id": str(uuid.uuid4()),
            "kind": "mg_adl",
            "recorded_at": (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat(),
            "time_zone": "Europe/Berlin",
            "data": {**items, "swallowing": swallowing},
        }
        answer = client.post("/app/v1/diary/entries", json=body, headers=headers)
        assert answer.status_code == 201, answer.text
    found = _committed(scratch_engine, participant)
    rules_fired = {f.rule_id for f in found["findings"]}
    assert "mg.feeding_tube" in rules_fired
    assert {s.priority for s in found["signals"] if s.category == "mg_worsening"} == {"urgent"}


def test_a_stored_spo2_just_under_the_threshold_is_hypoxia_evidence(
    client: TestClient, scratch_engine: Engine, participant: Participant
) -> None:
    """Review finding: the typed column rounds SpO2 (91.6 -> 92); a stored 91.6 followed by a
    fever is still fever with hypoxia (instruments.md 6.1), whatever the order."""
    headers = bearer(participant_token(participant))
    for body in (_vitals(60, spo2_percent=91.6), _vitals(30, temperature_c=38.6)):
        assert client.post("/app/v1/diary/entries", json=body, headers=headers).status_code == 201
    [signal] = _committed(scratch_engine, participant)["signals"]
    assert (signal.category, signal.priority) == ("crs", "urgent")


def test_a_new_sign_finds_the_stored_fever_and_its_signs(
    client: TestClient, scratch_engine: Engine, participant: Participant
) -> None:
    """The stored signs are read only with a fever to go with them (engine._relevant): a low
    SpO2 and a low pressure with no fever anywhere raise nothing; once a fever is stored, a new
    low pressure finds it (fever with hypotension, citing the fever and the new reading)."""
    headers = bearer(participant_token(participant))
    first_low_bp = _vitals(80, systolic_mmhg=85, diastolic_mmhg=55)
    for body in (_vitals(90, spo2_percent=88), first_low_bp):
        assert client.post("/app/v1/diary/entries", json=body, headers=headers).status_code == 201
    assert _committed(scratch_engine, participant)["signals"] == []
    fever = _vitals(70, temperature_c=38.7)
    assert client.post("/app/v1/diary/entries", json=fever, headers=headers).status_code == 201
    low_bp = _vitals(10, systolic_mmhg=82, diastolic_mmhg=50)
    assert client.post("/app/v1/diary/entries", json=low_bp, headers=headers).status_code == 201
    found = _committed(scratch_engine, participant)
    [signal] = found["signals"]
    assert (signal.category, signal.priority) == ("crs", "urgent")
    latest = [
        {str(item["entry_id"]) for item in f.evidence}
        for f in found["findings"]
        if f.rule_id == "crs.fever_hypotension"
        and low_bp["id"] in {str(item["entry_id"]) for item in f.evidence}
    ]
    assert latest
    assert all({fever["id"], first_low_bp["id"]} <= cited for cited in latest)


def test_the_baseline_counts_new_entries_in_its_window_on_every_path(
    client: TestClient, scratch_engine: Engine, participant: Participant
) -> None:
    """Review finding: PostgreSQL reads before it inserts, SQLite after; a sync carrying the
    baseline MG-ADL and a worse one gives the same worsening on both."""
    with Session(scratch_engine) as session:
        stored = session.get(Participant, participant.id)
        assert stored is not None
        stored.day0_date = (datetime.now(UTC) - timedelta(days=3)).date()
        session.add(stored)
        session.commit()
    headers = bearer(participant_token(participant))
    keys = (
        "talking",
        "chewing",
        "swallowing",
        "breathing",
        "brushing_teeth_or_combing_hair",
        "arising_from_chair",
        "double_vision",
        "eyelid_droop",
    )
    calm = dict.fromkeys(keys, 0) | {"double_vision": 1, "eyelid_droop": 1}  # total 2
    worse = calm | {"arising_from_chair": 2, "brushing_teeth_or_combing_hair": 1}  # total 5

    def mg(days_ago: float, items: dict[str, int]) -> dict[str, Any]:
        return {
            "id": str(uuid.uuid4()),
            "kind": "mg_adl",
            "recorded_at": (datetime.now(UTC) - timedelta(days=days_ago)).isoformat(),
            "time_zone": "UTC",
            "data": items,
        }

    batch = [mg(4, calm), mg(1, worse)]
    synced = client.post("/app/v1/diary/sync", json={"entries": batch}, headers=headers)
    assert {r["status"] for r in synced.json()["results"]} == {"created"}, synced.text
    found = _committed(scratch_engine, participant)
    assert {f.rule_id for f in found["findings"]} == {"mg.total_worsening"}
