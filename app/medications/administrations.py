"""Study-drug administrations (doses and infusions). Day 0 defaults to the first one."""

from __future__ import annotations

import uuid
from zoneinfo import ZoneInfo

from sqlmodel import Session, col

from app.audit import service as audit
from app.audit.service import Actor
from app.audit.versioning import VersionedKind
from app.core import followups
from app.core.models import utcnow
from app.medications.models import StudyDrugAdministration, StudyDrugAdministrationVersion
from app.medications.schemas import AdministrationFields, AdministrationOut
from app.participants import service as participants_service
from app.participants.models import Participant
from app.studies import service as studies_service

_FIELDS = ("product", "dose", "unit", "started_at", "ended_at", "cycle", "dose_level")
DAY0_REASON = "Day 0 set from the first study-drug administration"


def _version(
    session: Session,
    *,
    administration: StudyDrugAdministration,
    participant: Participant,
    version: int,
    body: AdministrationFields,
    actor: Actor,
    reason: str | None,
) -> StudyDrugAdministrationVersion:
    row = StudyDrugAdministrationVersion(
        administration_id=administration.id,
        participant_id=participant.id,
        version=version,
        product=body.product,
        dose=body.dose,
        unit=body.unit,
        started_at=body.started_at,
        ended_at=body.ended_at,
        start_date=body.started_at.astimezone(ZoneInfo(participant.time_zone)).date(),
        cycle=body.cycle,
        dose_level=body.dose_level,
        reason=reason,
        actor_id=actor.id,
        actor_role=actor.role,
    )
    return row


ADMINISTRATIONS: VersionedKind[StudyDrugAdministration, StudyDrugAdministrationVersion] = (
    VersionedKind(
        head=StudyDrugAdministration,
        version=StudyDrugAdministrationVersion,
        head_key="administration_id",
        entity_type="study_drug_administration",
        audited=_FIELDS,
        not_found="No such administration",
    )
)


def record(
    session: Session, *, participant: Participant, body: AdministrationFields, actor: Actor
) -> tuple[StudyDrugAdministration, StudyDrugAdministrationVersion]:
    administration = StudyDrugAdministration(
        participant_id=participant.id, study_id=participant.study_id
    )
    first = _version(
        session,
        administration=administration,
        participant=participant,
        version=1,
        body=body,
        actor=actor,
        reason=None,
    )
    administration, version = ADMINISTRATIONS.create(
        session, head=administration, first=first, actor=actor
    )
    _default_day0(session, participant=participant, version=version, actor=actor)
    _after_dose(session, participant, version)
    return administration, version


def _after_dose(
    session: Session, participant: Participant, version: StudyDrugAdministrationVersion
) -> None:
    """Earlier diary data may fall inside this dose's risk window: the safety rules look again
    (app/core/followups.py), in this transaction."""
    protocol = studies_service.definition_for_version(session, participant.protocol_version_id)
    followups.run_on_session(
        session, followups.Written(participant, protocol, dose_on=version.start_date)
    )


def _default_day0(
    session: Session,
    *,
    participant: Participant,
    version: StudyDrugAdministrationVersion,
    actor: Actor,
) -> None:
    """A protocol whose day 0 is the first administration gets it from the first one recorded.

    A day 0 already set (by the investigator or an earlier administration) is left alone: moving
    it is a deliberate, reasoned change through the participant record.
    """
    if participant.day0_date is not None:
        return
    protocol = studies_service.definition_for_version(session, participant.protocol_version_id)
    if protocol.day0_event != "first_administration":
        return
    before = participants_service.snapshot(participant)
    participant.day0_date = version.start_date
    participant.updated_at = utcnow()
    session.add(participant)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="participant.update",
        entity_type="participant",
        entity_id=participant.id,
        study_id=participant.study_id,
        participant_id=participant.id,
        before=before,
        after=participants_service.snapshot(participant),
        reason=DAY0_REASON,
    )
    participants_service.day0_changed(
        session, participant=participant, actor=actor, reason=DAY0_REASON
    )


def correct(
    session: Session,
    *,
    administration: StudyDrugAdministration,
    participant: Participant,
    body: AdministrationFields,
    reason: str,
    actor: Actor,
) -> StudyDrugAdministrationVersion:
    new = _version(
        session,
        administration=administration,
        participant=participant,
        version=0,
        body=body,
        actor=actor,
        reason=reason,
    )
    version = ADMINISTRATIONS.amend(
        session, head=administration, new=new, actor=actor, reason=reason
    )
    _after_dose(session, participant, version)
    return version


def get(session: Session, *, administration_id: uuid.UUID) -> StudyDrugAdministration:
    return ADMINISTRATIONS.get(session, administration_id)


def to_out(
    administration: StudyDrugAdministration, version: StudyDrugAdministrationVersion
) -> AdministrationOut:
    return AdministrationOut(
        id=administration.id,
        participant_id=administration.participant_id,
        version=version.version,
        product=version.product,
        dose=version.dose,
        unit=version.unit,
        started_at=version.started_at,
        ended_at=version.ended_at,
        start_date=version.start_date,
        cycle=version.cycle,
        dose_level=version.dose_level,
        reason=version.reason,
        recorded_by=version.actor_role,
        recorded_at=version.created_at,
    )


def current(session: Session, *, participant_id: uuid.UUID) -> list[AdministrationOut]:
    rows = ADMINISTRATIONS.current_rows(
        session,
        participant_id=participant_id,
        order_by=[col(StudyDrugAdministrationVersion.started_at)],
    )
    return [to_out(a, v) for a, v in rows]


def history(session: Session, administration: StudyDrugAdministration) -> list[AdministrationOut]:
    return [to_out(administration, r) for r in ADMINISTRATIONS.history(session, administration)]
