from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from app.core.schemas import Reason, RequestModel, ResponseModel
from app.studies.protocol import ProtocolDefinition


class SitePublic(ResponseModel):
    id: uuid.UUID
    code: str
    name: str
    time_zone: str | None


class StudyPublic(ResponseModel):
    id: uuid.UUID
    registry_id: str | None
    title: str
    time_zone: str
    status: str
    protocol_version: int
    sites: list[SitePublic]
    created_at: datetime


class StudyDetail(StudyPublic):
    protocol: ProtocolDefinition


class ProtocolVersionCreate(RequestModel):
    definition: ProtocolDefinition
    reason: Reason


class ProtocolVersionPublic(ResponseModel):
    id: uuid.UUID
    version: int
    definition: dict[str, Any]
    reason: str | None
    created_at: datetime
    created_by: str


class ProtocolTemplate(ResponseModel):
    key: str
    definition: ProtocolDefinition


class MembershipCreate(RequestModel):
    subject: str = Field(min_length=1, max_length=255, pattern=r"^[^\s\x00]+$")
    role: Literal["investigator", "monitor", "admin"]
    site_id: uuid.UUID | None = None
    reason: Reason | None = Field(default=None, description="Why the role is given (audited).")


class MembershipPublic(ResponseModel):
    id: uuid.UUID
    staff_user_id: uuid.UUID
    subject: str
    role: str
    study_id: uuid.UUID | None
    site_id: uuid.UUID | None
    created_at: datetime
    revoked_at: datetime | None


class RevokeRequest(RequestModel):
    reason: Reason


class StaffUserPublic(ResponseModel):
    id: uuid.UUID
    subject: str
    active: bool
    created_at: datetime
    deactivated_at: datetime | None


class StaffActiveChange(RequestModel):
    reason: Reason
