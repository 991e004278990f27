"""Adverse events: recorded by investigators, graded by CTCAE v5.0 (CRS and ICANS by ASTCT 2019
from the clinician's inputs), corrected only by new versions with a reason, each recording and
update raising an alert.

The rules every version must follow are in ``app.safety.ae_rules``.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlmodel import Session, col

from app.alerts import service as alerts_service
from app.audit.service import Actor
from app.audit.versioning import VersionedKind
from app.core.errors import InvalidInput
from app.participants.models import Participant
from app.safety import ae_rules
from app.safety import service as signals_service
from app.safety.ae_models import RELATED, AdverseEvent, AdverseEventVersion
from app.safety.ae_schemas import (
    AdverseEventCreate,
    AdverseEventFields,
    AdverseEventOut,
    AdverseEventUpdate,
)
from app.safety.ctcae import BY_MEDDRA
from app.safety.models import SafetySignal

_FIELDS = (
    "ctcae_term",
    "meddra_code",
    "ctcae_version",
    "grade",
    "crs_inputs",
    "astct_grade",
    "icans_inputs",
    "icans_grade",
    "grading_version",
    "serious",
    "seriousness_criteria",
    "relatedness",
    "expected",
    "onset_date",
    "resolution_date",
    "outcome",
    "action_taken",
)

ADVERSE_EVENTS: VersionedKind[AdverseEvent, AdverseEventVersion] = VersionedKind(
    head=AdverseEvent,
    version=AdverseEventVersion,
    head_key="adverse_event_id",
    entity_type="adverse_event",
    audited=_FIELDS,
    not_found="No such adverse event",
)


def _version(
    *,
    participant: Participant,
    body: AdverseEventFields,
    actor: Actor,
    reason: str | None,
) -> AdverseEventVersion:
    return AdverseEventVersion(
        participant_id=participant.id,
        version=1,
        **ae_rules.version_values(body, participant),
        reason=reason,
        actor_id=actor.id,
        actor_role=actor.role,
    )


def _check_signal(session: Session, signal_id: uuid.UUID, participant: Participant) -> None:
    signal = session.get(SafetySignal, signal_id)
    if signal is None or signal.participant_id != participant.id:
        raise InvalidInput(
            [
                {
                    "loc": ["body", "signal_id"],
                    "msg": "no such safety signal for this participant",
                    "type": "unknown_signal",
                }
            ]
        )


def record(
    session: Session, *, participant: Participant, body: AdverseEventCreate, actor: Actor
) -> tuple[AdverseEvent, AdverseEventVersion]:
    """Record an adverse event; a given ``signal_id`` is converted into it."""
    if body.signal_id is not None:
        _check_signal(session, body.signal_id, participant)
    first = _version(participant=participant, body=body, actor=actor, reason=None)
    head = AdverseEvent(
        participant_id=participant.id,
        study_id=participant.study_id,
        site_id=participant.site_id,
        signal_id=body.signal_id,
    )
    head, first = ADVERSE_EVENTS.create(
        session, head=head, first=first, actor=actor, extra={"signal_id": body.signal_id}
    )
    if body.signal_id is not None:
        signals_service.convert_signal(
            session,
            signal_id=body.signal_id,
            participant_id=participant.id,
            adverse_event_id=head.id,
            actor=actor,
        )
    _alert(session, head=head, version=first, participant=participant, kind="recorded")
    return head, first


def _merged(current: AdverseEventVersion, patch: AdverseEventUpdate) -> AdverseEventFields:
    """The current version with the patch's fields laid over it. New grading inputs without a
    grade drop the old grade, which is then computed from them."""
    values: dict[str, Any] = {
        "term": BY_MEDDRA[current.meddra_code].code,
        "grade": current.grade,
        "crs_inputs": current.crs_inputs,
        "icans_inputs": current.icans_inputs,
        **{
            name: getattr(current, name)
            for name in (
                "serious",
                "seriousness_criteria",
                "relatedness",
                "expected",
                "onset_date",
                "resolution_date",
                "outcome",
                "action_taken",
            )
        },
    }
    changes = patch.model_dump(exclude_unset=True, exclude={"reason"})
    if ({"crs_inputs", "icans_inputs"} & changes.keys()) and "grade" not in changes:
        values["grade"] = None
    values.update(changes)
    return AdverseEventFields.model_validate(values)


def update(
    session: Session,
    *,
    head: AdverseEvent,
    participant: Participant,
    patch: AdverseEventUpdate,
    actor: Actor,
) -> AdverseEventVersion:
    """A new version from the current one and the patch, with the patch's reason."""
    current = ADVERSE_EVENTS.current(session, head)
    new = _version(
        participant=participant, body=_merged(current, patch), actor=actor, reason=patch.reason
    )
    new = ADVERSE_EVENTS.amend(
        session, head=head, new=new, actor=actor, reason=patch.reason, action="update"
    )
    _alert(session, head=head, version=new, participant=participant, kind="updated")
    return new


def alert_priority(version: AdverseEventVersion) -> str:
    """Urgent for serious events and grade >= 4, high for grade 3, else routine."""
    if version.serious or version.grade >= 4:
        return "urgent"
    return "high" if version.grade == 3 else "routine"


def _alert(
    session: Session,
    *,
    head: AdverseEvent,
    version: AdverseEventVersion,
    participant: Participant,
    kind: str,
) -> None:
    """``adverse_event.recorded`` / ``adverse_event.updated``: identifiers and codes only."""
    event_type = f"adverse_event.{kind}"
    dedup = f"{event_type}:{head.id}"
    if kind == "updated":
        dedup = f"{dedup}:{version.version}"
    alerts_service.raise_alert(
        session,
        type=event_type,
        priority=alert_priority(version),
        study_id=head.study_id,
        site_id=participant.site_id,
        participant_id=head.participant_id,
        subject_type="adverse_event",
        subject_id=head.id,
        dedup_key=dedup,
        data={
            "adverse_event_id": head.id,
            "participant_id": head.participant_id,
            "signal_id": head.signal_id,
            "version": version.version,
            "term": BY_MEDDRA[version.meddra_code].code,
            "meddra_code": version.meddra_code,
            "ctcae_version": version.ctcae_version,
            "grade": version.grade,
            "serious": version.serious,
            "seriousness_criteria": version.seriousness_criteria,
            "relatedness": version.relatedness,
            "related": version.relatedness in RELATED,
            "expected": version.expected,
            "outcome": version.outcome,
            "onset_date": version.onset_date,
        },
    )


def get(session: Session, *, adverse_event_id: uuid.UUID) -> AdverseEvent:
    return ADVERSE_EVENTS.get(session, adverse_event_id)


def current_version(session: Session, head: AdverseEvent) -> AdverseEventVersion:
    return ADVERSE_EVENTS.current(session, head)


def to_out(head: AdverseEvent, version: AdverseEventVersion) -> AdverseEventOut:
    return AdverseEventOut(
        id=head.id,
        participant_id=head.participant_id,
        study_id=head.study_id,
        site_id=head.site_id,
        signal_id=head.signal_id,
        version=version.version,
        term=BY_MEDDRA[version.meddra_code].code,
        **{name: getattr(version, name) for name in _FIELDS},
        reason=version.reason,
        recorded_by=version.actor_role,
        recorded_at=version.created_at,
    )


def for_participant(session: Session, *, participant_id: uuid.UUID) -> list[AdverseEventOut]:
    rows = ADVERSE_EVENTS.current_rows(
        session, participant_id=participant_id, order_by=[col(AdverseEventVersion.onset_date)]
    )
    return [to_out(h, v) for h, v in rows]


def history(session: Session, head: AdverseEvent) -> list[AdverseEventOut]:
    return [to_out(head, v) for v in ADVERSE_EVENTS.history(session, head)]
