"""Staff accounts and memberships: created by admins (or the CLI), revoked, never deleted."""

from __future__ import annotations

import uuid

from sqlmodel import Session, col, select

from app.audit import service as audit
from app.audit.service import Actor
from app.auth.models import StaffMembership, StaffUser
from app.core.models import utcnow


def get_or_create_staff_user(session: Session, *, subject: str, actor: Actor) -> StaffUser:
    user = session.exec(select(StaffUser).where(StaffUser.subject == subject)).first()
    if user is not None:
        return user
    user = StaffUser(subject=subject)
    session.add(user)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="staff_user.create",
        entity_type="staff_user",
        entity_id=user.id,
        after={"subject": subject, "active": True},
    )
    return user


def active_memberships(session: Session, *, staff_user_id: uuid.UUID) -> list[StaffMembership]:
    return list(
        session.exec(
            select(StaffMembership).where(
                StaffMembership.staff_user_id == staff_user_id,
                col(StaffMembership.revoked_at).is_(None),
            )
        ).all()
    )


def grant_membership(
    session: Session,
    *,
    user: StaffUser,
    role: str,
    study_id: uuid.UUID | None,
    site_id: uuid.UUID | None,
    actor: Actor,
    reason: str | None = None,
) -> StaffMembership:
    """Grant a role (idempotent: an identical active membership is returned as it is)."""
    for existing in active_memberships(session, staff_user_id=user.id):
        if (existing.role, existing.study_id, existing.site_id) == (role, study_id, site_id):
            return existing
    membership = StaffMembership(
        staff_user_id=user.id, role=role, study_id=study_id, site_id=site_id
    )
    session.add(membership)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="staff_membership.grant",
        entity_type="staff_membership",
        entity_id=membership.id,
        study_id=study_id,
        after={"subject": user.subject, "role": role, "study_id": study_id, "site_id": site_id},
        reason=reason,
    )
    return membership


def revoke_membership(
    session: Session, *, membership: StaffMembership, actor: Actor, reason: str
) -> StaffMembership:
    if membership.revoked_at is None:
        membership.revoked_at = utcnow()
        session.add(membership)
        session.flush()
        audit.record(
            session,
            actor=actor,
            action="staff_membership.revoke",
            entity_type="staff_membership",
            entity_id=membership.id,
            study_id=membership.study_id,
            reason=reason,
            before={"revoked_at": None},
            after={"revoked_at": membership.revoked_at},
        )
    return membership


def set_staff_active(
    session: Session, *, user: StaffUser, active: bool, actor: Actor, reason: str
) -> StaffUser:
    if user.active != active:
        before = {"active": user.active}
        user.active = active
        user.deactivated_at = None if active else utcnow()
        session.add(user)
        session.flush()
        audit.record(
            session,
            actor=actor,
            action="staff_user.update",
            entity_type="staff_user",
            entity_id=user.id,
            before=before,
            after={"active": active},
            reason=reason,
        )
    return user
