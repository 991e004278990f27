"""Who is calling, and what their study and site memberships let them do."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from app.audit.service import Actor

# Permission -> the staff roles that hold it (api-contract.md, "Who may do what").
PERMISSIONS: dict[str, frozenset[str]] = {
    "study.read": frozenset({"investigator", "monitor", "admin"}),
    "study.create": frozenset({"admin"}),
    "study.manage": frozenset({"admin"}),
    "staff.manage": frozenset({"admin"}),
    "participant.read": frozenset({"investigator", "monitor", "admin"}),
    "participant.write": frozenset({"investigator"}),
    "clinical.write": frozenset({"investigator"}),
    "audit.read": frozenset({"admin", "monitor"}),
}


@dataclass(frozen=True)
class Membership:
    role: str
    study_id: uuid.UUID | None
    site_id: uuid.UUID | None

    def covers(self, study_id: uuid.UUID | None, site_id: uuid.UUID | None = None) -> bool:
        if self.study_id is None:  # system-wide admin
            return True
        if study_id is None or self.study_id != study_id:
            return False
        return site_id is None or self.site_id is None or self.site_id == site_id


@dataclass(frozen=True)
class StaffPrincipal:
    staff_user_id: uuid.UUID
    subject: str
    memberships: tuple[Membership, ...]

    @property
    def is_global_admin(self) -> bool:
        return any(m.study_id is None and m.role == "admin" for m in self.memberships)

    def in_scope(self, study_id: uuid.UUID, site_id: uuid.UUID | None = None) -> bool:
        """Whether the object exists for this caller at all (outside scope answers 404)."""
        return any(m.covers(study_id, site_id) for m in self.memberships)

    def can(
        self, permission: str, study_id: uuid.UUID | None, site_id: uuid.UUID | None = None
    ) -> bool:
        roles = PERMISSIONS[permission]
        return any(m.role in roles and m.covers(study_id, site_id) for m in self.memberships)

    def role_in(self, study_id: uuid.UUID | None) -> str:
        roles = sorted({m.role for m in self.memberships if m.covers(study_id)})
        return "+".join(roles) if roles else "none"

    def actor(self, study_id: uuid.UUID | None = None) -> Actor:
        return Actor(type="staff", id=self.subject, role=self.role_in(study_id))


@dataclass(frozen=True)
class ParticipantPrincipal:
    participant_id: uuid.UUID
    family_id: uuid.UUID | None = None

    def actor(self) -> Actor:
        return Actor(type="participant", id=str(self.participant_id), role="participant")
