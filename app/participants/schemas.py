from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import Field

from app.core.schemas import Reason, RequestModel, ResponseModel
from app.core.time import IanaTimeZone

SubjectCode = Field(
    min_length=1,
    max_length=40,
    pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
    description="Pseudonymous subject code, unique in the study.",
)


class ParticipantCreate(RequestModel):
    subject_code: str = SubjectCode
    site_id: uuid.UUID
    time_zone: IanaTimeZone
    enrolled_on: date | None = Field(
        default=None, description="Defaults to today in the participant's zone."
    )
    day0_date: date | None = None
    dose_level: str | None = Field(default=None, max_length=40)
    status: Literal["screening", "enrolled"] = "enrolled"


class ParticipantUpdate(RequestModel):
    """Fields to change, and why. Withdrawal has its own route."""

    site_id: uuid.UUID | None = None
    time_zone: IanaTimeZone | None = None
    day0_date: date | None = None
    dose_level: str | None = Field(default=None, max_length=40)
    status: Literal["screening", "enrolled", "completed"] | None = None
    reason: Reason


class WithdrawRequest(RequestModel):
    reason: Reason


class ParticipantPublic(ResponseModel):
    id: uuid.UUID
    study_id: uuid.UUID
    site_id: uuid.UUID
    subject_code: str
    time_zone: str
    status: str
    enrolled_on: date
    day0_date: date | None
    dose_level: str | None
    protocol_version: int
    activated: bool
    created_at: datetime
    updated_at: datetime
    withdrawn_at: datetime | None
    withdrawal_reason: str | None


class ActivationCodeIssued(ResponseModel):
    participant_id: uuid.UUID
    activation_code: str = Field(description="Shown once; only its hash is stored.")
    activation_expires_at: datetime


class ParticipantEnrolled(ParticipantPublic):
    activation_code: str = Field(description="Shown once; only its hash is stored.")
    activation_expires_at: datetime


class MePublic(ResponseModel):
    id: uuid.UUID
    subject_code: str
    study_id: uuid.UUID
    site_id: uuid.UUID
    time_zone: str
    day0_date: date | None
    enrolled_on: date
    status: str


class ActivateRequest(RequestModel):
    activation_code: str = Field(min_length=4, max_length=64)


class RefreshRequest(RequestModel):
    refresh_token: str = Field(min_length=16, max_length=256)


class TokenPair(ResponseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    participant_id: uuid.UUID
