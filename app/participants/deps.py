"""Dependencies that resolve the calling participant, or a participant a staff member may see."""

from __future__ import annotations

import uuid
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends
from sqlmodel import Session, select

from app.auth.deps import CurrentStaff, ParticipantClaims
from app.auth.principal import ParticipantPrincipal
from app.core.db import SessionDep
from app.core.errors import DomainError, Forbidden, Unauthorized
from app.participants import activation
from app.participants import service as participants_service
from app.participants.models import Participant


class ParticipantWithdrawn(DomainError):
    status_code = 403
    code = "participant_withdrawn"
    title = "Participation has ended"


_PARTICIPANT = select(Participant, sa.false()).where(
    Participant.id == sa.bindparam("participant_id")
)
_PARTICIPANT_IN_FAMILY = select(
    Participant, activation.family_revoked_clause(sa.bindparam("family_id"))
).where(Participant.id == sa.bindparam("participant_id"))


def participant_row(
    session: Session, principal: ParticipantPrincipal
) -> tuple[Participant | None, bool]:
    """One round trip: the participant and, for a session token, whether its family is
    revoked. The statements are built once (building one costs more than running it)."""
    params: dict[str, uuid.UUID] = {"participant_id": principal.participant_id}
    statement = _PARTICIPANT
    if principal.family_id is not None:
        statement, params["family_id"] = _PARTICIPANT_IN_FAMILY, principal.family_id
    row = session.exec(statement, params=params).first()
    if row is None:
        return None, False
    return row[0], bool(row[1])


def get_current_participant(session: SessionDep, principal: ParticipantClaims) -> Participant:
    """The participant behind an app token, checked against the database on every request."""
    return load_participant(session, principal)


def load_participant(session: Session, principal: ParticipantPrincipal) -> Participant:
    """``get_current_participant`` for routes that run their own unit of work (app/core/uow.py)."""
    return check_participant(*participant_row(session, principal))


def check_participant(participant: Participant | None, family_revoked: bool) -> Participant:
    """The participant a token may act for: known, not withdrawn, session not revoked."""
    if participant is None:
        raise Unauthorized("This participant is not known")
    # Before the session check: withdrawal also revokes every session, and the app must learn
    # that participation ended (403), not that it should ask for a new activation code (401).
    if participant.status == "withdrawn":
        raise ParticipantWithdrawn("The participant has been withdrawn from the study")
    if family_revoked:
        raise Unauthorized("This session has been revoked; activate the app again")
    return participant


def valid_participant(
    session: SessionDep, staff: CurrentStaff, participant_id: uuid.UUID
) -> Participant:
    """A participant the calling staff member may read (404 outside their sites)."""
    return participants_service.get_for_staff(
        session, principal=staff, participant_id=participant_id
    )


def clinical_writer(staff: CurrentStaff, participant: ValidParticipant) -> Participant:
    """A participant whose clinical data the caller may record or correct (investigators of
    the participant's site): 404 outside the caller's sites, 403 for other roles."""
    if not staff.can("clinical.write", participant.study_id, participant.site_id):
        raise Forbidden("Only investigators of this participant's site record clinical data")
    return participant


CurrentParticipant = Annotated[Participant, Depends(get_current_participant)]
ValidParticipant = Annotated[Participant, Depends(valid_participant)]
ClinicalParticipant = Annotated[Participant, Depends(clinical_writer)]
