"""Participant routes: enrolment and management (portal), profile (app), onboarding (auth)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.responses import JSONResponse

from app.auth.deps import CurrentStaff
from app.core.db import SessionDep
from app.core.errors import Conflict, Forbidden, NotFound, TooManyRequests, problem_response
from app.core.pagination import PageParams, page_params
from app.core.ratelimit import RateLimiter
from app.core.responses import errors
from app.core.routing import StrictRoute
from app.participants import activation, service
from app.participants.deps import CurrentParticipant, ValidParticipant
from app.participants.models import Participant
from app.participants.schemas import (
    ActivateRequest,
    ActivationCodeIssued,
    MePublic,
    ParticipantCreate,
    ParticipantEnrolled,
    ParticipantPublic,
    ParticipantUpdate,
    RefreshRequest,
    TokenPair,
    WithdrawRequest,
)
from app.studies import service as studies_service

portal_router = APIRouter(route_class=StrictRoute, tags=["participants"])
app_router = APIRouter(route_class=StrictRoute, tags=["profile"])
auth_router = APIRouter(route_class=StrictRoute, tags=["auth"])
Pagination = Annotated[PageParams, Depends(page_params)]


def _writable(staff: CurrentStaff, participant: ValidParticipant) -> Participant:
    if not staff.can("participant.write", participant.study_id, participant.site_id):
        raise Forbidden("Only investigators of this participant's site can change the record")
    return participant


WritableParticipant = Annotated[Participant, Depends(_writable)]


@portal_router.post(
    "/studies/{study_id}/participants",
    status_code=status.HTTP_201_CREATED,
    response_model=ParticipantEnrolled,
    responses=errors(404, 409),
)
def enrol_participant(
    session: SessionDep, staff: CurrentStaff, study_id: uuid.UUID, body: ParticipantCreate
) -> ParticipantEnrolled:
    """Enrol a participant at one of the caller's sites.

    The response carries a one-time activation code for the app; it is shown only here. The
    participant records the study's current protocol version.
    """
    study = studies_service.get_study_for(session, principal=staff, study_id=study_id)
    if not staff.in_scope(study.id, body.site_id):
        raise NotFound("No such site in this study")
    if not staff.can("participant.write", study.id, body.site_id):
        raise Forbidden("Only investigators of this site can enrol participants")
    participant, code, expires_at = service.enrol(
        session, study=study, body=body, actor=staff.actor(study.id)
    )
    public = service.to_public(session, participant)
    return ParticipantEnrolled(
        **public.model_dump(), activation_code=code, activation_expires_at=expires_at
    )


@portal_router.get(
    "/participants/{participant_id}", response_model=ParticipantPublic, responses=errors(404)
)
def get_participant(session: SessionDep, participant: ValidParticipant) -> ParticipantPublic:
    """One participant (404 when outside the caller's sites)."""
    return service.to_public(session, participant)


@portal_router.patch(
    "/participants/{participant_id}", response_model=ParticipantPublic, responses=errors(404, 409)
)
def update_participant(
    session: SessionDep,
    staff: CurrentStaff,
    participant: WritableParticipant,
    body: ParticipantUpdate,
) -> ParticipantPublic:
    """Change site, time zone, day 0, dose level or status; a reason is required and audited.

    A transfer needs the same rights at the new site as enrolment there: a site outside the
    caller's sites is 404, one they cannot write at is 403.
    """
    if body.site_id is not None and body.site_id != participant.site_id:
        if not staff.in_scope(participant.study_id, body.site_id):
            raise NotFound("No such site in this study")
        if not staff.can("participant.write", participant.study_id, body.site_id):
            raise Forbidden("Only investigators of the new site can move a participant there")
    updated = service.update(
        session, participant=participant, body=body, actor=staff.actor(participant.study_id)
    )
    return service.to_public(session, updated)


@portal_router.post(
    "/participants/{participant_id}/withdraw",
    response_model=ParticipantPublic,
    responses=errors(404, 409),
)
def withdraw_participant(
    session: SessionDep,
    staff: CurrentStaff,
    participant: WritableParticipant,
    body: WithdrawRequest,
) -> ParticipantPublic:
    """Withdraw with a reason. The app's tokens stop working on its next request."""
    withdrawn = service.withdraw(
        session,
        participant=participant,
        reason=body.reason,
        actor=staff.actor(participant.study_id),
    )
    return service.to_public(session, withdrawn)


@portal_router.post(
    "/participants/{participant_id}/activation-code",
    status_code=201,
    response_model=ActivationCodeIssued,
    responses=errors(404, 409),
)
def reissue_activation_code(
    session: SessionDep, staff: CurrentStaff, participant: WritableParticipant
) -> ActivationCodeIssued:
    """Issue a new activation code (a new phone, a lost code); earlier unused codes stop working."""
    if participant.status not in activation.ACTIVE_STATUSES:
        raise Conflict(f"No activation code for a participant who is {participant.status}")
    code, expires_at = activation.issue_code(
        session, participant=participant, actor=staff.actor(participant.study_id)
    )
    return ActivationCodeIssued(
        participant_id=participant.id, activation_code=code, activation_expires_at=expires_at
    )


@app_router.get("/me", response_model=MePublic)
def get_me(participant: CurrentParticipant) -> MePublic:
    """The participant's own profile: study, time zone, day 0 and status."""
    return MePublic(
        id=participant.id,
        subject_code=participant.subject_code,
        study_id=participant.study_id,
        site_id=participant.site_id,
        time_zone=participant.time_zone,
        day0_date=participant.day0_date,
        enrolled_on=participant.enrolled_date,
        status=participant.status,
    )


def _limit(request: Request, bucket: str) -> None:
    limiter: RateLimiter = request.app.state.auth_limiter
    client = request.client.host if request.client else "unknown"
    retry_after = limiter.hit(f"{bucket}:{client}")
    if retry_after is not None:
        raise TooManyRequests(retry_after, "Too many attempts; wait before trying again")


def _unauthorized(request: Request, detail: str) -> JSONResponse:
    return problem_response(
        status=401,
        code="invalid_grant",
        title="Authentication failed",
        detail=detail,
        request=request,
        headers={"WWW-Authenticate": "Bearer", **NO_STORE},
    )


#: Token responses must never be cached (RFC 6749 section 5.1).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _token_pair(tokens: activation.IssuedTokens, response: Response) -> TokenPair:
    response.headers.update(NO_STORE)
    return TokenPair(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_in=tokens.expires_in,
        participant_id=tokens.participant_id,
    )


@auth_router.post("/activate", response_model=TokenPair, responses=errors(401, 422, 429))
def activate(
    request: Request, response: Response, session: SessionDep, body: ActivateRequest
) -> TokenPair | JSONResponse:
    """Exchange the one-time activation code for an access and a refresh token."""
    _limit(request, "activate")
    tokens = activation.activate(
        session,
        code=body.activation_code,
        ring=request.app.state.keyring,
        settings=request.app.state.settings,
    )
    if tokens is None:
        return _unauthorized(request, "The activation code is unknown, used or expired")
    return _token_pair(tokens, response)


@auth_router.post("/refresh", response_model=TokenPair, responses=errors(401, 422, 429))
def refresh(
    request: Request, response: Response, session: SessionDep, body: RefreshRequest
) -> TokenPair | JSONResponse:
    """Rotate the refresh token. The old one is spent; presenting it again ends the session."""
    _limit(request, "refresh")
    outcome = activation.refresh(
        session,
        token=body.refresh_token,
        ring=request.app.state.keyring,
        settings=request.app.state.settings,
    )
    if outcome.tokens is None:
        # Returned, not raised: a detected reuse must commit the family's revocation.
        detail = (
            "This refresh token was already used; the session is revoked"
            if outcome.reused
            else "The refresh token is unknown, expired or revoked"
        )
        return _unauthorized(request, detail)
    return _token_pair(outcome.tokens, response)
