"""Safety signals for investigators, and the participant's open prompts in the app."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from app.auth.deps import CurrentStaff
from app.core.db import SessionDep
from app.core.pagination import Page, PageParams, page_params, paginate
from app.core.responses import errors
from app.core.routing import StrictRoute
from app.participants.deps import CurrentParticipant
from app.safety import service
from app.safety.models import SafetySignal
from app.safety.schemas import (
    AcknowledgeBody,
    Category,
    DismissBody,
    FindingOut,
    Priority,
    PromptList,
    PromptOut,
    SignalDetail,
    SignalOut,
    Status,
)
from app.studies import service as studies_service

portal_router = APIRouter(route_class=StrictRoute, tags=["safety"])
app_router = APIRouter(route_class=StrictRoute, tags=["safety"])

Pagination = Annotated[PageParams, Depends(page_params)]


@portal_router.get(
    "/studies/{study_id}/safety-signals",
    response_model=Page[SignalOut],
    responses=errors(404),
)
def study_signals(
    session: SessionDep,
    staff: CurrentStaff,
    study_id: uuid.UUID,
    page: Pagination,
    status: Annotated[Status | None, Query()] = None,
    priority: Annotated[Priority | None, Query()] = None,
    category: Annotated[Category | None, Query()] = None,
    participant_id: Annotated[uuid.UUID | None, Query()] = None,
) -> Page[SignalOut]:
    """The study's safety signals at the caller's sites, newest first. A signal is an episode:
    one participant, one category, its findings joined while they keep arriving within the
    protocol's dedup window; `priority` is the highest of its findings."""
    study = studies_service.get_study_for(
        session, principal=staff, study_id=study_id, permission="participant.read"
    )
    stmt = service.signals_query(
        staff,
        study_id=study.id,
        status=status,
        priority=priority,
        category=category,
        participant_id=participant_id,
    )
    rows, next_cursor = paginate(
        session,
        stmt,
        order_by=[SafetySignal.opened_at, SafetySignal.id],  # type: ignore[list-item]
        params=page,
        scope=f"signals:{study.id}",
        descending=True,
    )
    return Page(items=[SignalOut.model_validate(r) for r in rows], next_cursor=next_cursor)


def _detail(session: SessionDep, signal: SafetySignal) -> SignalDetail:
    findings = [FindingOut.model_validate(f) for f in service.findings(session, signal)]
    return SignalDetail(**SignalOut.model_validate(signal).model_dump(), findings=findings)


@portal_router.get(
    "/safety-signals/{signal_id}", response_model=SignalDetail, responses=errors(404)
)
def get_signal(session: SessionDep, staff: CurrentStaff, signal_id: uuid.UUID) -> SignalDetail:
    """One signal with every finding (rule id and version, evidence, effect)."""
    signal = service.get_for_staff(session, staff, signal_id, "participant.read")
    return _detail(session, signal)


@portal_router.post(
    "/safety-signals/{signal_id}/acknowledge",
    response_model=SignalDetail,
    responses=errors(403, 404, 409),
)
def acknowledge_signal(
    session: SessionDep, staff: CurrentStaff, signal_id: uuid.UUID, body: AcknowledgeBody
) -> SignalDetail:
    """An investigator of the participant's site has seen the signal (audited). New findings
    still join it; a higher priority still escalates it."""
    signal = service.get_for_staff(session, staff, signal_id, "clinical.write")
    service.acknowledge(session, signal, actor=staff.actor(signal.study_id), note=body.note)
    return _detail(session, signal)


@portal_router.post(
    "/safety-signals/{signal_id}/dismiss",
    response_model=SignalDetail,
    responses=errors(403, 404, 409),
)
def dismiss_signal(
    session: SessionDep, staff: CurrentStaff, signal_id: uuid.UUID, body: DismissBody
) -> SignalDetail:
    """Close the signal as not an adverse event, with a reason (audited). Later findings open a
    new signal."""
    signal = service.get_for_staff(session, staff, signal_id, "clinical.write")
    service.dismiss(session, signal, actor=staff.actor(signal.study_id), reason=body.reason)
    return _detail(session, signal)


@app_router.get("/safety/prompts", response_model=PromptList)
def my_prompts(session: SessionDep, participant: CurrentParticipant) -> PromptList:
    """What the app should ask for now: a measured temperature after a fever-like symptom was
    recorded without one. A prompt disappears when a temperature is recorded (from an hour
    before the symptom on) or when it lapses (protocol `safety.prompt_expiry_hours`)."""
    prompts = service.open_prompts(session, participant)
    return PromptList(items=[PromptOut.model_validate(p) for p in prompts])
