"""Medication list routes: the participant's own list (app) and the site's view (portal)."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from app.audit.service import Actor
from app.auth.deps import CurrentStaff
from app.core.db import SessionDep
from app.core.errors import Forbidden, Unprocessable
from app.core.responses import errors
from app.core.routing import StrictRoute
from app.medications import service
from app.medications.schemas import (
    CorticosteroidDoses,
    MedicationChange,
    MedicationCreate,
    MedicationLineOut,
)
from app.participants.deps import CurrentParticipant, ValidParticipant
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


def _writer(staff: CurrentStaff, participant: ValidParticipant) -> Participant:
    if not staff.can("clinical.write", participant.study_id, participant.site_id):
        raise Forbidden("Only investigators of this participant's site can change medications")
    return participant


Writable = Annotated[Participant, Depends(_writer)]


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
    session: SessionDep, staff: CurrentStaff, participant: Writable, body: MedicationCreate
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
    participant: Writable,
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
