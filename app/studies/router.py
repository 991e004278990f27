"""Portal routes: studies, protocol versions, protocol templates and staff memberships."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, status
from sqlmodel import col, select

from app.auth import service as auth_service
from app.auth.deps import CurrentStaff
from app.auth.models import StaffMembership, StaffUser
from app.core.db import SessionDep
from app.core.errors import Conflict, Forbidden, NotFound
from app.core.pagination import Page, PageParams, page_params
from app.core.responses import errors
from app.core.routing import StrictRoute
from app.studies import service
from app.studies.builtin import BUILTIN_PROTOCOLS, builtin_protocol
from app.studies.models import ProtocolVersion
from app.studies.protocol import ProtocolDefinition
from app.studies.schemas import (
    MembershipCreate,
    MembershipPublic,
    ProtocolTemplate,
    ProtocolVersionCreate,
    ProtocolVersionPublic,
    RevokeRequest,
    StaffActiveChange,
    StaffUserPublic,
    StudyDetail,
    StudyPublic,
)

portal_router = APIRouter(route_class=StrictRoute, tags=["studies"])
Pagination = Annotated[PageParams, Depends(page_params)]


@portal_router.get("/studies", response_model=Page[StudyPublic], responses=errors(400))
def list_studies(session: SessionDep, staff: CurrentStaff, page: Pagination) -> Page[StudyPublic]:
    """Studies the caller has a role in (all of them for a system administrator)."""
    rows, next_cursor = service.list_studies(session, principal=staff, params=page)
    return Page(items=service.to_public_many(session, rows), next_cursor=next_cursor)


@portal_router.post(
    "/studies",
    status_code=status.HTTP_201_CREATED,
    response_model=StudyDetail,
    responses=errors(409),
)
def create_study(
    session: SessionDep, staff: CurrentStaff, definition: ProtocolDefinition
) -> StudyDetail:
    """Create a study from a protocol definition (system administrators only).

    The body is the protocol definition; `GET /portal/v1/protocol-templates` lists the built-in
    definitions of the supported trials to start from.
    """
    if not staff.is_global_admin:
        raise Forbidden("Only a system administrator can create studies")
    study = service.create_study(session, definition=definition, actor=staff.actor())
    return service.to_detail(session, study)


@portal_router.get("/studies/{study_id}", response_model=StudyDetail, responses=errors(404))
def get_study(session: SessionDep, staff: CurrentStaff, study_id: uuid.UUID) -> StudyDetail:
    """A study with its sites and the current protocol definition and version."""
    study = service.get_study_for(session, principal=staff, study_id=study_id)
    return service.to_detail(session, study)


@portal_router.get(
    "/studies/{study_id}/protocol-versions",
    response_model=list[ProtocolVersionPublic],
    responses=errors(404),
)
def list_protocol_versions(
    session: SessionDep, staff: CurrentStaff, study_id: uuid.UUID
) -> list[ProtocolVersionPublic]:
    """Every version of the study's protocol definition, oldest first."""
    study = service.get_study_for(session, principal=staff, study_id=study_id)
    rows = session.exec(
        select(ProtocolVersion)
        .where(ProtocolVersion.study_id == study.id)
        .order_by(col(ProtocolVersion.version))
    ).all()
    return [ProtocolVersionPublic.model_validate(r) for r in rows]


@portal_router.post(
    "/studies/{study_id}/protocol-versions",
    status_code=201,
    response_model=ProtocolVersionPublic,
    responses=errors(404, 409),
)
def add_protocol_version(
    session: SessionDep, staff: CurrentStaff, study_id: uuid.UUID, body: ProtocolVersionCreate
) -> ProtocolVersionPublic:
    """Amend the protocol: a new version with a reason. Enrolled participants keep theirs."""
    study = service.get_study_for(
        session, principal=staff, study_id=study_id, permission="study.manage"
    )
    version = service.add_protocol_version(
        session,
        study=study,
        definition=body.definition,
        reason=body.reason,
        actor=staff.actor(study.id),
    )
    return ProtocolVersionPublic.model_validate(version)


@portal_router.get("/protocol-templates", response_model=list[ProtocolTemplate])
def list_protocol_templates(staff: CurrentStaff) -> list[ProtocolTemplate]:
    """Built-in protocol definitions for the supported trials, to post as new studies."""
    return [
        ProtocolTemplate(key=key, definition=builtin_protocol(key)) for key in BUILTIN_PROTOCOLS
    ]


def _membership_public(m: StaffMembership, subject: str) -> MembershipPublic:
    return MembershipPublic(
        id=m.id,
        staff_user_id=m.staff_user_id,
        subject=subject,
        role=m.role,
        study_id=m.study_id,
        site_id=m.site_id,
        created_at=m.created_at,
        revoked_at=m.revoked_at,
    )


@portal_router.get(
    "/studies/{study_id}/staff", response_model=list[MembershipPublic], responses=errors(404)
)
def list_staff(
    session: SessionDep, staff: CurrentStaff, study_id: uuid.UUID
) -> list[MembershipPublic]:
    """Staff memberships of the study, revoked ones included (admins)."""
    study = service.get_study_for(
        session, principal=staff, study_id=study_id, permission="staff.manage"
    )
    rows = session.exec(
        select(StaffMembership, StaffUser)
        .join(StaffUser, col(StaffUser.id) == StaffMembership.staff_user_id)
        .where(StaffMembership.study_id == study.id)
        .order_by(col(StaffMembership.created_at), col(StaffMembership.id))
    ).all()
    return [_membership_public(m, u.subject) for m, u in rows]


@portal_router.post(
    "/studies/{study_id}/staff",
    status_code=201,
    response_model=MembershipPublic,
    responses=errors(404),
)
def grant_staff(
    session: SessionDep, staff: CurrentStaff, study_id: uuid.UUID, body: MembershipCreate
) -> MembershipPublic:
    """Give a person (by identity-provider subject) a role in the study, optionally one site."""
    study = service.get_study_for(
        session, principal=staff, study_id=study_id, permission="staff.manage"
    )
    if body.site_id is not None:
        service.get_site(session, study_id=study.id, site_id=body.site_id)
    actor = staff.actor(study.id)
    user = auth_service.get_or_create_staff_user(session, subject=body.subject, actor=actor)
    membership = auth_service.grant_membership(
        session,
        user=user,
        role=body.role,
        study_id=study.id,
        site_id=body.site_id,
        actor=actor,
        reason=body.reason,
    )
    return _membership_public(membership, user.subject)


@portal_router.post(
    "/staff-memberships/{membership_id}/revoke",
    response_model=MembershipPublic,
    responses=errors(404),
)
def revoke_staff(
    session: SessionDep, staff: CurrentStaff, membership_id: uuid.UUID, body: RevokeRequest
) -> MembershipPublic:
    """Revoke a membership; it stops working on the caller's next request."""
    membership = session.get(StaffMembership, membership_id)
    if membership is None or membership.study_id is None:
        raise NotFound("No such membership")
    service.get_study_for(
        session, principal=staff, study_id=membership.study_id, permission="staff.manage"
    )
    user = session.get(StaffUser, membership.staff_user_id)
    assert user is not None
    auth_service.revoke_membership(
        session, membership=membership, actor=staff.actor(membership.study_id), reason=body.reason
    )
    return _membership_public(membership, user.subject)


def _set_active(
    session: SessionDep, staff: CurrentStaff, staff_user_id: uuid.UUID, active: bool, reason: str
) -> StaffUserPublic:
    if not staff.is_global_admin:
        raise Forbidden("Only a system administrator can activate or deactivate staff accounts")
    user = session.get(StaffUser, staff_user_id)
    if user is None:
        raise NotFound("No such staff account")
    if user.id == staff.staff_user_id and not active:
        raise Conflict("You cannot deactivate your own account")
    auth_service.set_staff_active(
        session, user=user, active=active, actor=staff.actor(), reason=reason
    )
    return StaffUserPublic.model_validate(user)


@portal_router.post(
    "/staff-users/{staff_user_id}/deactivate",
    response_model=StaffUserPublic,
    responses=errors(404, 409),
)
def deactivate_staff_user(
    session: SessionDep, staff: CurrentStaff, staff_user_id: uuid.UUID, body: StaffActiveChange
) -> StaffUserPublic:
    """Deactivate a staff account everywhere (system administrators); effective immediately."""
    return _set_active(session, staff, staff_user_id, False, body.reason)


@portal_router.post(
    "/staff-users/{staff_user_id}/reactivate",
    response_model=StaffUserPublic,
    responses=errors(404),
)
def reactivate_staff_user(
    session: SessionDep, staff: CurrentStaff, staff_user_id: uuid.UUID, body: StaffActiveChange
) -> StaffUserPublic:
    """Reactivate a deactivated staff account (system administrators)."""
    return _set_active(session, staff, staff_user_id, True, body.reason)
