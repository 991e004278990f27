"""Findings into signals (episodes): dedup, escalation and the alerts they raise. Pure.

Rules (issue 6 item 2):
- a finding joins the participant's open (or acknowledged) signal of its category when its
  evidence lies within ``signal_dedup_hours`` of the signal's evidence; otherwise it opens a new
  signal - except evidence-only findings (priority None), which only ever join;
- the signal's priority is the highest of its findings; a higher one escalates it and raises
  ``safety.signal.escalated`` once per priority reached (the alert's dedup key carries it);
- a finding whose rule already recorded the same entries on the signal changes nothing unless
  it has a higher priority (the rules see the same data again after an administration is
  recorded: a fever now inside the new dose's risk window escalates its signal);
- ``monitor`` findings are recorded but raise no alert; a signal is ``active`` as soon as one of
  its findings is, and then raises its first alert.

The output is row values for the write paths (plain SQL on diary capture, a session elsewhere).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from app.alerts import service as alerts
from app.audit import service as audit
from app.core.models import new_id
from app.core.rows import new_row
from app.safety.models import SafetyFinding, SafetySignal
from app.safety.rules import PRIORITY_RANK, RULESET_VERSION, Finding
from app.studies.protocol import SafetySettings

SAFETY_ACTOR = audit.Actor(type="system", id=f"safety-rules@{RULESET_VERSION}", role="system")
#: Evidence items kept on a signal (its findings keep all of theirs).
MAX_SIGNAL_EVIDENCE = 100


@dataclass
class OpenSignal:
    """A joinable signal as the write step needs it (read from ``safety_signal``)."""

    id: uuid.UUID
    category: str
    priority: str
    mode: str
    first_evidence_at: datetime
    last_evidence_at: datetime
    finding_count: int
    evidence: list[dict[str, Any]]
    created: bool = False
    changed: bool = False

    @classmethod
    def of(cls, row: Any) -> OpenSignal:
        return cls(
            id=row.id,
            category=row.category,
            priority=row.priority,
            mode=row.mode,
            first_evidence_at=row.first_evidence_at,
            last_evidence_at=row.last_evidence_at,
            finding_count=row.finding_count,
            evidence=list(row.evidence),
        )


@dataclass(frozen=True)
class Subject:
    """Whose signals these are."""

    participant_id: uuid.UUID
    study_id: uuid.UUID
    site_id: uuid.UUID


@dataclass
class Changes:
    signals: list[Any] = field(default_factory=list)  # new safety_signal rows
    updates: list[dict[str, Any]] = field(default_factory=list)  # changed signals' columns
    findings: list[Any] = field(default_factory=list)
    alerts: list[Any] = field(default_factory=list)
    audit: list[Any] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.signals or self.updates or self.findings)


def _tagged(finding: Finding) -> list[dict[str, Any]]:
    return [{**item, "rule": finding.rule_id} for item in finding.evidence]


def _recorded(signal: OpenSignal, finding: Finding) -> bool:
    ids = {e["entry_id"] for e in signal.evidence if e.get("rule") == finding.rule_id}
    return finding.identity <= ids


def _within(signal: OpenSignal, at: datetime, window: timedelta) -> bool:
    return signal.first_evidence_at - window <= at <= signal.last_evidence_at + window


def _alert_data(signal: OpenSignal, finding: Finding, subject: Subject) -> dict[str, Any]:
    return {
        "signal_id": signal.id,
        "participant_id": subject.participant_id,
        "category": signal.category,
        "priority": signal.priority,
        "rule_id": finding.rule_id,
        "rule_version": finding.rule_version,
        "in_risk_window": finding.in_risk_window,
        "days_since_dose": finding.days_since_dose,
        "evidence": [
            {
                k: v
                for k, v in item.items()
                if k in ("entry_id", "field", "value", "code", "severity")
            }
            for item in finding.evidence
        ],
    }


def merge(
    findings: list[Finding],
    open_signals: list[OpenSignal],
    *,
    settings: SafetySettings,
    subject: Subject,
    now: datetime,
    join_only: bool = False,
) -> Changes:
    """Apply ``findings`` (any order; taken by evidence time) to the participant's joinable
    signals. Returns the rows to insert and the signal columns to update. ``join_only``: no
    new signals, only changes to the joinable ones (re-evaluation after a dose)."""
    changes = Changes()
    window = timedelta(hours=settings.signal_dedup_hours)
    # Copies: the caller's objects stay as they were read.
    signals = [replace(s, evidence=list(s.evidence)) for s in open_signals]
    for finding in sorted(findings, key=lambda f: f.evidence_at):
        mode = settings.mode_of(finding.rule_id)
        if mode == "off":
            continue
        candidates = [
            s
            for s in signals
            if s.category == finding.category and _within(s, finding.evidence_at, window)
        ]
        target = max(candidates, key=lambda s: s.last_evidence_at) if candidates else None
        if target is None:
            if finding.priority is None or join_only:
                continue  # evidence-only: nothing to add it to
            target = OpenSignal(
                id=new_id(),
                category=finding.category,
                priority=finding.priority,
                mode=mode,
                first_evidence_at=finding.evidence_at,
                last_evidence_at=finding.evidence_at,
                finding_count=1,
                evidence=_tagged(finding),
                created=True,
            )
            signals.append(target)
            changes.signals.append(
                new_row(
                    SafetySignal,
                    id=target.id,
                    study_id=subject.study_id,
                    site_id=subject.site_id,
                    participant_id=subject.participant_id,
                    category=target.category,
                    priority=target.priority,
                    status="open",
                    mode=mode,
                    first_rule=f"{finding.rule_id}@{finding.rule_version}",
                    opened_at=now,
                    first_evidence_at=finding.evidence_at,
                    last_evidence_at=finding.evidence_at,
                    finding_count=1,
                    in_risk_window=finding.in_risk_window,
                    days_since_dose=finding.days_since_dose,
                    evidence=target.evidence,
                    updated_at=now,
                )
            )
            changes.findings.append(_finding_row(target, finding, subject, "opened", now))
            changes.audit.append(_audit(target, subject, "safety_signal.open", None, now))
            if mode == "active":
                changes.alerts.append(_alert(target, finding, subject, "raised", now))
            continue
        before = target.priority
        # A monitored rule never raises an active signal's priority: that would swallow the
        # alert of a later active finding of the same priority.
        silent = mode == "monitor" and target.mode == "active"
        escalates = (
            finding.priority is not None
            and PRIORITY_RANK[finding.priority] > PRIORITY_RANK[before]
            and not silent
        )
        if _recorded(target, finding) and not escalates:
            continue
        # An evidence-only finding never makes a monitored signal alert.
        activates = mode == "active" and target.mode == "monitor" and finding.priority is not None
        if escalates:
            assert finding.priority is not None
            target.priority = finding.priority
        if activates:
            target.mode = "active"
        target.evidence = (target.evidence + _tagged(finding))[-MAX_SIGNAL_EVIDENCE:]
        target.finding_count += 1
        target.first_evidence_at = min(target.first_evidence_at, finding.evidence_at)
        target.last_evidence_at = max(target.last_evidence_at, finding.evidence_at)
        target.changed = True
        effect = "escalated" if escalates else "joined"
        changes.findings.append(_finding_row(target, finding, subject, effect, now))
        if escalates:
            changes.audit.append(_audit(target, subject, "safety_signal.escalate", before, now))
        if activates:  # a monitored signal's first active finding: its first alert
            changes.alerts.append(_alert(target, finding, subject, "raised", now))
        elif escalates and mode == "active" and target.mode == "active":
            changes.alerts.append(_alert(target, finding, subject, "escalated", now))
    for signal in signals:
        if signal.changed and not signal.created:
            changes.updates.append(
                {
                    "id": signal.id,
                    "priority": signal.priority,
                    "mode": signal.mode,
                    "first_evidence_at": signal.first_evidence_at,
                    "last_evidence_at": signal.last_evidence_at,
                    "finding_count": signal.finding_count,
                    "evidence": signal.evidence,
                    "updated_at": now,
                }
            )
        elif signal.changed and signal.created:
            # A signal opened and joined in the same request: its insert carries the final state.
            for row in changes.signals:
                if row["id"] == signal.id:
                    row.update(
                        priority=signal.priority,
                        mode=signal.mode,
                        first_evidence_at=signal.first_evidence_at,
                        last_evidence_at=signal.last_evidence_at,
                        finding_count=signal.finding_count,
                        evidence=signal.evidence,
                    )
    return changes


def _finding_row(
    signal: OpenSignal, finding: Finding, subject: Subject, effect: str, now: datetime
) -> Any:
    return new_row(
        SafetyFinding,
        id=new_id(),
        signal_id=signal.id,
        participant_id=subject.participant_id,
        rule_id=finding.rule_id,
        rule_version=finding.rule_version,
        category=finding.category,
        priority=finding.priority,
        evidence_at=finding.evidence_at,
        evidence=list(finding.evidence),
        in_risk_window=finding.in_risk_window,
        days_since_dose=finding.days_since_dose,
        effect=effect,
        detected_at=now,
    )


def _alert(signal: OpenSignal, finding: Finding, subject: Subject, kind: str, now: datetime) -> Any:
    key = f"safety.signal.{kind}:{signal.id}"
    if kind == "escalated":
        key += f":{signal.priority}"
    return alerts.build_alert(
        type=f"safety.signal.{kind}",
        priority=signal.priority,
        study_id=subject.study_id,
        site_id=subject.site_id,
        participant_id=subject.participant_id,
        subject_type="safety_signal",
        subject_id=signal.id,
        dedup_key=key,
        data=_alert_data(signal, finding, subject),
        now=now,
    )


def _audit(
    signal: OpenSignal, subject: Subject, action: str, before: str | None, now: datetime
) -> Any:
    return audit.build(
        actor=SAFETY_ACTOR,
        action=action,
        entity_type="safety_signal",
        entity_id=signal.id,
        study_id=subject.study_id,
        participant_id=subject.participant_id,
        before=None if before is None else {"priority": before},
        after={"category": signal.category, "priority": signal.priority, "mode": signal.mode}
        if before is None
        else {"priority": signal.priority},
    )
