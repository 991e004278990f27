"""Authentication dependencies. Routes get principals only through these aliases."""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import col, select

from app.auth.models import StaffMembership, StaffUser
from app.auth.principal import Membership, ParticipantPrincipal, StaffPrincipal
from app.auth.tokens import APP_AUDIENCE, PORTAL_AUDIENCE, KeyRing, TokenError, verify_token
from app.core.config import Settings
from app.core.db import SessionDep
from app.core.errors import Unauthorized

logger = logging.getLogger("mgdiary.auth")

_bearer = HTTPBearer(auto_error=False, description="A bearer access token (JWT).")


def _claims(
    request: Request, credentials: HTTPAuthorizationCredentials | None, audience: str
) -> dict[str, object]:
    settings: Settings = request.app.state.settings
    header = request.headers.get("authorization", "")
    if len(header) > settings.max_authorization_header_bytes:
        raise Unauthorized("The Authorization header is too large")
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("A bearer token is required", headers={"WWW-Authenticate": "Bearer"})
    ring: KeyRing = request.app.state.keyring
    try:
        return verify_token(
            ring, credentials.credentials, audience=audience, leeway=settings.jwt_leeway_seconds
        )
    except TokenError as exc:
        logger.info("token refused: %s", exc)
        raise Unauthorized(f"The access token is not valid: {exc}") from exc


def get_current_staff(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> StaffPrincipal:
    claims = _claims(request, credentials, PORTAL_AUDIENCE)
    subject = str(claims["sub"])
    user = session.exec(select(StaffUser).where(StaffUser.subject == subject)).first()
    if user is None or not user.active:
        raise Unauthorized("This staff account is not known or has been deactivated")
    rows = session.exec(
        select(StaffMembership).where(
            StaffMembership.staff_user_id == user.id, col(StaffMembership.revoked_at).is_(None)
        )
    ).all()
    memberships = tuple(
        Membership(role=m.role, study_id=m.study_id, site_id=m.site_id) for m in rows
    )
    return StaffPrincipal(staff_user_id=user.id, subject=subject, memberships=memberships)


async def get_participant_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ParticipantPrincipal:
    claims = _claims(request, credentials, APP_AUDIENCE)
    if claims.get("role") != "participant":
        raise Unauthorized("The token is not a participant token")
    try:
        participant_id = uuid.UUID(str(claims["sub"]))
    except ValueError as exc:
        raise Unauthorized("The token subject is not a participant") from exc
    family = claims.get("fam")
    try:
        family_id = uuid.UUID(str(family)) if family is not None else None
    except ValueError as exc:
        raise Unauthorized("The token's session id is malformed") from exc
    # async: verifying an HS256 token is microseconds of CPU, cheaper than a thread-pool hop.
    return ParticipantPrincipal(participant_id=participant_id, family_id=family_id)


CurrentStaff = Annotated[StaffPrincipal, Depends(get_current_staff)]
ParticipantClaims = Annotated[ParticipantPrincipal, Depends(get_participant_principal)]
