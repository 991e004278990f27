"""Pure tests of findings -> signals (app/safety/episodes.py ``merge``): no database.

Sources: issue 6 item 2 (signals and episodes: dedup window, escalation with a new alert, no alert
storms, rule modes active / monitor / off), the episodes.py module rules, api-contract.md
(Signals; Webhooks: codes only, event types ``safety.signal.raised`` / ``.escalated``) and
protocol.py ``SafetySettings.signal_dedup_hours``.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.alerts.service import CODE
from app.safety.episodes import (
    MAX_SIGNAL_EVIDENCE,
    SAFETY_ACTOR,
    Changes,
    OpenSignal,
    Subject,
    merge,
)
from app.safety.rules import (
    PRIORITY_RANK,
    RULES,
    Category,
    Context,
    Dose,
    Finding,
    Observation,
    Priority,
    evaluate,
)
from app.studies.protocol import RiskWindow, RuleMode, SafetySettings

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=5)
HOUR = timedelta(hours=1)
SUBJECT = Subject(participant_id=uuid.uuid4(), study_id=uuid.uuid4(), site_id=uuid.uuid4())
CATEGORY: dict[str, Category] = {
    "crs.fever": "crs",
    "crs.fever_hypotension": "crs",
    "crs.fever_hypoxia": "crs",
    "crs.constitutional": "crs",
    "icans.neuro_symptom": "icans",
    "icans.seizure": "icans",
    "mg.breathing": "mg_crisis",
    "mg.feeding_tube": "mg_worsening",
    "mg.bulbar_with_breathing": "mg_worsening",
    "mg.bulbar_rise": "mg_worsening",
    "mg.total_worsening": "mg_worsening",
}

# --- builders ---------------------------------------------------------------------------------


def finding(
    rule_id: str = "crs.fever",
    priority: Priority | None = "routine",
    at: datetime = T0,
    entries: Sequence[uuid.UUID] | None = None,
    *,
    in_risk_window: bool = False,
    days_since_dose: int | None = None,
) -> Finding:
    entry_ids = [uuid.uuid4()] if entries is None else list(entries)
    return Finding(
        rule_id=rule_id,
        rule_version=RULES[rule_id],
        category=CATEGORY[rule_id],
        priority=priority,
        evidence_at=at,
        evidence=tuple(
            {"entry_id": str(e), "kind": "vitals", "field": "temperature_c", "value": 38.4}
            for e in entry_ids
        ),
        in_risk_window=in_risk_window,
        days_since_dose=days_since_dose,
    )


def config(modes: Mapping[str, RuleMode] | None = None, **overrides: Any) -> SafetySettings:
    return SafetySettings(rule_modes=dict(modes or {}), **overrides)


def run(
    findings: Sequence[Finding],
    signals: Sequence[OpenSignal] = (),
    *,
    s: SafetySettings | None = None,
    join_only: bool = False,
) -> Changes:
    # Fresh objects per call, as the write path reads them from safety_signal each time
    # (merge updates the OpenSignal objects it is given).
    return merge(
        list(findings),
        copy.deepcopy(list(signals)),
        settings=s or config(),
        subject=SUBJECT,
        now=NOW,
        join_only=join_only,
    )


def stored(changes: Changes, signals: Sequence[OpenSignal] = ()) -> list[OpenSignal]:
    """The joinable signals after ``changes`` were written (what the next request reads)."""
    by_id = {s.id: s for s in signals}
    out = [
        OpenSignal(
            id=s.id,
            category=s.category,
            priority=s.priority,
            mode=s.mode,
            first_evidence_at=s.first_evidence_at,
            last_evidence_at=s.last_evidence_at,
            finding_count=s.finding_count,
            evidence=list(s.evidence),
        )
        for s in by_id.values()
    ]
    for update in changes.updates:
        signal = next(s for s in out if s.id == update["id"])
        for key in ("priority", "mode", "first_evidence_at", "last_evidence_at", "finding_count"):
            setattr(signal, key, update[key])
        signal.evidence = list(update["evidence"])
    out += [OpenSignal.of(row) for row in changes.signals]
    return out


def signal(changes: Changes) -> Any:
    assert len(changes.signals) == 1, changes.signals
    return changes.signals[0]


def alert_types(changes: Changes) -> list[str]:
    return [a["type"] for a in changes.alerts]


def effects(changes: Changes) -> list[str]:
    return [f["effect"] for f in changes.findings]


def open_one(f: Finding | None = None, s: SafetySettings | None = None) -> list[OpenSignal]:
    return stored(run([f or finding()], s=s))


# --- opening a signal ---------------------------------------------------------------------------


def test_a_new_finding_opens_a_signal_with_an_audit_row_and_a_raised_alert() -> None:
    """Issue 6 item 2: a signal has a category, a priority, the rule id and version and the
    evidence; issue 6 item 4: one alert per raised signal (api-contract.md safety.signal.raised)."""
    entry = uuid.uuid4()
    f = finding("crs.fever", "high", entries=[entry], in_risk_window=True, days_since_dose=2)
    changes = run([f])
    row = signal(changes)
    assert row["category"] == "crs"
    assert row["priority"] == "high"
    assert row["status"] == "open"
    assert row["mode"] == "active"
    assert row["first_rule"] == f"crs.fever@{RULES['crs.fever']}"
    assert (row["first_evidence_at"], row["last_evidence_at"], row["opened_at"]) == (T0, T0, NOW)
    assert row["finding_count"] == 1
    assert (row["in_risk_window"], row["days_since_dose"]) == (True, 2)
    assert row["participant_id"] == SUBJECT.participant_id
    assert (row["study_id"], row["site_id"]) == (SUBJECT.study_id, SUBJECT.site_id)
    assert row["evidence"] == [{**f.evidence[0], "rule": "crs.fever"}]
    assert changes.updates == []

    (finding_row,) = changes.findings
    assert finding_row["signal_id"] == row["id"]
    assert finding_row["effect"] == "opened"
    assert (finding_row["rule_id"], finding_row["rule_version"]) == ("crs.fever", "1")
    assert finding_row["priority"] == "high"

    (audit_row,) = changes.audit
    assert audit_row["action"] == "safety_signal.open"
    assert audit_row["entity_type"] == "safety_signal"
    assert audit_row["entity_id"] == str(row["id"])
    assert audit_row["actor_id"] == SAFETY_ACTOR.id
    assert audit_row["changes"]["priority"] == {"before": None, "after": "high"}

    (alert,) = changes.alerts
    assert alert["type"] == "safety.signal.raised"
    assert alert["priority"] == "high"
    assert alert["dedup_key"] == f"safety.signal.raised:{row['id']}"
    assert (alert["subject_type"], alert["subject_id"]) == ("safety_signal", str(row["id"]))
    assert alert["data"]["category"] == "crs"
    assert alert["data"]["rule_id"] == "crs.fever"
    assert alert["data"]["in_risk_window"] is True
    assert alert["data"]["days_since_dose"] == 2
    assert bool(changes)


def test_alert_data_carries_codes_and_identifiers_only() -> None:
    """api-contract.md Webhooks: identifiers, codes, grades and priorities only - no free text;
    the evidence keeps entry ids, fields, values, codes and severities."""
    f = Finding(
        rule_id="crs.fever_hypotension",
        rule_version="1",
        category="crs",
        priority="urgent",
        evidence_at=T0,
        evidence=(
            {
                "entry_id": str(uuid.uuid4()),
                "kind": "vitals",
                "field": "temperature_c",
                "value": 39,
            },
            {
                "entry_id": str(uuid.uuid4()),
                "kind": "symptoms",
                "code": "dizziness_or_fainting",
                "severity": 2,
            },
        ),
    )
    (alert,) = run([f]).alerts
    data = alert["data"]
    assert [set(item) for item in data["evidence"]] == [
        {"entry_id", "field", "value"},
        {"entry_id", "code", "severity"},
    ]

    def strings(value: Any) -> list[str]:
        if isinstance(value, str):
            return [value]
        if isinstance(value, dict):
            return [s for k, v in value.items() for s in [str(k), *strings(v)]]
        if isinstance(value, list):
            return [s for v in value for s in strings(v)]
        return []

    assert all(CODE.fullmatch(s) for s in strings(data))
    assert data["participant_id"] == str(SUBJECT.participant_id)


def test_evidence_only_finding_never_opens_a_signal() -> None:
    """episodes.py: evidence-only findings (priority None) only ever join (issue 6: constitutional
    features raise the signal's evidence, not its grade)."""
    changes = run([finding("crs.constitutional", None)])
    assert not changes
    assert (changes.signals, changes.findings, changes.alerts, changes.audit) == ([], [], [], [])


def test_off_rule_findings_are_dropped() -> None:
    """Issue 6 item 2 / protocol.py rule_modes: off skips the rule."""
    assert not run([finding("crs.fever")], s=config({"crs.fever": "off"}))
    signals = open_one()
    assert not run([finding("crs.fever", "urgent")], signals, s=config({"crs.fever": "off"}))


# --- joining within the dedup window ----------------------------------------------------------


def test_a_second_finding_within_the_window_joins_without_an_alert() -> None:
    """Issue 6 item 2: findings of the same participant and category inside the dedup window join
    one open episode - no alert storms."""
    signals = open_one()
    f = finding("crs.fever", "routine", T0 + 3 * HOUR)
    changes = run([f], signals)
    assert changes.signals == []
    assert changes.alerts == []
    assert changes.audit == []
    assert effects(changes) == ["joined"]
    assert changes.findings[0]["signal_id"] == signals[0].id
    (update,) = changes.updates
    assert update["id"] == signals[0].id
    assert update["finding_count"] == 2
    assert update["priority"] == "routine"
    assert (update["first_evidence_at"], update["last_evidence_at"]) == (T0, T0 + 3 * HOUR)
    assert update["evidence"][-1] == {**f.evidence[0], "rule": "crs.fever"}
    assert update["updated_at"] == NOW


def test_issue_example_three_more_fevers_that_day_raise_no_new_alert() -> None:
    """Issue 6 Done when: three more fevers that day produce no new alert."""
    signals = open_one(finding("crs.fever", "high"))
    for hours in (2, 5, 9):
        changes = run([finding("crs.fever", "high", T0 + hours * HOUR)], signals)
        assert changes.alerts == []
        assert changes.signals == []
        signals = stored(changes, signals)
    assert len(signals) == 1
    assert signals[0].finding_count == 4


@pytest.mark.parametrize(
    ("hours", "gap", "joins"),
    [
        (24, timedelta(hours=24), True),
        (24, timedelta(hours=24, seconds=1), False),
        (24, -timedelta(hours=24), True),
        (24, -timedelta(hours=24, seconds=1), False),
        (6, timedelta(hours=6), True),
        (6, timedelta(hours=6, seconds=1), False),
    ],
)
def test_dedup_window_edges(hours: int, gap: timedelta, joins: bool) -> None:
    """protocol.py signal_dedup_hours (default 24): within the window a finding joins, outside
    it opens a new signal (with its own raised alert)."""
    s = config(signal_dedup_hours=hours)
    signals = open_one(s=s)
    changes = run([finding("crs.fever", "routine", T0 + gap)], signals, s=s)
    if joins:
        assert (effects(changes), changes.alerts) == (["joined"], [])
    else:
        assert effects(changes) == ["opened"]
        assert signal(changes)["id"] != signals[0].id
        assert alert_types(changes) == ["safety.signal.raised"]
        assert changes.updates == []


def test_the_window_runs_from_the_signals_latest_evidence() -> None:
    """models.py SafetySignal: the dedup window runs from the latest evidence - a signal with
    daily fevers stays one episode."""
    signals = open_one()
    for day in (1, 2, 3):
        changes = run([finding("crs.fever", "routine", T0 + day * timedelta(hours=23))], signals)
        assert effects(changes) == ["joined"]
        signals = stored(changes, signals)
    assert len(signals) == 1


def test_a_finding_joins_the_signal_with_the_latest_evidence() -> None:
    """episodes.merge: of two joinable signals of the category, the most recent one."""
    older = open_one(finding("crs.fever", "routine", T0))
    newer = open_one(finding("crs.fever", "routine", T0 + 30 * HOUR))
    changes = run([finding("crs.fever", "routine", T0 + 20 * HOUR)], older + newer)
    assert changes.findings[0]["signal_id"] == newer[0].id


def test_categories_never_mix() -> None:
    """Issue 6 item 2: signals of the same participant *and category* join one episode."""
    signals = open_one(finding("crs.fever"))
    changes = run(
        [
            finding("icans.neuro_symptom", "routine", T0 + HOUR),
            finding("mg.breathing", "urgent", T0 + HOUR),
            finding("mg.total_worsening", "routine", T0 + HOUR),
        ],
        signals,
    )
    assert sorted(r["category"] for r in changes.signals) == ["icans", "mg_crisis", "mg_worsening"]
    assert changes.updates == []
    assert alert_types(changes) == ["safety.signal.raised"] * 3


def test_evidence_only_finding_joins_an_open_signal() -> None:
    """episodes.py: evidence-only findings join; they change neither priority nor alerts
    (issue 6: constitutional features raise the evidence, not the grade)."""
    signals = open_one(finding("crs.fever", "routine"))
    f = finding("crs.constitutional", None, T0 + HOUR)
    changes = run([f], signals)
    assert effects(changes) == ["joined"]
    assert changes.findings[0]["priority"] is None
    assert changes.alerts == []
    assert changes.updates[0]["priority"] == "routine"
    assert changes.updates[0]["evidence"][-1]["rule"] == "crs.constitutional"


def test_evidence_only_finding_does_not_join_another_category() -> None:
    """Categories never mix: a CRS constitutional feature has no ICANS signal to join."""
    assert not run(
        [finding("crs.constitutional", None)], open_one(finding("icans.seizure", "urgent"))
    )


# --- re-seen evidence -------------------------------------------------------------------------


def test_the_same_rule_and_entries_again_change_nothing() -> None:
    """episodes.py: a finding whose rule already recorded the same entries changes nothing (the
    rules see the same data again on a correction or re-evaluation)."""
    entry = uuid.uuid4()
    signals = open_one(finding("crs.fever", "high", entries=[entry]))
    again = finding("crs.fever", "high", T0 + HOUR, entries=[entry])
    changes = run([again], signals)
    assert not changes
    assert (changes.alerts, changes.audit) == ([], [])
    lower = finding("crs.fever", "routine", T0, entries=[entry])
    assert not run([lower], signals)


def test_the_same_entries_under_another_rule_join() -> None:
    """episodes.py _recorded is per rule: the same reading seen by a combination rule is news."""
    entry = uuid.uuid4()
    signals = open_one(finding("crs.fever", "routine", entries=[entry]))
    changes = run([finding("crs.fever_hypotension", "routine", entries=[entry])], signals)
    assert effects(changes) == ["joined"]


def test_the_same_entries_with_a_higher_priority_escalate() -> None:
    """episodes.py: after an administration is recorded the rules see the same fever again, now
    inside the new dose's risk window: it escalates its signal."""
    entry = uuid.uuid4()
    signals = open_one(finding("crs.fever", "routine", entries=[entry]))
    again = finding("crs.fever", "high", T0, entries=[entry], in_risk_window=True)
    changes = run([again], signals, join_only=True)
    assert effects(changes) == ["escalated"]
    assert changes.updates[0]["priority"] == "high"
    assert alert_types(changes) == ["safety.signal.escalated"]


# --- escalation -------------------------------------------------------------------------------


def test_a_higher_priority_escalates_once_per_level() -> None:
    """Issue 6 item 2: a higher priority escalates the episode and raises a new alert; one
    safety.signal.escalated per priority reached (its dedup key carries the priority)."""
    signals = open_one(finding("crs.fever", "routine"))
    sid = signals[0].id

    changes = run([finding("crs.fever", "high", T0 + HOUR)], signals)
    assert effects(changes) == ["escalated"]
    (alert,) = changes.alerts
    assert alert["type"] == "safety.signal.escalated"
    assert alert["priority"] == "high"
    assert alert["dedup_key"] == f"safety.signal.escalated:{sid}:high"
    (audit_row,) = changes.audit
    assert audit_row["action"] == "safety_signal.escalate"
    assert audit_row["changes"] == {"priority": {"before": "routine", "after": "high"}}
    assert changes.updates[0]["priority"] == "high"
    signals = stored(changes, signals)

    changes = run([finding("crs.fever_hypoxia", "urgent", T0 + 2 * HOUR)], signals)
    assert [a["dedup_key"] for a in changes.alerts] == [f"safety.signal.escalated:{sid}:urgent"]
    assert changes.alerts[0]["data"]["rule_id"] == "crs.fever_hypoxia"
    signals = stored(changes, signals)

    changes = run([finding("crs.fever_hypotension", "urgent", T0 + 3 * HOUR)], signals)
    assert (effects(changes), changes.alerts, changes.audit) == (["joined"], [], [])


def test_routine_straight_to_urgent_is_one_escalation() -> None:
    """One alert per priority reached: skipping a level raises one alert, for the level reached."""
    signals = open_one(finding("crs.fever", "routine"))
    changes = run([finding("crs.fever_hypoxia", "urgent", T0 + HOUR)], signals)
    assert [a["dedup_key"].rsplit(":", 1)[-1] for a in changes.alerts] == ["urgent"]
    assert changes.alerts[0]["priority"] == "urgent"


def test_a_lower_priority_joins_without_an_alert() -> None:
    """Issue 6: the signal's priority is the highest of its findings; a lower one only joins."""
    signals = open_one(finding("crs.fever_hypoxia", "urgent"))
    changes = run([finding("crs.fever", "routine", T0 + HOUR)], signals)
    assert effects(changes) == ["joined"]
    assert changes.alerts == []
    assert changes.updates[0]["priority"] == "urgent"


def test_issue_example_spo2_89_escalates_once() -> None:
    """Issue 6 Done when (pure part): a fever two days after a recorded infusion gives one CRS
    signal with raised priority; three more fevers that day give no new alert; SpO2 89 %
    escalates it once. Rules and merge together, as the write path calls them."""
    s = SafetySettings(risk_windows=[RiskWindow(after="each_administration", end_day=7)])
    infusion = Dose((T0 - timedelta(days=2)).date(), product="car-t")
    stored_obs: list[Observation] = []
    signals: list[OpenSignal] = []
    all_alerts: list[str] = []

    def record(obs: Observation) -> Changes:
        nonlocal signals
        result = evaluate([obs], Context(settings=s, doses=(infusion,), recent=tuple(stored_obs)))
        changes = merge(
            result.findings, copy.deepcopy(signals), settings=s, subject=SUBJECT, now=obs.at
        )
        stored_obs.append(obs)
        signals = stored(changes, signals)
        all_alerts.extend(f"{a['type']}:{a['priority']}" for a in changes.alerts)
        return changes

    def vitals(at: datetime, **values: Any) -> Observation:
        return Observation(uuid.uuid4(), "vitals", at, at.date(), **values)

    first = record(vitals(T0, temperature_c=38.6))
    assert signal(first)["priority"] == "high"
    assert signal(first)["in_risk_window"] is True
    for hours in (2, 4, 6):
        assert record(vitals(T0 + hours * HOUR, temperature_c=38.9)).alerts == []
    record(vitals(T0 + 7 * HOUR, spo2_percent=89))
    record(vitals(T0 + 8 * HOUR, spo2_percent=88))
    assert all_alerts == ["safety.signal.raised:high", "safety.signal.escalated:urgent"]
    assert len(signals) == 1
    assert signals[0].priority == "urgent"


# --- rule modes: monitor ----------------------------------------------------------------------


def test_monitor_findings_open_a_signal_without_an_alert() -> None:
    """Issue 6 item 2: monitor = recorded, not alerted."""
    changes = run([finding("crs.fever", "high")], s=config({"crs.fever": "monitor"}))
    row = signal(changes)
    assert row["mode"] == "monitor"
    assert changes.alerts == []
    assert [a["action"] for a in changes.audit] == ["safety_signal.open"]
    assert effects(changes) == ["opened"]


def test_monitor_escalation_raises_no_alert() -> None:
    """Monitor findings never alert, even when they escalate a monitored signal."""
    s = config({"crs.fever": "monitor", "crs.fever_hypoxia": "monitor"})
    signals = open_one(finding("crs.fever", "routine"), s=s)
    changes = run([finding("crs.fever_hypoxia", "urgent", T0 + HOUR)], signals, s=s)
    assert effects(changes) == ["escalated"]
    assert changes.alerts == []
    assert changes.updates[0]["mode"] == "monitor"


def test_an_active_finding_makes_a_monitored_signal_active_and_raises_it() -> None:
    """episodes.py: a signal is active as soon as one of its findings is, and then raises its first
    alert (safety.signal.raised, not escalated)."""
    s = config({"crs.fever": "monitor"})
    signals = open_one(finding("crs.fever", "routine"), s=s)
    changes = run([finding("crs.fever_hypoxia", "urgent", T0 + HOUR)], signals, s=s)
    (update,) = changes.updates
    assert update["mode"] == "active"
    assert update["priority"] == "urgent"
    (alert,) = changes.alerts
    assert alert["type"] == "safety.signal.raised"
    assert alert["priority"] == "urgent"
    assert alert["dedup_key"] == f"safety.signal.raised:{signals[0].id}"
    # raised once: a further urgent finding only joins
    signals = stored(changes, signals)
    later = run([finding("crs.fever_hypoxia", "urgent", T0 + 2 * HOUR)], signals, s=s)
    assert later.alerts == []


def test_an_active_finding_of_the_same_priority_activates_a_monitored_signal() -> None:
    """episodes.py: activation does not need an escalation."""
    s = config({"crs.fever": "monitor"})
    signals = open_one(finding("crs.fever", "high"), s=s)
    changes = run([finding("crs.fever_hypotension", "high", T0 + HOUR)], signals, s=s)
    assert alert_types(changes) == ["safety.signal.raised"]
    assert changes.updates[0]["mode"] == "active"


def test_a_monitored_signal_opened_and_activated_in_one_call() -> None:
    """A signal created and joined in one call is inserted with its final state (mode active),
    and raises exactly one alert."""
    s = config({"crs.fever": "monitor"})
    changes = run(
        [finding("crs.fever", "routine", T0), finding("crs.fever_hypoxia", "urgent", T0 + HOUR)],
        s=s,
    )
    row = signal(changes)
    assert (row["mode"], row["priority"], row["finding_count"]) == ("active", "urgent", 2)
    assert alert_types(changes) == ["safety.signal.raised"]
    assert changes.updates == []


def test_a_monitored_rule_does_not_swallow_an_active_rules_escalation() -> None:
    """Issue 6 item 2: monitor = recorded, not alerted - it must not stop an *active* rule's
    escalation from alerting (episodes.merge: a monitored rule never raises an active signal's
    priority). Monitored crs.fever_hypoxia urgent joins the active CRS signal silently; the
    active crs.fever_hypotension urgent finding then escalates it with an alert."""
    s = config({"crs.fever_hypoxia": "monitor"})
    signals = open_one(finding("crs.fever", "routine"), s=s)
    monitored = run([finding("crs.fever_hypoxia", "urgent", T0 + HOUR)], signals, s=s)
    assert effects(monitored) == ["joined"]  # recorded on the signal...
    assert monitored.alerts == []  # ...without an alert...
    assert monitored.updates[0]["priority"] == "routine"  # ...and without a silent escalation
    signals = stored(monitored, signals)
    changes = run([finding("crs.fever_hypotension", "urgent", T0 + 2 * HOUR)], signals, s=s)
    assert [(a["type"], a["priority"]) for a in changes.alerts] == [
        ("safety.signal.escalated", "urgent")
    ]


# --- join_only ----------------------------------------------------------------------------------


def test_join_only_never_opens_signals() -> None:
    """merge docstring: join_only (re-evaluation after a dose) changes joinable signals only."""
    assert not run([finding("crs.fever", "urgent")], join_only=True)
    signals = open_one()
    changes = run(
        [finding("crs.fever", "routine", T0 + HOUR), finding("icans.seizure", "urgent", T0 + HOUR)],
        signals,
        join_only=True,
    )
    assert changes.signals == []
    assert effects(changes) == ["joined"]
    assert [u["id"] for u in changes.updates] == [signals[0].id]
    far = run([finding("crs.fever", "urgent", T0 + 48 * HOUR)], signals, join_only=True)
    assert not far


# --- the rows returned ------------------------------------------------------------------------


def test_updates_list_changed_existing_signals_only() -> None:
    """merge: the signal columns to update are those of the changed, already stored signals."""
    crs = open_one(finding("crs.fever"))
    icans = open_one(finding("icans.neuro_symptom"))
    changes = run([finding("icans.neuro_symptom", "routine", T0 + HOUR)], crs + icans)
    assert [u["id"] for u in changes.updates] == [icans[0].id]
    assert set(changes.updates[0]) == {
        "id",
        "priority",
        "mode",
        "first_evidence_at",
        "last_evidence_at",
        "finding_count",
        "evidence",
        "updated_at",
    }
    assert not run([], crs + icans)


def test_a_signal_created_and_joined_in_one_call_is_inserted_with_its_final_state() -> None:
    """merge: a signal opened and joined in the same request is one insert with its final
    state; its alerts are the raised one and one escalation per level."""
    f1 = finding("crs.fever", "routine", T0)
    f2 = finding("crs.constitutional", None, T0 + HOUR)
    f3 = finding("crs.fever_hypoxia", "urgent", T0 + 2 * HOUR)
    changes = run([f3, f1, f2])  # any order: taken by evidence time
    row = signal(changes)
    assert row["first_rule"] == "crs.fever@1"
    assert row["priority"] == "urgent"
    assert row["finding_count"] == 3
    assert (row["first_evidence_at"], row["last_evidence_at"]) == (T0, T0 + 2 * HOUR)
    assert [e["rule"] for e in row["evidence"]] == [
        "crs.fever",
        "crs.constitutional",
        "crs.fever_hypoxia",
    ]
    assert changes.updates == []
    assert effects(changes) == ["opened", "joined", "escalated"]
    assert [a["dedup_key"].split(":", 1)[0] for a in changes.alerts] == [
        "safety.signal.raised",
        "safety.signal.escalated",
    ]
    assert [a["priority"] for a in changes.alerts] == ["routine", "urgent"]


def test_an_earlier_finding_widens_the_signals_evidence_span() -> None:
    """merge: findings in any order; the signal's first evidence moves back for a late entry."""
    signals = open_one(finding("crs.fever", "routine", T0))
    changes = run([finding("crs.fever", "routine", T0 - 5 * HOUR)], signals)
    update = changes.updates[0]
    assert (update["first_evidence_at"], update["last_evidence_at"]) == (T0 - 5 * HOUR, T0)


def test_signal_evidence_is_capped_but_findings_keep_theirs() -> None:
    """episodes.py MAX_SIGNAL_EVIDENCE: the signal keeps the latest items; a finding all of its."""
    signals = open_one()
    many = finding(
        "crs.fever_hypoxia", "routine", T0 + HOUR, entries=[uuid.uuid4() for _ in range(150)]
    )
    changes = run([many], signals)
    assert len(changes.updates[0]["evidence"]) == MAX_SIGNAL_EVIDENCE
    assert changes.updates[0]["evidence"][-1]["entry_id"] == many.evidence[-1]["entry_id"]
    assert len(changes.findings[0]["evidence"]) == 150


def test_open_signal_of_reads_a_stored_row() -> None:
    """OpenSignal.of: a joinable signal from a safety_signal row."""
    row = SimpleNamespace(
        id=uuid.uuid4(),
        category="crs",
        priority="high",
        mode="active",
        first_evidence_at=T0,
        last_evidence_at=T0 + HOUR,
        finding_count=2,
        evidence=({"entry_id": "x", "rule": "crs.fever"},),
    )
    got = OpenSignal.of(row)
    assert (got.id, got.category, got.priority, got.finding_count) == (row.id, "crs", "high", 2)
    assert got.evidence == [{"entry_id": "x", "rule": "crs.fever"}]
    assert (got.created, got.changed) == (False, False)
    changes = run([finding("crs.fever", "urgent", T0 + 2 * HOUR)], [got])
    assert changes.updates[0]["priority"] == "urgent"


# --- properties ---------------------------------------------------------------------------------

PRIORITIES: tuple[Priority | None, ...] = (None, "routine", "high", "urgent")
RULE_IDS = sorted(CATEGORY)


@st.composite
def finding_lists(draw: st.DrawFn) -> list[Finding]:
    pool = [uuid.UUID(int=i + 1) for i in range(4)]
    out = []
    for _ in range(draw(st.integers(0, 8))):
        out.append(
            finding(
                draw(st.sampled_from(RULE_IDS)),
                draw(st.sampled_from(PRIORITIES)),
                T0 + timedelta(hours=draw(st.integers(0, 96))),
                draw(st.lists(st.sampled_from(pool), min_size=1, max_size=2, unique=True)),
            )
        )
    return out


@settings(max_examples=80, deadline=None, database=None)
@given(
    batches=st.lists(finding_lists(), min_size=1, max_size=3),
    monitored=st.lists(st.sampled_from(RULE_IDS), max_size=3),
)
def test_no_alert_storm_and_priority_only_rises(
    batches: list[list[Finding]], monitored: list[str]
) -> None:
    """Issue 6 item 2 over any sequence of requests: categories never mix; a signal's priority
    never falls, is at least that of every active finding and at most the highest of all its
    findings; at most one raised alert per signal and one escalated alert per (signal,
    priority) - the alert dedup keys never repeat; a monitored signal never alerted."""
    s = config(dict.fromkeys(monitored, "monitor"))
    signals: list[OpenSignal] = []
    keys: list[str] = []
    highest: dict[uuid.UUID, int] = {}  # of all its findings
    highest_active: dict[uuid.UUID, int] = {}  # of its active rules' findings
    for batch in batches:
        changes = run(batch, signals, s=s)
        keys += [a["dedup_key"] for a in changes.alerts]
        for row in changes.findings:
            sig = row["signal_id"]
            rank = 0 if row["priority"] is None else PRIORITY_RANK[row["priority"]]
            highest[sig] = max(highest.get(sig, 0), rank)
            if s.mode_of(row["rule_id"]) == "active":
                highest_active[sig] = max(highest_active.get(sig, 0), rank)
        before = {x.id: PRIORITY_RANK[x.priority] for x in signals}
        categories = {x.id: x.category for x in signals}
        signals = stored(changes, signals)
        for x in signals:
            assert PRIORITY_RANK[x.priority] >= before.get(x.id, 0)
            assert categories.get(x.id, x.category) == x.category
        for row in changes.findings:
            target = next(x for x in signals if x.id == row["signal_id"])
            assert target.category == row["category"]
        for a in changes.alerts:
            assert a["type"] in ("safety.signal.raised", "safety.signal.escalated")
    assert len(keys) == len(set(keys))
    for x in signals:
        assert highest_active.get(x.id, 0) <= PRIORITY_RANK[x.priority] <= highest[x.id]
        if x.mode == "monitor":
            assert not any(k.endswith(str(x.id)) or f":{x.id}:" in k for k in keys)


def test_an_evidence_only_finding_does_not_make_a_monitored_signal_alert() -> None:
    """Monitoring a rule means its signals stay silent: constitutional evidence (priority None,
    an active rule by default) joins a monitored fever signal without activating it."""
    s = config({"crs.fever": "monitor"})
    signals = open_one(finding("crs.fever", "routine"), s=s)
    changes = run([finding("crs.constitutional", None, T0 + HOUR)], signals, s=s)
    assert effects(changes) == ["joined"]
    assert changes.alerts == []
    assert changes.updates[0]["mode"] == "monitor"


def test_merge_leaves_the_callers_signals_as_they_were() -> None:
    """merge is pure: the signals passed in are copied, not changed."""
    signals = open_one(finding("crs.fever", "routine"))
    before = copy.deepcopy(signals)
    run([finding("crs.fever_hypoxia", "urgent", T0 + HOUR)], signals)
    assert signals == before
