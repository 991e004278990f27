"""Webhook endpoints, the delivery outbox and every delivery attempt (issue 7).

- ``webhook_endpoint``: an admin-registered HTTPS receiver of one study, the event types it
  wants and its signing secrets (the current one, and during a rotation the previous one until
  ``previous_secret_expires_at``). Disabled by an admin, by a 410 from the receiver, or after
  failing for ``MGDIARY_WEBHOOK_DISABLE_AFTER_SECONDS``.
- ``webhook_delivery``: the transactional outbox. One row per (alert, matching endpoint),
  written in the transaction that records the alert; its id is the ``webhook-id`` of every
  attempt, and ``body`` is fixed at creation, so each retry sends the same signed bytes.
  ``status``: pending -> delivering (claimed under a lease) -> delivered | failed; a lease that
  runs out (the worker died) makes the row claimable again.
- ``webhook_attempt``: append-only, one row per attempt: status, duration, error class and a
  truncated response (admins only).
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.models import created_at_field, json_field, utc_column, uuid_pk

DELIVERY_STATUSES = ("pending", "delivering", "delivered", "failed")
EVENT_TYPES = (
    "safety.signal.raised",
    "safety.signal.escalated",
    "adverse_event.recorded",
    "adverse_event.updated",
    "visit.missed",
    "webhook.ping",
    "webhook.delivery.failed",
    "webhook.endpoint.disabled",
)


class WebhookEndpoint(SQLModel, table=True):
    __tablename__ = "webhook_endpoint"
    __table_args__ = (sa.Index("ix_webhook_endpoint_study_id_enabled", "study_id", "enabled"),)

    id: uuid.UUID = uuid_pk()
    study_id: uuid.UUID = Field(foreign_key="study.id")
    url: str = Field(max_length=2000)
    event_types: list[str] = json_field()
    description: str | None = Field(default=None, max_length=500)
    enabled: bool = True
    #: ``whsec_`` + base64 of 32 random bytes. Shown once, at creation or rotation.
    secret: str = Field(max_length=120)
    previous_secret: str | None = Field(default=None, max_length=120)
    previous_secret_expires_at: datetime | None = utc_column(nullable=True)
    created_at: datetime = created_at_field()
    updated_at: datetime = created_at_field()
    created_by: str = Field(max_length=255)
    disabled_at: datetime | None = utc_column(nullable=True)
    #: ``admin``, ``gone`` (the receiver answered 410) or ``failing``.
    disabled_reason: str | None = Field(default=None, max_length=20)
    #: Start of the current run of failed attempts (cleared by a success).
    failing_since: datetime | None = utc_column(nullable=True)
    last_success_at: datetime | None = utc_column(nullable=True)


class WebhookDelivery(SQLModel, table=True):
    __tablename__ = "webhook_delivery"
    __table_args__ = (
        sa.UniqueConstraint("alert_id", "endpoint_id"),
        sa.CheckConstraint(
            "status IN ('pending', 'delivering', 'delivered', 'failed')", name="status"
        ),
        sa.Index("ix_webhook_delivery_status_next_attempt_at", "status", "next_attempt_at"),
        sa.Index("ix_webhook_delivery_endpoint_id_created_at", "endpoint_id", "created_at"),
    )

    id: uuid.UUID = uuid_pk()
    endpoint_id: uuid.UUID = Field(foreign_key="webhook_endpoint.id")
    #: Null for pings.
    alert_id: uuid.UUID | None = Field(default=None, foreign_key="alert.id")
    study_id: uuid.UUID = Field(foreign_key="study.id")
    event_type: str = Field(max_length=60)
    #: The exact JSON bytes (as text) signed and sent on every attempt.
    body: str = Field(sa_type=sa.Text())
    status: str = Field(default="pending", max_length=20)
    attempts: int = 0
    next_attempt_at: datetime = utc_column()
    lease_until: datetime | None = utc_column(nullable=True)
    leased_by: str | None = Field(default=None, max_length=200)
    created_at: datetime = created_at_field()
    updated_at: datetime = created_at_field()
    delivered_at: datetime | None = utc_column(nullable=True)
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, max_length=40)


class WebhookAttempt(SQLModel, table=True):
    __tablename__ = "webhook_attempt"

    id: uuid.UUID = uuid_pk()
    delivery_id: uuid.UUID = Field(foreign_key="webhook_delivery.id", index=True)
    attempt: int
    started_at: datetime = utc_column()
    duration_ms: float
    status_code: int | None = None
    #: ``timeout``, ``connect_error``, ``connection_reset``, ``blocked_ip``, ``redirect``,
    #: ``http_status``, ``invalid_target``, ``endpoint_disabled`` ... or None on success.
    error_class: str | None = Field(default=None, max_length=40)
    #: The first bytes of the response (admins only).
    response_excerpt: str | None = Field(default=None, max_length=2048)
    #: What followed: ``delivered``, ``retry``, ``failed`` or ``disabled``.
    outcome: str = Field(max_length=20)
    worker: str = Field(max_length=200)
