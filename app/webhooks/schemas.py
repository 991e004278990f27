from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from app.core.schemas import NoControl, Reason, RequestModel, ResponseModel

EventType = Literal[
    "safety.signal.raised",
    "safety.signal.escalated",
    "adverse_event.recorded",
    "adverse_event.updated",
    "visit.missed",
    "webhook.ping",
    "webhook.delivery.failed",
    "webhook.endpoint.disabled",
]
Description = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=500),
    NoControl,
]
Url = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class EndpointCreate(RequestModel):
    study_id: uuid.UUID
    url: Url = Field(description="HTTPS on port 443; checked against private addresses.")
    event_types: list[EventType] = Field(min_length=1, max_length=8)
    description: Description | None = None


class EndpointUpdate(RequestModel):
    url: Url | None = None
    event_types: list[EventType] | None = Field(default=None, min_length=1, max_length=8)
    description: Description | None = None
    enabled: bool | None = Field(
        default=None, description="Re-enabling an endpoint resumes its waiting deliveries."
    )
    reason: Reason


class RotateSecret(RequestModel):
    overlap_seconds: int | None = Field(
        default=None,
        ge=0,
        le=30 * 86_400,
        description="How long the old secret keeps signing too (default: the server setting).",
    )


class EndpointOut(ResponseModel):
    id: uuid.UUID
    study_id: uuid.UUID
    url: str
    event_types: list[str]
    description: str | None
    enabled: bool
    created_at: datetime
    updated_at: datetime
    created_by: str
    disabled_at: datetime | None
    disabled_reason: str | None = Field(description="`admin`, `gone` (410) or `failing`.")
    failing_since: datetime | None
    last_success_at: datetime | None
    previous_secret_expires_at: datetime | None = Field(
        description="During a rotation: until when the previous secret also signs."
    )


class EndpointWithSecret(EndpointOut):
    secret: str = Field(description="`whsec_...`: shown once; store it now.")


class AttemptOut(ResponseModel):
    attempt: int
    started_at: datetime
    duration_ms: float
    status_code: int | None
    error_class: str | None
    response_excerpt: str | None = Field(description="The first bytes of the response.")
    outcome: Literal["delivered", "retry", "failed", "disabled", "superseded"]


class DeliveryOut(ResponseModel):
    id: uuid.UUID
    webhook_id: str = Field(description="The `webhook-id` header of every attempt.")
    endpoint_id: uuid.UUID
    alert_id: uuid.UUID | None
    event_type: str
    status: Literal["pending", "delivering", "delivered", "failed"]
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    delivered_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    attempt_log: list[AttemptOut]


class PingOut(ResponseModel):
    delivery_id: uuid.UUID
    webhook_id: str
