"""Safety signals end to end: raised in the writer's transaction, deduplicated, escalated once.

Issue 6 "Done when": a sync with a fever two days after a recorded infusion produces one CRS
signal with raised priority in the same request; three more fevers that day produce no new
alert; SpO2 89 % escalates it once. Rules: instruments.md 6.1, 6.3, 1.8; api-contract.md
"Signals".
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from app.alerts.models import Alert
from app.audit.models import AuditEvent
from app.safety.models import SafetyFinding, SafetyPrompt, SafetySignal
from tests.factories import bearer, create_participant, create_study, participant_token, staff_token

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")
APP = "/app/v1"
PORTAL = "/portal/v1"
INFUSION = {
    "product": "blinatumomab",
    "dose": 9,
    "unit": "mcg/day",
    "started_at": "2026-11-20T08:00:00+01:00",
    "cycle": 1,
}


def at(text: str) -> str:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN).isoformat()


def entry(kind: str, data: dict[str, Any], recorded: str) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "kind": kind,
        "recorded_at": at(recorded),
        "time_zone": "Europe/Berlin",
        "data": data,
    }


def fever(recorded: str, celsius: float = 38.6) -> dict[str, Any]:
    return entry("vitals", {"temperature_c": celsius}, recorded)


MG_ADL_CALM = {
    "talking": 0,
    "chewing": 0,
    "swallowing": 0,
    "breathing": 0,
    "brushing_teeth_or_combing_hair": 1,
    "arising_from_chair": 1,
    "double_vision": 1,
    "eyelid_droop": 1,
}


@pytest.fixture
def clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=True):
        yield


@pytest.fixture
def world(session: Session, clock: None) -> dict[str, Any]:
    study, sites = create_study(session)
    participant, _ = create_participant(
        session, study=study, site=sites["X"], enrolled_on=date(2026, 11, 2)
    )
    return {
        "study": study,
        "participant": participant,
        "pid": participant.id,
        "app": bearer(participant_token(participant, ttl=3600)),
        "inv": bearer(staff_token(session, role="investigator", study=study, site=sites["X"])),
        "monitor": bearer(staff_token(session, role="monitor", study=study)),
        "other": bearer(staff_token(session, role="investigator", study=study, site=sites["Y"])),
    }


def sync(client: TestClient, world: dict[str, Any], *entries: dict[str, Any]) -> None:
    answer = client.post(f"{APP}/diary/sync", json={"entries": list(entries)}, headers=world["app"])
    assert answer.status_code == 200, answer.text
    assert {r["status"] for r in answer.json()["results"]} == {"created"}, answer.text


def signals(session: Session, pid: uuid.UUID) -> list[SafetySignal]:
    session.expire_all()
    return list(session.exec(select(SafetySignal).where(SafetySignal.participant_id == pid)).all())


def alerts(session: Session, pid: uuid.UUID) -> list[Alert]:
    return list(
        session.exec(
            select(Alert)
            .where(Alert.participant_id == pid, col(Alert.type).startswith("safety."))
            .order_by(col(Alert.created_at))
        ).all()
    )


def record_infusion(client: TestClient, world: dict[str, Any]) -> None:
    answer = client.post(
        f"{PORTAL}/participants/{world['pid']}/administrations", json=INFUSION, headers=world["inv"]
    )
    assert answer.status_code == 201, answer.text


def test_fever_after_infusion_one_signal_no_storm_one_escalation(
    client: TestClient, session: Session, world: dict[str, Any]
) -> None:
    pid = world["pid"]
    record_infusion(client, world)
    sync(client, world, fever("2026-11-22T08:00"))
    # In the same request: the signal, its finding, its alert (committed with the entry).
    [signal] = signals(session, pid)
    assert (signal.category, signal.priority, signal.status) == ("crs", "high", "open")
    assert signal.in_risk_window
    assert signal.days_since_dose == 2
    assert signal.first_rule == "crs.fever@1"
    [raised] = alerts(session, pid)
    assert (raised.type, raised.priority) == ("safety.signal.raised", "high")
    assert (raised.data["category"], raised.data["signal_id"]) == ("crs", str(signal.id))
    assert raised.data["evidence"][0]["value"] == 38.6

    # Three more fevers that day: they join the signal, no new alert.
    for hour in ("09:00", "10:30", "11:45"):
        sync(client, world, fever(f"2026-11-22T{hour}", 38.8))
    [signal] = signals(session, pid)
    assert (signal.finding_count, signal.priority) == (4, "high")
    assert len(alerts(session, pid)) == 1

    # SpO2 89 %: fever with hypoxia, urgent - escalated once.
    sync(client, world, entry("vitals", {"spo2_percent": 89}, "2026-11-22T12:00"))
    [signal] = signals(session, pid)
    assert signal.priority == "urgent"
    escalated = [a for a in alerts(session, pid) if a.type == "safety.signal.escalated"]
    assert [a.priority for a in escalated] == ["urgent"]
    sync(client, world, entry("vitals", {"spo2_percent": 88}, "2026-11-22T12:10"))
    assert len(alerts(session, pid)) == 2
    findings = session.exec(select(SafetyFinding).where(SafetyFinding.signal_id == signal.id)).all()
    assert {f.rule_id for f in findings} == {"crs.fever", "crs.fever_hypoxia"}
    assert [f.effect for f in findings].count("escalated") == 1
    actions = session.exec(
        select(AuditEvent.action).where(AuditEvent.entity_id == str(signal.id))
    ).all()
    assert sorted(actions) == ["safety_signal.escalate", "safety_signal.open"]


def test_fever_outside_the_risk_window_is_routine_and_a_later_dose_raises_it(
    client: TestClient, session: Session, world: dict[str, Any]
) -> None:
    pid = world["pid"]
    sync(client, world, fever("2026-11-22T08:00"))
    [signal] = signals(session, pid)
    assert (signal.priority, signal.in_risk_window) == ("routine", False)
    # The infusion two days earlier is entered late: the fever is now inside its window.
    record_infusion(client, world)
    [signal] = signals(session, pid)
    assert signal.priority == "high"
    assert [a.type for a in alerts(session, pid)] == [
        "safety.signal.raised",
        "safety.signal.escalated",
    ]


def test_single_entry_post_raises_the_signal_at_38_0_not_37_9(
    client: TestClient, session: Session, world: dict[str, Any]
) -> None:
    """instruments.md 6.1 [C]: fever is >= 38.0 C - exactly at the boundary flags."""
    cold = client.post(
        f"{APP}/diary/entries", json=fever("2026-11-22T07:00", 37.9), headers=world["app"]
    )
    assert cold.status_code == 201, cold.text
    assert signals(session, world["pid"]) == []
    hot = client.post(
        f"{APP}/diary/entries", json=fever("2026-11-22T08:00", 38.0), headers=world["app"]
    )
    assert hot.status_code == 201, hot.text
    [signal] = signals(session, world["pid"])
    assert signal.category == "crs"


def test_breathing_3_is_an_urgent_mg_crisis(
    client: TestClient, session: Session, world: dict[str, Any]
) -> None:
    sync(client, world, entry("mg_adl", {**MG_ADL_CALM, "breathing": 3}, "2026-11-22T08:00"))
    [signal] = signals(session, world["pid"])
    assert (signal.category, signal.priority) == ("mg_crisis", "urgent")
    assert [a.priority for a in alerts(session, world["pid"])] == ["urgent"]


def test_fever_like_symptom_prompts_for_a_temperature_until_one_is_recorded(
    client: TestClient, session: Session, world: dict[str, Any]
) -> None:
    sync(
        client,
        world,
        entry("symptoms", {"symptoms": [{"code": "chills", "severity": 2}]}, "2026-11-22T11:00"),
    )
    prompts = client.get(f"{APP}/safety/prompts", headers=world["app"]).json()["items"]
    assert [p["kind"] for p in prompts] == ["temperature"]
    assert signals(session, world["pid"]) == []  # a feeling is not a reading
    sync(client, world, fever("2026-11-22T12:30", 37.4))
    assert client.get(f"{APP}/safety/prompts", headers=world["app"]).json()["items"] == []
    assert session.exec(select(SafetyPrompt)).all()  # the prompt itself is kept


def test_acknowledge_and_dismiss_are_audited_and_scoped(
    client: TestClient, session: Session, world: dict[str, Any]
) -> None:
    sync(client, world, fever("2026-11-22T08:00"))
    [signal] = signals(session, world["pid"])
    url = f"{PORTAL}/safety-signals/{signal.id}"
    study_url = f"{PORTAL}/studies/{world['study'].id}/safety-signals"
    assert client.get(url, headers=world["other"]).status_code == 404
    assert client.get(study_url, headers=world["other"]).json()["items"] == []
    listed = client.get(f"{study_url}?status=open&priority=routine", headers=world["monitor"])
    assert [s["id"] for s in listed.json()["items"]] == [str(signal.id)]
    assert client.post(f"{url}/acknowledge", json={}, headers=world["monitor"]).status_code == 403
    acked = client.post(f"{url}/acknowledge", json={"note": "called"}, headers=world["inv"])
    assert acked.status_code == 200
    assert acked.json()["status"] == "acknowledged"
    assert acked.json()["findings"][0]["rule_id"] == "crs.fever"
    again = client.post(f"{url}/acknowledge", json={}, headers=world["inv"])
    assert again.status_code == 409
    missing = client.post(f"{url}/dismiss", json={}, headers=world["inv"])
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["loc"] == ["body", "reason"]
    dismissed = client.post(
        f"{url}/dismiss", json={"reason": "urinary tract infection"}, headers=world["inv"]
    )
    assert dismissed.json()["status"] == "dismissed"
    actions = session.exec(
        select(AuditEvent.action, AuditEvent.reason).where(AuditEvent.entity_id == str(signal.id))
    ).all()
    assert ("safety_signal.dismiss", "urinary tract infection") in actions
    # A fever after dismissal opens a new signal.
    sync(client, world, fever("2026-11-22T12:00"))
    assert len(signals(session, world["pid"])) == 2


def test_monitor_mode_records_without_alerting(
    client: TestClient, session: Session, clock: None
) -> None:
    study, sites = create_study(
        session,
        safety={
            "risk_windows": [{"after": "each_administration", "start_day": 0, "end_day": 7}],
            "rule_modes": {"crs.fever": "monitor", "mg.breathing": "off"},
        },
    )
    participant, _ = create_participant(
        session, study=study, site=sites["X"], enrolled_on=date(2026, 11, 2)
    )
    world = {"app": bearer(participant_token(participant, ttl=3600))}
    # mg.breathing is off: breathing 3 alone raises nothing.
    sync(client, world, entry("mg_adl", {**MG_ADL_CALM, "breathing": 3}, "2026-11-10T08:30"))
    assert signals(session, participant.id) == []
    # crs.fever is monitored: recorded, not alerted.
    sync(client, world, fever("2026-11-22T08:00"))
    [signal] = signals(session, participant.id)
    assert (signal.category, signal.mode) == ("crs", "monitor")
    assert alerts(session, participant.id) == []
    # An active rule joining it (fever with low SpO2) makes it active and raises its alert.
    sync(client, world, entry("vitals", {"spo2_percent": 89}, "2026-11-22T09:00"))
    [signal] = signals(session, participant.id)
    assert (signal.mode, signal.priority) == ("active", "urgent")
    assert [a.type for a in alerts(session, participant.id)] == ["safety.signal.raised"]


def test_participant_list_counts_open_signals(
    client: TestClient, session: Session, world: dict[str, Any]
) -> None:
    sync(client, world, fever("2026-11-22T08:00"))
    sync(client, world, entry("mg_adl", {**MG_ADL_CALM, "breathing": 2}, "2026-11-22T08:30"))
    rows = client.get(
        f"{PORTAL}/studies/{world['study'].id}/participants", headers=world["inv"]
    ).json()["items"]
    [row] = [r for r in rows if r["id"] == str(world["pid"])]
    assert row["open_signals"] == 2


def test_inbox_unread_counts_and_acknowledging(
    client: TestClient, session: Session, world: dict[str, Any]
) -> None:
    """Issue 6 item 4: the investigators' inbox with unread counts; acknowledging a signal
    marks its alerts read."""
    record_infusion(client, world)
    sync(client, world, fever("2026-11-22T08:00"))
    sync(client, world, entry("mg_adl", {**MG_ADL_CALM, "breathing": 3}, "2026-11-22T08:30"))
    unread = f"{PORTAL}/studies/{world['study'].id}/alerts/unread"
    counts = client.get(unread, headers=world["inv"]).json()
    # fever (high, raised) + fever with breathing 3 as hypoxia evidence (urgent, escalated)
    # + the MG crisis (urgent, raised)
    assert counts["total"] == 3
    assert counts["by_priority"] == {"routine": 0, "high": 1, "urgent": 2}
    assert counts["by_type"] == {"safety.signal.raised": 2, "safety.signal.escalated": 1}
    assert client.get(unread, headers=world["other"]).json()["total"] == 0

    crisis = next(s for s in signals(session, world["pid"]) if s.category == "mg_crisis")
    [crisis_alert] = [a for a in alerts(session, world["pid"]) if a.subject_id == str(crisis.id)]
    url = f"{PORTAL}/alerts/{crisis_alert.id}/acknowledge"
    assert client.post(url, headers=world["other"]).status_code == 404
    read = client.post(url, headers=world["inv"])
    assert read.status_code == 200
    assert read.json()["acknowledged_at"] is not None
    assert client.get(unread, headers=world["inv"]).json()["total"] == 2

    crs = next(s for s in signals(session, world["pid"]) if s.category == "crs")
    answer = client.post(
        f"{PORTAL}/safety-signals/{crs.id}/acknowledge", json={}, headers=world["inv"]
    )
    assert answer.status_code == 200
    assert client.get(unread, headers=world["inv"]).json()["total"] == 0


def test_mg_adl_history_baseline_and_previous_through_the_write_path(
    client: TestClient, session: Session, world: dict[str, Any]
) -> None:
    """The MG rules read the stored history: the protocol's baseline (last MG-ADL on or before
    day 0; instruments.md 1.7 worsening, a protocol delta) and the previous MG-ADL (1.8: a
    swallowing item newly 3)."""
    record_infusion(client, world)  # day 0 = 2026-11-20
    base = {**MG_ADL_CALM}  # total 4
    sync(client, world, entry("mg_adl", base, "2026-11-19T09:00"))
    assert signals(session, world["pid"]) == []
    worse = {**MG_ADL_CALM, "arising_from_chair": 2, "eyelid_droop": 2}  # total 6 = base + 2
    sync(client, world, entry("mg_adl", worse, "2026-11-21T09:00"))
    [signal] = signals(session, world["pid"])
    assert (signal.category, signal.priority, signal.first_rule) == (
        "mg_worsening",
        "routine",
        "mg.total_worsening@1",
    )
    tube = {**worse, "swallowing": 3}
    sync(client, world, entry("mg_adl", tube, "2026-11-22T09:00"))
    [signal] = signals(session, world["pid"])
    assert signal.priority == "urgent"  # newly 3 against the previous entry: escalated
    rules_seen = {e["rule"] for e in signal.evidence}
    assert {"mg.total_worsening", "mg.feeding_tube"} <= rules_seen


def test_a_write_without_the_safety_hooks_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process that never installed the safety rules must not store diary data silently
    without them (app/hooks.py; the demo loader once did)."""
    from app.core import followups

    monkeypatch.setattr(followups, "HOOKS", [])
    written = followups.Written(participant=None, protocol=None, entries=())
    with pytest.raises(followups.HooksNotInstalled):
        followups.followups(written)
