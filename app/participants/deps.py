"""Dependencies that resolve the calling participant, or a participant a staff member may see."""

from __future__ import annotations

import uuid
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends
from sqlmodel import select

from app.auth.deps import CurrentStaff, ParticipantClaims
from app.core.db import SessionDep
from app.core.errors import DomainError, Forbidden, Unauthorized
from app.participants import activation
from app.participants import service as participants_service
from app.participants.models import Participant


class ParticipantWithdrawn(DomainError):
    status_code = 403
    code = "participant_withdrawn"
    title = "Participation has ended"


def get_current_participant(session: SessionDep, principal: ParticipantClaims) -> Participant:
    """The participant behind an app token, checked against the database on every request."""
    # One round trip: the participant and, for a session token, whether its family is revoked.
    revoked = (
        activation.family_revoked_clause(principal.family_id)
        if principal.family_id is not None
        else sa.false()
    )
    row = session.exec(
        select(Participant, revoked).where(Participant.id == principal.participant_id)
    ).first()
    if row is None:
        raise Unauthorized("This participant is not known")
    participant, family_revoked = row
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
