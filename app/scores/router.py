"""Portal routes for clinic data: instrument assessments and lab results."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from sqlmodel import Session

from app.auth.deps import CurrentStaff
from app.auth.principal import StaffPrincipal
from app.core.db import SessionDep
from app.core.pagination import Page, PageParams, page_params
from app.core.responses import errors
from app.core.routing import StrictRoute
from app.participants import service as participants_service
from app.participants.deps import ClinicalParticipant, CurrentParticipant, ValidParticipant
from app.participants.models import Participant
from app.safety import service as safety_service
from app.scores import clinic, outcomes, overview, trend_service
from app.scores import picture as picture_service
from app.scores.deps import SummaryCacheDep
from app.scores.outcome_summaries import SummaryCache
from app.scores.overview import ParticipantRow
from app.scores.schemas import (
    Analyte,
    AssessmentCorrection,
    AssessmentCreate,
    AssessmentOut,
    Instrument,
    LabCorrection,
    LabCreate,
    LabOut,
    TrendOut,
)
from app.scores.trend_service import TrendInstrument
from app.studies import service as studies_service

portal_router = APIRouter(route_class=StrictRoute, tags=["clinic data"])
app_router = APIRouter(route_class=StrictRoute, tags=["trends"])
SVG: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/svg+xml": {}}, "description": "The trend as an SVG picture"}
}


def _owner(
    session: Session, staff: StaffPrincipal, participant_id: uuid.UUID, permission: str
) -> Participant:
    return participants_service.get_for_staff(
        session, principal=staff, participant_id=participant_id, permission=permission
    )


@portal_router.post(
    "/participants/{participant_id}/assessments",
    status_code=201,
    response_model=AssessmentOut,
    responses=errors(404),
)
def record_assessment(
    session: SessionDep,
    staff: CurrentStaff,
    participant: ClinicalParticipant,
    body: AssessmentCreate,
) -> AssessmentOut:
    """Record a clinic assessment (MG-ADL, QMG, MGC, MG-QoL15r, MG-QoL15) and score it.

    QMG items may come as grades or as raw `measurements` (converted with the threshold table;
    the protocol sets the uncertain rows). MGC items are response levels 0-3, scored with the
    instrument's weights.
    """
    assessment, version = clinic.record_assessment(
        session,
        participant=participant,
        instrument=body.instrument,
        body=body,
        actor=staff.actor(participant.study_id),
    )
    return clinic.assessment_out(assessment, version)


@portal_router.get(
    "/participants/{participant_id}/assessments",
    response_model=list[AssessmentOut],
    responses=errors(404),
)
def list_assessments(
    session: SessionDep,
    participant: ValidParticipant,
    instrument: Annotated[Instrument | None, Query()] = None,
) -> list[AssessmentOut]:
    """A participant's clinic assessments (current versions), by assessment time."""
    return clinic.current_assessments(session, participant_id=participant.id, instrument=instrument)


@portal_router.post(
    "/assessments/{assessment_id}/corrections",
    status_code=201,
    response_model=AssessmentOut,
    responses=errors(404, 409),
)
def correct_assessment(
    session: SessionDep, staff: CurrentStaff, assessment_id: uuid.UUID, body: AssessmentCorrection
) -> AssessmentOut:
    """Correct an assessment: a new, rescored version with a reason."""
    assessment = clinic.get_assessment(session, assessment_id=assessment_id)
    participant = _owner(session, staff, assessment.participant_id, "clinical.write")
    version = clinic.correct_assessment(
        session,
        assessment=assessment,
        participant=participant,
        body=body,
        reason=body.reason,
        actor=staff.actor(participant.study_id),
    )
    return clinic.assessment_out(assessment, version)


@portal_router.get(
    "/assessments/{assessment_id}/versions",
    response_model=list[AssessmentOut],
    responses=errors(404),
)
def assessment_versions(
    session: SessionDep, staff: CurrentStaff, assessment_id: uuid.UUID
) -> list[AssessmentOut]:
    """Every version of an assessment, oldest first."""
    assessment = clinic.get_assessment(session, assessment_id=assessment_id)
    _owner(session, staff, assessment.participant_id, "participant.read")
    return clinic.assessment_history(session, assessment)


@portal_router.post(
    "/participants/{participant_id}/labs",
    status_code=201,
    response_model=LabOut,
    responses=errors(404),
)
def record_lab(
    session: SessionDep, staff: CurrentStaff, participant: ClinicalParticipant, body: LabCreate
) -> LabOut:
    """Record a lab result: antibody titres, B-cell counts and subsets, CAR-T cells, IgG."""
    lab, version = clinic.record_lab(
        session,
        participant=participant,
        analyte=body.analyte,
        body=body,
        actor=staff.actor(participant.study_id),
    )
    return clinic.lab_out(lab, version)


@portal_router.get(
    "/participants/{participant_id}/labs", response_model=list[LabOut], responses=errors(404)
)
def list_labs(
    session: SessionDep,
    participant: ValidParticipant,
    analyte: Annotated[Analyte | None, Query()] = None,
) -> list[LabOut]:
    """A participant's lab results (current versions), by collection time."""
    return clinic.current_labs(session, participant_id=participant.id, analyte=analyte)


@portal_router.post(
    "/labs/{lab_id}/corrections", status_code=201, response_model=LabOut, responses=errors(404, 409)
)
def correct_lab(
    session: SessionDep, staff: CurrentStaff, lab_id: uuid.UUID, body: LabCorrection
) -> LabOut:
    """Correct a lab result: a new version with a reason."""
    lab = clinic.get_lab(session, lab_id=lab_id)
    participant = _owner(session, staff, lab.participant_id, "clinical.write")
    version = clinic.correct_lab(
        session,
        lab=lab,
        participant=participant,
        body=body,
        reason=body.reason,
        actor=staff.actor(participant.study_id),
    )
    return clinic.lab_out(lab, version)


@portal_router.get("/labs/{lab_id}/versions", response_model=list[LabOut], responses=errors(404))
def lab_versions(session: SessionDep, staff: CurrentStaff, lab_id: uuid.UUID) -> list[LabOut]:
    """Every version of a lab result, oldest first."""
    lab = clinic.get_lab(session, lab_id=lab_id)
    _owner(session, staff, lab.participant_id, "participant.read")
    return clinic.lab_history(session, lab)


# --- trends -------------------------------------------------------------------------------


@portal_router.get(
    "/participants/{participant_id}/trends/{instrument}.svg",
    response_class=Response,
    responses={**SVG, **errors(404)},
)
def participant_trend_svg(
    session: SessionDep, participant: ValidParticipant, instrument: TrendInstrument
) -> Response:
    """The trend as a picture: series, baseline, improvement band and day 0, with study-drug
    administrations (vertical markers, infusion days shaded) and clinic visits (completed,
    scheduled, missed) marked, and a legend. No identifiers or free text are drawn."""
    picture = picture_service.participant_trend_svg(
        session, participant=participant, instrument=instrument
    )
    return Response(picture, media_type="image/svg+xml")


@portal_router.get(
    "/participants/{participant_id}/trends/{instrument}",
    response_model=TrendOut,
    responses=errors(404),
)
def participant_trend(
    session: SessionDep, participant: ValidParticipant, instrument: TrendInstrument
) -> dict[str, Any]:
    """A participant's series with baseline, change and events (improvement, sustained response,
    MSE, worsening) per the protocol's rules; diary and clinic values together for MG-ADL."""
    return trend_service.participant_trend(session, participant=participant, instrument=instrument)


@app_router.get("/trends/mg_adl", response_model=TrendOut)
def own_mg_adl_trend(session: SessionDep, participant: CurrentParticipant) -> dict[str, Any]:
    """The participant's own MG-ADL trend (diary and clinic values) against their baseline."""
    return trend_service.participant_trend(session, participant=participant, instrument="mg_adl")


# --- study outcomes -----------------------------------------------------------------------

CSV: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "The outcome table as CSV"}
}


def _outcomes(
    session: Session, staff: StaffPrincipal, study_id: uuid.UUID, cache: SummaryCache
) -> dict[str, Any]:
    study = studies_service.get_study_for(
        session, principal=staff, study_id=study_id, permission="participant.read"
    )
    protocol = studies_service.protocol_definition(
        studies_service.current_protocol(session, study=study)
    )
    return outcomes.study_outcomes(
        session, study=study, protocol=protocol, principal=staff, cache=cache
    )


@portal_router.get(
    "/studies/{study_id}/outcomes.csv", response_class=Response, responses={**CSV, **errors(404)}
)
def study_outcomes_csv(
    session: SessionDep, staff: CurrentStaff, study_id: uuid.UUID, cache: SummaryCacheDep
) -> Response:
    """The per-instrument, per-visit outcome table as CSV."""
    document = _outcomes(session, staff, study_id, cache)
    return Response(
        outcomes.outcomes_csv(document),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="outcomes-{study_id}.csv"'},
    )


@portal_router.get("/studies/{study_id}/outcomes", responses=errors(404))
def study_outcomes(
    session: SessionDep, staff: CurrentStaff, study_id: uuid.UUID, cache: SummaryCacheDep
) -> dict[str, Any]:
    """The registered outcome measures across the caller's participants in the study.

    Per instrument and scheduled visit: n, mean and median change from baseline with SD and
    95 % CI, and responders per the protocol's deltas; Kaplan-Meier estimates of the time to
    MSE and to the first clinically meaningful MG-ADL improvement (censored at last contact or
    withdrawal); the proportion without confirmed MG-ADL worsening; per visit and overall, the
    proportions without relapse (among responders; the protocol's `efficacy.relapse` rule) and
    with corticosteroid dose reduction (among participants on corticosteroids at baseline; the
    protocol's `efficacy.corticosteroid_reduction`), each as n (denominator), count and
    proportion; and `adverse_events`, the adverse-event incidence summary by CTCAE term and
    maximum grade (as `GET /studies/{study_id}/adverse-events/summary`).
    """
    return _outcomes(session, staff, study_id, cache)


# --- participant overview -----------------------------------------------------------------

Pagination = Annotated[PageParams, Depends(page_params)]


@portal_router.get(
    "/studies/{study_id}/participants",
    response_model=Page[ParticipantRow],
    responses=errors(400, 404),
    tags=["participants"],
)
def list_participants(
    session: SessionDep,
    staff: CurrentStaff,
    study_id: uuid.UUID,
    page: Pagination,
    site_id: Annotated[uuid.UUID | None, Query()] = None,
    status: Annotated[
        Literal["screening", "enrolled", "withdrawn", "completed"] | None, Query()
    ] = None,
) -> Page[ParticipantRow]:
    """Participants at the caller's sites, by subject code, each with the latest MG-ADL, its
    change from baseline, diary adherence and the number of open safety signals; filter by
    site and status."""
    study = studies_service.get_study_for(
        session, principal=staff, study_id=study_id, permission="participant.read"
    )
    rows, next_cursor = participants_service.list_for_staff(
        session, principal=staff, study_id=study.id, site_id=site_id, status=status, params=page
    )
    versions = participants_service.version_numbers(session, study_id=study.id)
    items = overview.participant_rows(session, rows, versions)
    # The safety domain sits above scores; the router, the top layer, joins the two.
    counts = safety_service.open_counts(session, [p.id for p in rows])
    for item in items:
        item.open_signals = counts.get(item.id, 0)
    return Page(items=items, next_cursor=next_cursor)
