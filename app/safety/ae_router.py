"""Portal routes for adverse events: recorded and corrected by the participant's site
investigators, read by monitors, reported per study; and the CTCAE term vocabulary."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlmodel import Session

from app.auth.deps import CurrentStaff
from app.auth.principal import StaffPrincipal
from app.core.db import SessionDep
from app.core.pagination import Page, PageParams, page_params
from app.core.responses import errors
from app.core.routing import StrictRoute
from app.participants import service as participants_service
from app.participants.deps import ClinicalParticipant, ValidParticipant
from app.participants.models import Participant
from app.safety import adverse_events, ae_reporting
from app.safety.ae_models import AdverseEvent
from app.safety.ae_schemas import (
    AdverseEventCreate,
    AdverseEventOut,
    AdverseEventRow,
    AdverseEventSummary,
    AdverseEventUpdate,
    CtcaeTermOut,
    CtcaeVocabulary,
)
from app.safety.ctcae import CTCAE_VERSION, TERMS
from app.studies import service as studies_service

portal_router = APIRouter(route_class=StrictRoute, tags=["adverse events"])
Pagination = Annotated[PageParams, Depends(page_params)]


def _event(
    session: Session, staff: StaffPrincipal, ae_id: uuid.UUID, permission: str
) -> tuple[AdverseEvent, Participant]:
    """The event and its participant: 404 outside the caller's sites, 403 without permission."""
    head = adverse_events.get(session, adverse_event_id=ae_id)
    participant = participants_service.get_for_staff(
        session, principal=staff, participant_id=head.participant_id, permission=permission
    )
    return head, participant


@portal_router.get("/vocabularies/ctcae-terms", response_model=CtcaeVocabulary)
def ctcae_terms() -> CtcaeVocabulary:
    """The CTCAE v5.0 terms adverse events are recorded with: MedDRA code, allowed grades
    (`grades_source` `C` from the CTCAE text, `U` assumed 1-5), and how the grade is found
    (`ctcae`: the investigator's; `astct_crs` / `astct_icans`: computed from the inputs)."""
    return CtcaeVocabulary(
        ctcae_version=CTCAE_VERSION,
        terms=[
            CtcaeTermOut(
                code=t.code,
                term=t.term,
                meddra_code=t.meddra_code,
                grades=list(t.grades),
                grades_source=t.grades_source,
                grading=t.grading,
            )
            for t in TERMS
        ],
    )


@portal_router.post(
    "/participants/{participant_id}/adverse-events",
    status_code=201,
    response_model=AdverseEventOut,
    responses=errors(404, 409),
)
def record_adverse_event(
    session: SessionDep,
    staff: CurrentStaff,
    participant: ClinicalParticipant,
    body: AdverseEventCreate,
) -> AdverseEventOut:
    """Record an adverse event (investigators of the participant's site).

    Cytokine release syndrome is graded by ASTCT 2019 from `crs_inputs`; Encephalopathy may be
    graded by ASTCT ICANS from `icans_inputs`; a `grade` given with inputs must agree. With
    `signal_id`, the participant's safety signal is converted into this event. Raises the alert
    `adverse_event.recorded`.
    """
    head, version = adverse_events.record(
        session, participant=participant, body=body, actor=staff.actor(participant.study_id)
    )
    return adverse_events.to_out(head, version)


@portal_router.get(
    "/participants/{participant_id}/adverse-events",
    response_model=list[AdverseEventOut],
    responses=errors(404),
)
def list_adverse_events(
    session: SessionDep, participant: ValidParticipant
) -> list[AdverseEventOut]:
    """A participant's adverse events (current versions), by onset."""
    return adverse_events.for_participant(session, participant_id=participant.id)


@portal_router.get("/adverse-events/{ae_id}", response_model=AdverseEventOut, responses=errors(404))
def get_adverse_event(
    session: SessionDep, staff: CurrentStaff, ae_id: uuid.UUID
) -> AdverseEventOut:
    """One adverse event, current version."""
    head, _ = _event(session, staff, ae_id, "participant.read")
    return adverse_events.to_out(head, adverse_events.current_version(session, head))


@portal_router.get(
    "/adverse-events/{ae_id}/versions", response_model=list[AdverseEventOut], responses=errors(404)
)
def adverse_event_versions(
    session: SessionDep, staff: CurrentStaff, ae_id: uuid.UUID
) -> list[AdverseEventOut]:
    """Every version of an adverse event, oldest first, each with its reason."""
    head, _ = _event(session, staff, ae_id, "participant.read")
    return adverse_events.history(session, head)


@portal_router.patch(
    "/adverse-events/{ae_id}", response_model=AdverseEventOut, responses=errors(404, 409)
)
def update_adverse_event(
    session: SessionDep, staff: CurrentStaff, ae_id: uuid.UUID, body: AdverseEventUpdate
) -> AdverseEventOut:
    """Update an adverse event: a new version from the fields given (the others kept) with a
    required `reason`; an unchanged event is 409. Raises the alert `adverse_event.updated`."""
    head, participant = _event(session, staff, ae_id, "clinical.write")
    version = adverse_events.update(
        session,
        head=head,
        participant=participant,
        patch=body,
        actor=staff.actor(participant.study_id),
    )
    return adverse_events.to_out(head, version)


@portal_router.get(
    "/studies/{study_id}/adverse-events",
    response_model=Page[AdverseEventRow],
    responses=errors(400, 404),
)
def study_adverse_events(
    session: SessionDep,
    staff: CurrentStaff,
    study_id: uuid.UUID,
    page: Pagination,
    grade: Annotated[int | None, Query(ge=1, le=5)] = None,
    serious: Annotated[bool | None, Query()] = None,
    related: Annotated[
        bool | None, Query(description="Relatedness possible, probable or definite (or not).")
    ] = None,
) -> Page[AdverseEventRow]:
    """The study's adverse events at the caller's sites, newest onset first: term, grade,
    relatedness, seriousness, onset, participant and site."""
    study = studies_service.get_study_for(
        session, principal=staff, study_id=study_id, permission="participant.read"
    )
    rows, next_cursor = ae_reporting.list_for_study(
        session,
        principal=staff,
        study_id=study.id,
        params=page,
        grade=grade,
        serious=serious,
        related=related,
    )
    return Page(items=rows, next_cursor=next_cursor)


@portal_router.get(
    "/studies/{study_id}/adverse-events/summary",
    response_model=AdverseEventSummary,
    responses=errors(404),
)
def study_adverse_event_summary(
    session: SessionDep, staff: CurrentStaff, study_id: uuid.UUID
) -> AdverseEventSummary:
    """Adverse-event incidence at the caller's sites by CTCAE term and grade: participants with
    at least one event over the participants, event counts, treatment-related (possible,
    probable, definite) and serious counts, participants by their maximum grade."""
    study = studies_service.get_study_for(
        session, principal=staff, study_id=study_id, permission="participant.read"
    )
    return ae_reporting.summary(session, principal=staff, study_id=study.id)
