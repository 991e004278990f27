"""Registering and managing webhook endpoints; pings and redeliveries (admins only)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlmodel import Session, col, select

from app.audit import service as audit
from app.audit.service import Actor
from app.auth.principal import StaffPrincipal
from app.core.config import Settings
from app.core.errors import Conflict, Forbidden, NotFound, Unprocessable
from app.core.models import new_id, utcnow
from app.studies.models import Study
from app.webhooks import outbox, signing, ssrf
from app.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.webhooks.schemas import (
    AttemptOut,
    DeliveryOut,
    EndpointCreate,
    EndpointOut,
    EndpointUpdate,
)

PERMISSION = "study.manage"
_AUDITED = ("url", "event_types", "description", "enabled", "disabled_reason")


def _snapshot(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {name: getattr(endpoint, name) for name in _AUDITED}


def _audit(
    session: Session,
    staff: StaffPrincipal,
    endpoint: WebhookEndpoint,
    action: str,
    *,
    after: dict[str, Any],
    before: dict[str, Any] | None = None,
    reason: str | None = None,
) -> None:
    audit.record(
        session,
        actor=staff.actor(endpoint.study_id),
        action=f"webhook_endpoint.{action}",
        entity_type="webhook_endpoint",
        entity_id=endpoint.id,
        study_id=endpoint.study_id,
        before=before,
        after=after,
        reason=reason,
    )


def checked_url(url: str, settings: Settings) -> str:
    try:
        return ssrf.check_url(url, allow_private=settings.webhook_allow_private_targets)
    except ssrf.InvalidWebhookUrl as exc:
        raise Unprocessable(str(exc), field=("body", "url"), rule=f"url_{exc.rule}") from exc


def _study_for(session: Session, staff: StaffPrincipal, study_id: uuid.UUID) -> Study:
    study = session.get(Study, study_id)
    if study is None or not staff.in_scope(study.id):
        raise NotFound("No such study")
    if not staff.can(PERMISSION, study.id):
        raise Forbidden("Only the study's admins manage its webhook endpoints")
    return study


def get_for(session: Session, staff: StaffPrincipal, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or not staff.in_scope(endpoint.study_id):
        raise NotFound("No such webhook endpoint")
    if not staff.can(PERMISSION, endpoint.study_id):
        raise Forbidden("Only the study's admins manage its webhook endpoints")
    return endpoint


def create(
    session: Session, staff: StaffPrincipal, body: EndpointCreate, settings: Settings
) -> WebhookEndpoint:
    study = _study_for(session, staff, body.study_id)
    endpoint = WebhookEndpoint(
        study_id=study.id,
        url=checked_url(body.url, settings),
        event_types=sorted(set(body.event_types)),
        description=body.description,
        secret=signing.new_secret(),
        created_by=staff.subject,
    )
    session.add(endpoint)
    session.flush()
    _audit(session, staff, endpoint, "create", after=_snapshot(endpoint))
    return endpoint


def update(
    session: Session,
    staff: StaffPrincipal,
    endpoint: WebhookEndpoint,
    body: EndpointUpdate,
    settings: Settings,
) -> WebhookEndpoint:
    before = _snapshot(endpoint)
    now = utcnow()
    if body.url is not None:
        endpoint.url = checked_url(body.url, settings)
    if body.event_types is not None:
        endpoint.event_types = sorted(set(body.event_types))
    if body.description is not None:
        endpoint.description = body.description
    if body.enabled is True and not endpoint.enabled:
        endpoint.enabled = True
        endpoint.disabled_at = None
        endpoint.disabled_reason = None
        endpoint.failing_since = None
    elif body.enabled is False and endpoint.enabled:
        endpoint.enabled = False
        endpoint.disabled_at = now
        endpoint.disabled_reason = "admin"
    after = _snapshot(endpoint)
    if after == before:
        raise Conflict("The change is identical to the endpoint as it is")
    endpoint.updated_at = now
    session.add(endpoint)
    session.flush()
    _audit(session, staff, endpoint, "update", before=before, after=after, reason=body.reason)
    return endpoint


def rotate_secret(
    session: Session,
    staff: StaffPrincipal,
    endpoint: WebhookEndpoint,
    *,
    overlap_seconds: int,
) -> WebhookEndpoint:
    """A new signing secret; the old one keeps signing (a second signature) for the overlap."""
    now = utcnow()
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = now + timedelta(seconds=overlap_seconds)
    endpoint.secret = signing.new_secret()
    endpoint.updated_at = now
    session.add(endpoint)
    session.flush()
    expires = endpoint.previous_secret_expires_at
    _audit(session, staff, endpoint, "rotate_secret", after={"previous_secret_expires_at": expires})
    return endpoint


def ping(session: Session, staff: StaffPrincipal, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """Queue a ``webhook.ping`` delivery for this endpoint (even a disabled one waits)."""
    now = utcnow()
    delivery_id = new_id()
    body = outbox.dumps(
        {
            "type": "webhook.ping",
            "timestamp": outbox.iso(now),
            "data": {
                "endpoint_id": outbox.iso(endpoint.id),
                "study_id": outbox.iso(endpoint.study_id),
            },
        }
    )
    delivery = WebhookDelivery(
        id=delivery_id,
        endpoint_id=endpoint.id,
        study_id=endpoint.study_id,
        event_type="webhook.ping",
        body=body,
        next_attempt_at=now,
    )
    session.add(delivery)
    session.flush()
    _audit(session, staff, endpoint, "ping", after={"delivery_id": delivery.id})
    return delivery


def get_delivery(
    session: Session, staff: StaffPrincipal, delivery_id: uuid.UUID
) -> WebhookDelivery:
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None or not staff.in_scope(delivery.study_id):
        raise NotFound("No such webhook delivery")
    if not staff.can(PERMISSION, delivery.study_id):
        raise Forbidden("Only the study's admins manage its webhook deliveries")
    return delivery


def redeliver(
    session: Session, staff: StaffPrincipal, delivery: WebhookDelivery, actor: Actor
) -> WebhookDelivery:
    """Send a delivery again, now, with the same ``webhook-id`` and body (receivers dedup)."""
    now = utcnow()
    if delivery.status == "delivering" and (
        delivery.lease_until is not None and delivery.lease_until > now
    ):
        raise Conflict("This delivery is being attempted right now")
    before = {"status": delivery.status, "next_attempt_at": delivery.next_attempt_at}
    delivery.status = "pending"
    delivery.next_attempt_at = now
    delivery.lease_until = None
    delivery.leased_by = None
    delivery.updated_at = now
    session.add(delivery)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="webhook_delivery.redeliver",
        entity_type="webhook_delivery",
        entity_id=delivery.id,
        study_id=delivery.study_id,
        before=before,
        after={"status": "pending", "next_attempt_at": now},
    )
    return delivery


def attempts_of(
    session: Session, deliveries: list[WebhookDelivery]
) -> dict[uuid.UUID, list[WebhookAttempt]]:
    """Every attempt of these deliveries, in one query."""
    out: dict[uuid.UUID, list[WebhookAttempt]] = {d.id: [] for d in deliveries}
    if not deliveries:
        return out
    for attempt in session.exec(
        select(WebhookAttempt)
        .where(col(WebhookAttempt.delivery_id).in_(list(out)))
        .order_by(col(WebhookAttempt.attempt), col(WebhookAttempt.started_at))
    ).all():
        out[attempt.delivery_id].append(attempt)
    return out


def delivery_out(delivery: WebhookDelivery, attempts: list[WebhookAttempt]) -> DeliveryOut:
    return DeliveryOut(
        id=delivery.id,
        webhook_id=signing.message_id(delivery.id),
        endpoint_id=delivery.endpoint_id,
        alert_id=delivery.alert_id,
        event_type=delivery.event_type,
        status=delivery.status,  # type: ignore[arg-type]
        attempts=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at,
        created_at=delivery.created_at,
        delivered_at=delivery.delivered_at,
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        attempt_log=[AttemptOut.model_validate(a) for a in attempts],
    )


def endpoint_out(endpoint: WebhookEndpoint) -> EndpointOut:
    return EndpointOut.model_validate(endpoint)
