"""Medication list routes: the participant's own list (app) and the site's view (portal)."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query

from app.audit.service import Actor
from app.auth.deps import CurrentStaff
from app.core.db import SessionDep
from app.core.errors import Unprocessable
from app.core.responses import errors
from app.core.routing import StrictRoute
from app.medications import administrations, service
from app.medications.schemas import (
    AdministrationCorrection,
    AdministrationCreate,
    AdministrationOut,
    CorticosteroidDoses,
    MedicationChange,
    MedicationCreate,
    MedicationLineOut,
)
from app.participants import service as participants_service
from app.participants.deps import ClinicalParticipant, CurrentParticipant, ValidParticipant
from app.participants.models import Participant

app_router = APIRouter(route_class=StrictRoute, tags=["medications"])
portal_router = APIRouter(route_class=StrictRoute, tags=["medications"])
MAX_RANGE_DAYS = 366


def _participant_actor(participant: Participant) -> Actor:
    return Actor(type="participant", id=str(participant.id), role="participant")


def _range(date_from: date, date_to: date) -> None:
    if date_to < date_from:
        raise Unprocessable("`to` is before `from`", field=("query", "to"), rule="date_range")
    if (date_to - date_from).days >= MAX_RANGE_DAYS:
        raise Unprocessable(
            f"ask for at most {MAX_RANGE_DAYS} days at a time",
            field=("query", "to"),
            rule="date_range",
        )


def _lines(session: SessionDep, participant: Participant) -> list[MedicationLineOut]:
    return [
        service.to_out(line, version)
        for line, version in service.current_lines(session, participant_id=participant.id)
    ]


# --- app --------------------------------------------------------------------------------


@app_router.get("/medications", response_model=list[MedicationLineOut])
def list_own_medications(
    session: SessionDep, participant: CurrentParticipant
) -> list[MedicationLineOut]:
    """The participant's medication list (current versions), stopped lines included."""
    return _lines(session, participant)


@app_router.post("/medications", status_code=201, response_model=MedicationLineOut)
def add_own_medication(
    session: SessionDep, participant: CurrentParticipant, body: MedicationCreate
) -> MedicationLineOut:
    """Add a medication the participant takes (drug, dose, unit, route, frequency, dates)."""
    line, version = service.add(
        session,
        participant=participant,
        body=body,
        reason=body.reason,
        actor=_participant_actor(participant),
    )
    return service.to_out(line, version)


@app_router.post(
    "/medications/{medication_id}/changes",
    status_code=201,
    response_model=MedicationLineOut,
    responses=errors(404, 409),
)
def change_own_medication(
    session: SessionDep,
    participant: CurrentParticipant,
    medication_id: uuid.UUID,
    body: MedicationChange,
) -> MedicationLineOut:
    """Change or stop a medication (set `stop_date`): a new version with a reason."""
    line = service.get_line(session, participant_id=participant.id, line_id=medication_id)
    version = service.change(
        session, line=line, body=body, reason=body.reason, actor=_participant_actor(participant)
    )
    return service.to_out(line, version)


@app_router.get(
    "/medications/{medication_id}/versions",
    response_model=list[MedicationLineOut],
    responses=errors(404),
)
def own_medication_versions(
    session: SessionDep, participant: CurrentParticipant, medication_id: uuid.UUID
) -> list[MedicationLineOut]:
    """Every version of a medication line, oldest first, with reasons."""
    return service.history(session, participant_id=participant.id, line_id=medication_id)


# --- portal -----------------------------------------------------------------------------


@portal_router.get(
    "/participants/{participant_id}/medications",
    response_model=list[MedicationLineOut],
    responses=errors(404),
)
def list_participant_medications(
    session: SessionDep, participant: ValidParticipant
) -> list[MedicationLineOut]:
    """A participant's medication list (current versions)."""
    return _lines(session, participant)


@portal_router.post(
    "/participants/{participant_id}/medications",
    status_code=201,
    response_model=MedicationLineOut,
    responses=errors(404),
)
def add_participant_medication(
    session: SessionDep,
    staff: CurrentStaff,
    participant: ClinicalParticipant,
    body: MedicationCreate,
) -> MedicationLineOut:
    """Add a medication to a participant's list (investigators)."""
    line, version = service.add(
        session,
        participant=participant,
        body=body,
        reason=body.reason,
        actor=staff.actor(participant.study_id),
    )
    return service.to_out(line, version)


@portal_router.post(
    "/participants/{participant_id}/medications/{medication_id}/changes",
    status_code=201,
    response_model=MedicationLineOut,
    responses=errors(404, 409),
)
def change_participant_medication(
    session: SessionDep,
    staff: CurrentStaff,
    participant: ClinicalParticipant,
    medication_id: uuid.UUID,
    body: MedicationChange,
) -> MedicationLineOut:
    """Change or stop a participant's medication: a new version with a reason."""
    line = service.get_line(session, participant_id=participant.id, line_id=medication_id)
    version = service.change(
        session, line=line, body=body, reason=body.reason, actor=staff.actor(participant.study_id)
    )
    return service.to_out(line, version)


@portal_router.get(
    "/participants/{participant_id}/medications/{medication_id}/versions",
    response_model=list[MedicationLineOut],
    responses=errors(404),
)
def participant_medication_versions(
    session: SessionDep, participant: ValidParticipant, medication_id: uuid.UUID
) -> list[MedicationLineOut]:
    """Every version of a participant's medication line, oldest first."""
    return service.history(session, participant_id=participant.id, line_id=medication_id)


@portal_router.get(
    "/participants/{participant_id}/corticosteroid-doses",
    response_model=CorticosteroidDoses,
    responses=errors(404),
)
def participant_corticosteroid_doses(
    session: SessionDep,
    participant: ValidParticipant,
    from_: Annotated[date, Query(alias="from")],
    to: Annotated[date, Query()],
) -> CorticosteroidDoses:
    """Daily prednisone-equivalent corticosteroid dose derived from the medication list."""
    _range(from_, to)
    return service.corticosteroid_doses(
        session, participant_id=participant.id, date_from=from_, date_to=to
    )


# --- study-drug administrations -----------------------------------------------------------


@portal_router.post(
    "/participants/{participant_id}/administrations",
    status_code=201,
    response_model=AdministrationOut,
    responses=errors(404),
)
def record_administration(
    session: SessionDep,
    staff: CurrentStaff,
    participant: ClinicalParticipant,
    body: AdministrationCreate,
) -> AdministrationOut:
    """Record a study-drug dose or infusion (product, dose, unit, start, end, cycle).

    When the protocol's day 0 is the first administration and the participant has none yet,
    the first one recorded sets it (audited).
    """
    administration, version = administrations.record(
        session, participant=participant, body=body, actor=staff.actor(participant.study_id)
    )
    return administrations.to_out(administration, version)


@portal_router.get(
    "/participants/{participant_id}/administrations",
    response_model=list[AdministrationOut],
    responses=errors(404),
)
def list_administrations(
    session: SessionDep, participant: ValidParticipant
) -> list[AdministrationOut]:
    """A participant's study-drug administrations (current versions), oldest first."""
    return administrations.current(session, participant_id=participant.id)


def _owned(
    session: SessionDep, staff: CurrentStaff, administration_id: uuid.UUID, permission: str
) -> tuple[Any, Participant]:
    administration = administrations.get(session, administration_id=administration_id)
    participant = participants_service.get_for_staff(
        session,
        principal=staff,
        participant_id=administration.participant_id,
        permission=permission,
    )
    return administration, participant


@portal_router.post(
    "/administrations/{administration_id}/corrections",
    status_code=201,
    response_model=AdministrationOut,
    responses=errors(404, 409),
)
def correct_administration(
    session: SessionDep,
    staff: CurrentStaff,
    administration_id: uuid.UUID,
    body: AdministrationCorrection,
) -> AdministrationOut:
    """Correct an administration: a new version with a reason (day 0 is not moved by it)."""
    administration, participant = _owned(session, staff, administration_id, "clinical.write")
    version = administrations.correct(
        session,
        administration=administration,
        participant=participant,
        body=body,
        reason=body.reason,
        actor=staff.actor(participant.study_id),
    )
    return administrations.to_out(administration, version)


@portal_router.get(
    "/administrations/{administration_id}/versions",
    response_model=list[AdministrationOut],
    responses=errors(404),
)
def administration_versions(
    session: SessionDep, staff: CurrentStaff, administration_id: uuid.UUID
) -> list[AdministrationOut]:
    """Every version of an administration, oldest first."""
    administration, _ = _owned(session, staff, administration_id, "participant.read")
    return administrations.history(session, administration)
