"""Reading safety signals and acting on them: acknowledge, dismiss, convert into an AE.

Every status change is audited with the investigator and, for a dismissal, the reason. Findings
are append-only; a signal's status moves forward only: open -> acknowledged -> dismissed or
converted (an open signal may also be dismissed or converted directly).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, func, select
from sqlmodel.sql.expression import SelectOfScalar

from app.alerts import service as alerts
from app.audit import service as audit
from app.audit.service import Actor
from app.auth import scoping
from app.auth.principal import StaffPrincipal
from app.core.errors import Conflict, Forbidden, NotFound
from app.core.models import utcnow
from app.diary.models import DiaryEntry, DiaryEntryVersion, VitalSign, is_current_version
from app.participants.models import Participant
from app.safety.models import JOINABLE_STATUSES, SafetyFinding, SafetyPrompt, SafetySignal
from app.safety.rules import PROMPT_READING_BEFORE

CLOSED = ("dismissed", "converted")


def signals_query(
    staff: StaffPrincipal,
    *,
    study_id: uuid.UUID,
    status: str | None = None,
    priority: str | None = None,
    category: str | None = None,
    participant_id: uuid.UUID | None = None,
) -> SelectOfScalar[SafetySignal]:
    """A study's signals at the caller's sites, filtered."""
    stmt = select(SafetySignal).where(
        SafetySignal.study_id == study_id,
        scoping.site_filter(staff, SafetySignal.study_id, SafetySignal.site_id),
    )
    if status is not None:
        stmt = stmt.where(SafetySignal.status == status)
    if priority is not None:
        stmt = stmt.where(SafetySignal.priority == priority)
    if category is not None:
        stmt = stmt.where(SafetySignal.category == category)
    if participant_id is not None:
        stmt = stmt.where(SafetySignal.participant_id == participant_id)
    return stmt


def get_for_staff(
    session: Session, staff: StaffPrincipal, signal_id: uuid.UUID, permission: str
) -> SafetySignal:
    signal = session.get(SafetySignal, signal_id)
    if signal is None or not staff.in_scope(signal.study_id, signal.site_id):
        raise NotFound("No such safety signal")
    if not staff.can(permission, signal.study_id, signal.site_id):
        raise Forbidden(f"Your role does not allow {permission} for this signal")
    return signal


def findings(session: Session, signal: SafetySignal) -> list[SafetyFinding]:
    return list(
        session.exec(
            select(SafetyFinding)
            .where(SafetyFinding.signal_id == signal.id)
            .order_by(col(SafetyFinding.evidence_at), col(SafetyFinding.detected_at))
        ).all()
    )


def _change(
    session: Session,
    signal: SafetySignal,
    *,
    actor: Actor,
    action: str,
    changes: dict[str, Any],
    reason: str | None,
) -> SafetySignal:
    before = {k: getattr(signal, k) for k in changes}
    for key, value in changes.items():
        setattr(signal, key, value)
    signal.updated_at = utcnow()
    session.add(signal)
    session.flush()
    alerts.acknowledge_subject(
        session, subject_type="safety_signal", subject_id=signal.id, actor_id=actor.id
    )
    audit.record(
        session,
        actor=actor,
        action=action,
        entity_type="safety_signal",
        entity_id=signal.id,
        study_id=signal.study_id,
        participant_id=signal.participant_id,
        before=before,
        after=changes,
        reason=reason,
    )
    return signal


def acknowledge(
    session: Session, signal: SafetySignal, *, actor: Actor, note: str | None
) -> SafetySignal:
    """Someone at the site has seen the signal; later findings still join it."""
    if signal.status != "open":
        raise Conflict(f"This signal is {signal.status}; only an open signal is acknowledged")
    now = utcnow()
    return _change(
        session,
        signal,
        actor=actor,
        action="safety_signal.acknowledge",
        changes={
            "status": "acknowledged",
            "acknowledged_at": now,
            "acknowledged_by": actor.id,
            "acknowledge_note": note,
        },
        reason=note,
    )


def dismiss(session: Session, signal: SafetySignal, *, actor: Actor, reason: str) -> SafetySignal:
    """Close the signal as not an adverse event (e.g. the fever has another cause)."""
    if signal.status in CLOSED:
        raise Conflict(f"This signal is already {signal.status}")
    return _change(
        session,
        signal,
        actor=actor,
        action="safety_signal.dismiss",
        changes={
            "status": "dismissed",
            "closed_at": utcnow(),
            "closed_by": actor.id,
            "close_reason": reason,
        },
        reason=reason,
    )


def convert_signal(
    session: Session,
    *,
    signal_id: uuid.UUID,
    participant_id: uuid.UUID,
    adverse_event_id: uuid.UUID,
    actor: Actor,
) -> None:
    """The signal became the adverse event ``adverse_event_id`` (recorded in the same
    transaction by the AE service)."""
    signal = session.get(SafetySignal, signal_id)
    if signal is None or signal.participant_id != participant_id:
        raise NotFound("No such safety signal for this participant")
    if signal.status in CLOSED:
        raise Conflict(f"This signal is already {signal.status}")
    _change(
        session,
        signal,
        actor=actor,
        action="safety_signal.convert",
        changes={
            "status": "converted",
            "closed_at": utcnow(),
            "closed_by": actor.id,
            "adverse_event_id": adverse_event_id,
        },
        reason=None,
    )


def open_counts(session: Session, participant_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Open (or acknowledged, i.e. not closed) active signals per participant: one query."""
    if not participant_ids:
        return {}
    rows = session.exec(
        select(SafetySignal.participant_id, func.count())
        .where(
            col(SafetySignal.participant_id).in_(participant_ids),
            col(SafetySignal.status).in_(JOINABLE_STATUSES),
            SafetySignal.mode == "active",
        )
        .group_by(col(SafetySignal.participant_id))
    ).all()
    return {pid: int(n) for pid, n in rows}


def open_prompts(
    session: Session, participant: Participant, now: datetime | None = None
) -> list[SafetyPrompt]:
    """The participant's prompts not yet lapsed and not yet answered by a temperature reading
    recorded at most an hour before the prompting entry (rules.PROMPT_READING_BEFORE) or later.
    Two queries: the live prompts (a handful), then the readings since the oldest of them."""
    now = now or utcnow()
    prompts = list(
        session.exec(
            select(SafetyPrompt)
            .where(
                SafetyPrompt.participant_id == participant.id, col(SafetyPrompt.expires_at) > now
            )
            .order_by(col(SafetyPrompt.evidence_at).desc())
        ).all()
    )
    if not prompts:
        return []
    since = min(p.evidence_at for p in prompts) - PROMPT_READING_BEFORE
    readings = session.exec(
        select(DiaryEntry.recorded_at)
        .join(DiaryEntryVersion, is_current_version())
        .join(VitalSign, col(VitalSign.version_id) == DiaryEntryVersion.id)
        .where(
            DiaryEntry.participant_id == participant.id,
            DiaryEntry.kind == "vitals",
            col(VitalSign.temperature_c).is_not(None),
            col(DiaryEntry.recorded_at) >= since,
        )
    ).all()
    return [
        p
        for p in prompts
        if not any(at >= p.evidence_at - PROMPT_READING_BEFORE for at in readings)
    ]
