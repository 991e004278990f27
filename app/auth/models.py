"""Staff identities and memberships, participant activation codes and refresh tokens.

Memberships live here, not in tokens, so revoking one takes effect on the next request.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.models import UTCDateTime, created_at_field, utc_column, uuid_pk

STAFF_ROLES = ("investigator", "monitor", "admin")


class StaffUser(SQLModel, table=True):
    """A portal user known by the token subject (``sub``); no names or contact data."""

    __tablename__ = "staff_user"

    id: uuid.UUID = uuid_pk()
    subject: str = Field(max_length=255, unique=True)
    active: bool = Field(default=True)
    created_at: datetime = created_at_field()
    deactivated_at: datetime | None = utc_column(nullable=True)


class StaffMembership(SQLModel, table=True):
    """A role in one study (all its sites when ``site_id`` is null), or system-wide admin."""

    __tablename__ = "staff_membership"
    __table_args__ = (
        sa.CheckConstraint("role IN ('investigator', 'monitor', 'admin')", name="role"),
        sa.CheckConstraint("study_id IS NOT NULL OR role = 'admin'", name="global_admin_only"),
    )

    id: uuid.UUID = uuid_pk()
    staff_user_id: uuid.UUID = Field(foreign_key="staff_user.id", index=True)
    role: str = Field(max_length=20)
    study_id: uuid.UUID | None = Field(default=None, foreign_key="study.id", index=True)
    site_id: uuid.UUID | None = Field(default=None, foreign_key="site.id")
    created_at: datetime = created_at_field()
    revoked_at: datetime | None = utc_column(nullable=True)


class ActivationCode(SQLModel, table=True):
    """A one-time code a participant types into the app; only its SHA-256 is stored."""

    __tablename__ = "activation_code"

    id: uuid.UUID = uuid_pk()
    participant_id: uuid.UUID = Field(foreign_key="participant.id", index=True)
    code_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = created_at_field()
    expires_at: datetime = Field(sa_type=UTCDateTime(), nullable=False)
    used_at: datetime | None = utc_column(nullable=True)
    revoked_at: datetime | None = utc_column(nullable=True)


class RefreshToken(SQLModel, table=True):
    """One link of a rotating refresh-token family; reuse of a spent link revokes the family."""

    __tablename__ = "refresh_token"

    id: uuid.UUID = uuid_pk()
    family_id: uuid.UUID = Field(index=True)
    participant_id: uuid.UUID = Field(foreign_key="participant.id", index=True)
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = created_at_field()
    expires_at: datetime = Field(sa_type=UTCDateTime(), nullable=False)
    spent_at: datetime | None = utc_column(nullable=True)
    revoked_at: datetime | None = utc_column(nullable=True)
