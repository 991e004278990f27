"""Clinic assessments and lab results: recorded by investigators, scored exactly, corrected only
by new versions with a reason."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col

from app.audit.service import Actor
from app.audit.versioning import VersionedKind
from app.core import followups
from app.core.errors import InvalidInput
from app.participants.models import Participant
from app.scores.instruments import InstrumentScore, score_instrument
from app.scores.instruments import qmg as qmg_scorer
from app.scores.instruments._common import InstrumentItemError
from app.scores.models import (
    ClinicAssessment,
    ClinicAssessmentVersion,
    LabResult,
    LabResultVersion,
)
from app.scores.schemas import (
    LAB_UNITS,
    AssessmentFields,
    AssessmentOut,
    AssessmentScore,
    LabFields,
    LabOut,
)
from app.studies import service as studies_service

_ASSESSMENT_FIELDS = ("assessed_at", "visit_id", "items", "measurements", "sex", "total")
_LAB_FIELDS = ("value", "unit", "qualifier", "collected_at", "visit_id")


def _local_date(participant: Participant, instant: datetime) -> Any:
    return instant.astimezone(ZoneInfo(participant.time_zone)).date()


def score_fields(
    session: Session, *, participant: Participant, instrument: str, body: AssessmentFields
) -> InstrumentScore:
    """Score an assessment, converting QMG measurements with the protocol's thresholds."""
    try:
        if instrument == "qmg" and body.measurements:
            protocol = studies_service.definition_for_version(
                session, participant.protocol_version_id
            )
            thresholds = qmg_scorer.QmgThresholds(
                vital_capacity_percent=protocol.qmg.vital_capacity_percent,
                leg_grade_1_min_seconds=protocol.qmg.leg_grade_1_min_seconds,
            )
            return qmg_scorer.score_mixed(
                body.items, body.measurements, sex=body.sex, thresholds=thresholds
            )
        return score_instrument(instrument, body.items)
    except InstrumentItemError as exc:
        locs = [["body", "items", key] for key in exc.items] or [["body", "items"]]
        raise InvalidInput(
            [{"loc": loc, "msg": str(exc), "type": "instrument_item"} for loc in locs]
        ) from exc


def _assessment_version(
    session: Session,
    *,
    assessment: ClinicAssessment,
    participant: Participant,
    version: int,
    body: AssessmentFields,
    actor: Actor,
    reason: str | None,
) -> ClinicAssessmentVersion:
    result = score_fields(
        session, participant=participant, instrument=assessment.instrument, body=body
    )
    row = ClinicAssessmentVersion(
        assessment_id=assessment.id,
        participant_id=participant.id,
        version=version,
        instrument=assessment.instrument,
        assessed_at=body.assessed_at,
        assessed_date=_local_date(participant, body.assessed_at),
        visit_id=body.visit_id,
        items=dict(body.items),
        measurements=dict(body.measurements) if body.measurements else None,
        sex=body.sex,
        total=result.total,
        subscores=dict(result.subscores),
        instrument_version=result.instrument_version,
        reason=reason,
        actor_id=actor.id,
        actor_role=actor.role,
    )
    return row


ASSESSMENTS: VersionedKind[ClinicAssessment, ClinicAssessmentVersion] = VersionedKind(
    head=ClinicAssessment,
    version=ClinicAssessmentVersion,
    head_key="assessment_id",
    entity_type="clinic_assessment",
    audited=_ASSESSMENT_FIELDS,
    not_found="No such assessment",
)
LABS: VersionedKind[LabResult, LabResultVersion] = VersionedKind(
    head=LabResult,
    version=LabResultVersion,
    head_key="lab_id",
    entity_type="lab_result",
    audited=_LAB_FIELDS,
    not_found="No such lab result",
)


def record_assessment(
    session: Session,
    *,
    participant: Participant,
    instrument: str,
    body: AssessmentFields,
    actor: Actor,
) -> tuple[ClinicAssessment, ClinicAssessmentVersion]:
    assessment = ClinicAssessment(
        participant_id=participant.id, study_id=participant.study_id, instrument=instrument
    )
    first = _assessment_version(
        session,
        assessment=assessment,
        participant=participant,
        version=1,
        body=body,
        actor=actor,
        reason=None,
    )
    created = ASSESSMENTS.create(
        session, head=assessment, first=first, actor=actor, extra={"instrument": instrument}
    )
    _after_assessment(session, participant, created[1])
    return created


def _after_assessment(
    session: Session, participant: Participant, version: ClinicAssessmentVersion
) -> None:
    """A clinic MG-ADL goes through the safety rules as the diary's does (issue 6 item 3)."""
    if version.instrument != "mg_adl":
        return
    protocol = studies_service.definition_for_version(session, participant.protocol_version_id)
    written = followups.WrittenEntry(
        entry_id=version.assessment_id,
        kind="mg_adl",
        recorded_at=version.assessed_at,
        local_date=version.assessed_date,
        data=version.items,
        source="clinic",
    )
    followups.run_on_session(session, followups.Written(participant, protocol, [written]))


def correct_assessment(
    session: Session,
    *,
    assessment: ClinicAssessment,
    participant: Participant,
    body: AssessmentFields,
    reason: str,
    actor: Actor,
) -> ClinicAssessmentVersion:
    new = _assessment_version(
        session,
        assessment=assessment,
        participant=participant,
        version=0,
        body=body,
        actor=actor,
        reason=reason,
    )
    version = ASSESSMENTS.amend(session, head=assessment, new=new, actor=actor, reason=reason)
    _after_assessment(session, participant, version)
    return version


def get_assessment(session: Session, *, assessment_id: uuid.UUID) -> ClinicAssessment:
    return ASSESSMENTS.get(session, assessment_id)


def assessment_history(session: Session, assessment: ClinicAssessment) -> list[AssessmentOut]:
    return [assessment_out(assessment, r) for r in ASSESSMENTS.history(session, assessment)]


def current_assessments(
    session: Session, *, participant_id: uuid.UUID, instrument: str | None
) -> list[AssessmentOut]:
    where = [col(ClinicAssessment.instrument) == instrument] if instrument else []
    rows = ASSESSMENTS.current_rows(
        session,
        participant_id=participant_id,
        order_by=[col(ClinicAssessmentVersion.assessed_at)],
        where=where,
    )
    return [assessment_out(a, v) for a, v in rows]


def assessment_out(assessment: ClinicAssessment, version: ClinicAssessmentVersion) -> AssessmentOut:
    return AssessmentOut(
        id=assessment.id,
        participant_id=assessment.participant_id,
        instrument=assessment.instrument,
        version=version.version,
        assessed_at=version.assessed_at,
        assessed_date=version.assessed_date,
        visit_id=version.visit_id,
        items=version.items,
        measurements=version.measurements,
        score=AssessmentScore(
            total=version.total,
            subscores=version.subscores,
            instrument_version=version.instrument_version,
        ),
        reason=version.reason,
        recorded_by=version.actor_role,
        recorded_at=version.created_at,
    )


# --- labs ---------------------------------------------------------------------------------


def _check_unit(analyte: str, unit: str) -> None:
    if unit not in LAB_UNITS[analyte]:
        raise InvalidInput(
            [
                {
                    "loc": ["body", "unit"],
                    "msg": f"unit for {analyte} must be one of {', '.join(LAB_UNITS[analyte])}",
                    "type": "lab_unit",
                }
            ]
        )


def _lab_version(
    session: Session,
    *,
    lab: LabResult,
    participant: Participant,
    version: int,
    body: LabFields,
    actor: Actor,
    reason: str | None,
) -> LabResultVersion:
    _check_unit(lab.analyte, body.unit)
    row = LabResultVersion(
        lab_id=lab.id,
        participant_id=participant.id,
        version=version,
        analyte=lab.analyte,
        value=body.value,
        unit=body.unit,
        qualifier=body.qualifier,
        collected_at=body.collected_at,
        collected_date=_local_date(participant, body.collected_at),
        visit_id=body.visit_id,
        reason=reason,
        actor_id=actor.id,
        actor_role=actor.role,
    )
    return row


def record_lab(
    session: Session, *, participant: Participant, analyte: str, body: LabFields, actor: Actor
) -> tuple[LabResult, LabResultVersion]:
    lab = LabResult(participant_id=participant.id, study_id=participant.study_id, analyte=analyte)
    first = _lab_version(
        session, lab=lab, participant=participant, version=1, body=body, actor=actor, reason=None
    )
    return LABS.create(session, head=lab, first=first, actor=actor, extra={"analyte": analyte})


def correct_lab(
    session: Session,
    *,
    lab: LabResult,
    participant: Participant,
    body: LabFields,
    reason: str,
    actor: Actor,
) -> LabResultVersion:
    new = _lab_version(
        session, lab=lab, participant=participant, version=0, body=body, actor=actor, reason=reason
    )
    return LABS.amend(session, head=lab, new=new, actor=actor, reason=reason)


def get_lab(session: Session, *, lab_id: uuid.UUID) -> LabResult:
    return LABS.get(session, lab_id)


def lab_out(lab: LabResult, version: LabResultVersion) -> LabOut:
    return LabOut(
        id=lab.id,
        participant_id=lab.participant_id,
        analyte=lab.analyte,
        version=version.version,
        value=version.value,
        unit=version.unit,
        qualifier=version.qualifier,
        collected_at=version.collected_at,
        collected_date=version.collected_date,
        visit_id=version.visit_id,
        reason=version.reason,
        recorded_by=version.actor_role,
        recorded_at=version.created_at,
    )


def current_labs(
    session: Session, *, participant_id: uuid.UUID, analyte: str | None
) -> list[LabOut]:
    where = [col(LabResult.analyte) == analyte] if analyte else []
    rows = LABS.current_rows(
        session,
        participant_id=participant_id,
        order_by=[col(LabResultVersion.collected_at)],
        where=where,
    )
    return [lab_out(lab, v) for lab, v in rows]


def lab_history(session: Session, lab: LabResult) -> list[LabOut]:
    return [lab_out(lab, r) for r in LABS.history(session, lab)]
