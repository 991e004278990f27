"""Clinic assessments and lab results: recorded by investigators, scored exactly, corrected only
by new versions with a reason."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from app.audit import service as audit
from app.audit.service import Actor
from app.core.errors import Conflict, InvalidInput, NotFound
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
    session.add(row)
    session.flush()
    return row


def _snapshot(row: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(row, name) for name in fields}


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
    session.add(assessment)
    session.flush()
    version = _assessment_version(
        session,
        assessment=assessment,
        participant=participant,
        version=1,
        body=body,
        actor=actor,
        reason=None,
    )
    audit.record(
        session,
        actor=actor,
        action="clinic_assessment.create",
        entity_type="clinic_assessment",
        entity_id=assessment.id,
        study_id=participant.study_id,
        participant_id=participant.id,
        after={"instrument": instrument, **_snapshot(version, _ASSESSMENT_FIELDS)},
    )
    return assessment, version


def correct_assessment(
    session: Session,
    *,
    assessment: ClinicAssessment,
    participant: Participant,
    body: AssessmentFields,
    reason: str,
    actor: Actor,
) -> ClinicAssessmentVersion:
    current = current_assessment_version(session, assessment)
    version = _assessment_version(
        session,
        assessment=assessment,
        participant=participant,
        version=current.version + 1,
        body=body,
        actor=actor,
        reason=reason,
    )
    before = _snapshot(current, _ASSESSMENT_FIELDS)
    after = _snapshot(version, _ASSESSMENT_FIELDS)
    if before == after:
        raise Conflict("The correction is identical to the current version")
    assessment.current_version = version.version
    session.add(assessment)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="clinic_assessment.correct",
        entity_type="clinic_assessment",
        entity_id=assessment.id,
        study_id=participant.study_id,
        participant_id=participant.id,
        reason=reason,
        before=before,
        after=after,
    )
    return version


def get_assessment(session: Session, *, assessment_id: uuid.UUID) -> ClinicAssessment:
    assessment = session.get(ClinicAssessment, assessment_id)
    if assessment is None:
        raise NotFound("No such assessment")
    return assessment


def current_assessment_version(
    session: Session, assessment: ClinicAssessment
) -> ClinicAssessmentVersion:
    return session.exec(
        select(ClinicAssessmentVersion).where(
            ClinicAssessmentVersion.assessment_id == assessment.id,
            ClinicAssessmentVersion.version == assessment.current_version,
        )
    ).one()


def assessment_history(session: Session, assessment: ClinicAssessment) -> list[AssessmentOut]:
    rows = session.exec(
        select(ClinicAssessmentVersion)
        .where(ClinicAssessmentVersion.assessment_id == assessment.id)
        .order_by(col(ClinicAssessmentVersion.version))
    ).all()
    return [assessment_out(assessment, r) for r in rows]


def current_assessments(
    session: Session, *, participant_id: uuid.UUID, instrument: str | None
) -> list[AssessmentOut]:
    stmt = (
        select(ClinicAssessment, ClinicAssessmentVersion)
        .join(
            ClinicAssessmentVersion,
            col(ClinicAssessmentVersion.assessment_id) == ClinicAssessment.id,
        )
        .where(
            ClinicAssessment.participant_id == participant_id,
            col(ClinicAssessmentVersion.version) == col(ClinicAssessment.current_version),
        )
        .order_by(col(ClinicAssessmentVersion.assessed_at), col(ClinicAssessment.id))
    )
    if instrument:
        stmt = stmt.where(ClinicAssessment.instrument == instrument)
    return [assessment_out(a, v) for a, v in session.exec(stmt).all()]


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
    session.add(row)
    session.flush()
    return row


def record_lab(
    session: Session, *, participant: Participant, analyte: str, body: LabFields, actor: Actor
) -> tuple[LabResult, LabResultVersion]:
    lab = LabResult(participant_id=participant.id, study_id=participant.study_id, analyte=analyte)
    session.add(lab)
    session.flush()
    version = _lab_version(
        session, lab=lab, participant=participant, version=1, body=body, actor=actor, reason=None
    )
    audit.record(
        session,
        actor=actor,
        action="lab_result.create",
        entity_type="lab_result",
        entity_id=lab.id,
        study_id=participant.study_id,
        participant_id=participant.id,
        after={"analyte": analyte, **_snapshot(version, _LAB_FIELDS)},
    )
    return lab, version


def correct_lab(
    session: Session,
    *,
    lab: LabResult,
    participant: Participant,
    body: LabFields,
    reason: str,
    actor: Actor,
) -> LabResultVersion:
    current = session.exec(
        select(LabResultVersion).where(
            LabResultVersion.lab_id == lab.id, LabResultVersion.version == lab.current_version
        )
    ).one()
    before = _snapshot(current, _LAB_FIELDS)
    version = _lab_version(
        session,
        lab=lab,
        participant=participant,
        version=current.version + 1,
        body=body,
        actor=actor,
        reason=reason,
    )
    after = _snapshot(version, _LAB_FIELDS)
    if before == after:
        raise Conflict("The correction is identical to the current version")
    lab.current_version = version.version
    session.add(lab)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="lab_result.correct",
        entity_type="lab_result",
        entity_id=lab.id,
        study_id=participant.study_id,
        participant_id=participant.id,
        reason=reason,
        before=before,
        after=after,
    )
    return version


def get_lab(session: Session, *, lab_id: uuid.UUID) -> LabResult:
    lab = session.get(LabResult, lab_id)
    if lab is None:
        raise NotFound("No such lab result")
    return lab


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
    stmt = (
        select(LabResult, LabResultVersion)
        .join(LabResultVersion, col(LabResultVersion.lab_id) == LabResult.id)
        .where(
            LabResult.participant_id == participant_id,
            col(LabResultVersion.version) == col(LabResult.current_version),
        )
        .order_by(col(LabResultVersion.collected_at), col(LabResult.id))
    )
    if analyte:
        stmt = stmt.where(LabResult.analyte == analyte)
    return [lab_out(lab, v) for lab, v in session.exec(stmt).all()]


def lab_history(session: Session, lab: LabResult) -> list[LabOut]:
    rows = session.exec(
        select(LabResultVersion)
        .where(LabResultVersion.lab_id == lab.id)
        .order_by(col(LabResultVersion.version))
    ).all()
    return [lab_out(lab, r) for r in rows]
