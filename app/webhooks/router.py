"""Webhook endpoints (admins), their delivery log, redelivery, pings; and ``/metrics``."""

from __future__ import annotations

import hmac
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Response
from sqlmodel import select

from app.auth import scoping
from app.auth.deps import CurrentStaff
from app.core.config import Settings, get_settings
from app.core.db import SessionDep
from app.core.errors import NotFound
from app.core.pagination import Page, PageParams, page_params, paginate
from app.core.responses import errors
from app.core.routing import StrictRoute
from app.webhooks import metrics, service, signing
from app.webhooks.models import WebhookDelivery, WebhookEndpoint
from app.webhooks.schemas import (
    DeliveryOut,
    EndpointCreate,
    EndpointOut,
    EndpointUpdate,
    EndpointWithSecret,
    PingOut,
    RotateSecret,
)

portal_router = APIRouter(route_class=StrictRoute, tags=["webhooks"])
metrics_router = APIRouter(route_class=StrictRoute, tags=["operations"])

Pagination = Annotated[PageParams, Depends(page_params)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def _with_secret(endpoint: WebhookEndpoint) -> EndpointWithSecret:
    return EndpointWithSecret(**service.endpoint_out(endpoint).model_dump(), secret=endpoint.secret)


@portal_router.post(
    "/webhook-endpoints",
    status_code=201,
    response_model=EndpointWithSecret,
    responses=errors(403, 404),
)
def create_endpoint(
    session: SessionDep, staff: CurrentStaff, body: EndpointCreate, settings: SettingsDep
) -> EndpointWithSecret:
    """Register a receiver for the study's alerts (admins). The URL must be HTTPS on port 443
    and resolve to public addresses only. The signing secret (`whsec_...`) is in this response
    and never again; deliveries are signed per Standard Webhooks v1."""
    return _with_secret(service.create(session, staff, body, settings))


@portal_router.get("/webhook-endpoints", response_model=Page[EndpointOut])
def list_endpoints(
    session: SessionDep,
    staff: CurrentStaff,
    page: Pagination,
    study_id: Annotated[uuid.UUID | None, Query()] = None,
) -> Page[EndpointOut]:
    """The endpoints of the studies the caller administers (without secrets)."""
    admin_studies = scoping.site_filter(
        staff, WebhookEndpoint.study_id, WebhookEndpoint.study_id, roles=frozenset({"admin"})
    )
    stmt = select(WebhookEndpoint).where(admin_studies)
    if study_id is not None:
        stmt = stmt.where(WebhookEndpoint.study_id == study_id)
    rows, next_cursor = paginate(
        session,
        stmt,
        order_by=[WebhookEndpoint.created_at, WebhookEndpoint.id],  # type: ignore[list-item]
        params=page,
        scope="webhook-endpoints",
    )
    return Page(items=[service.endpoint_out(r) for r in rows], next_cursor=next_cursor)


@portal_router.get(
    "/webhook-endpoints/{endpoint_id}", response_model=EndpointOut, responses=errors(403, 404)
)
def get_endpoint(session: SessionDep, staff: CurrentStaff, endpoint_id: uuid.UUID) -> EndpointOut:
    return service.endpoint_out(service.get_for(session, staff, endpoint_id))


@portal_router.patch(
    "/webhook-endpoints/{endpoint_id}",
    response_model=EndpointOut,
    responses=errors(403, 404, 409),
)
def update_endpoint(
    session: SessionDep,
    staff: CurrentStaff,
    endpoint_id: uuid.UUID,
    body: EndpointUpdate,
    settings: SettingsDep,
) -> EndpointOut:
    """Change the URL, event types or description, or disable / re-enable the endpoint, with
    a reason (audited). Deliveries of a disabled endpoint wait and resume when it is enabled."""
    endpoint = service.get_for(session, staff, endpoint_id)
    return service.endpoint_out(service.update(session, staff, endpoint, body, settings))


@portal_router.post(
    "/webhook-endpoints/{endpoint_id}/rotate-secret",
    response_model=EndpointWithSecret,
    responses=errors(403, 404),
)
def rotate_secret(
    session: SessionDep,
    staff: CurrentStaff,
    endpoint_id: uuid.UUID,
    body: RotateSecret,
    settings: SettingsDep,
) -> EndpointWithSecret:
    """A new signing secret, shown once. Until `previous_secret_expires_at` every delivery
    carries two signatures (new and old), so receivers can switch without losing a message."""
    endpoint = service.get_for(session, staff, endpoint_id)
    overlap = (
        body.overlap_seconds
        if body.overlap_seconds is not None
        else settings.webhook_secret_overlap_seconds
    )
    return _with_secret(service.rotate_secret(session, staff, endpoint, overlap_seconds=overlap))


@portal_router.post(
    "/webhook-endpoints/{endpoint_id}/ping",
    status_code=202,
    response_model=PingOut,
    responses=errors(403, 404),
)
def ping_endpoint(session: SessionDep, staff: CurrentStaff, endpoint_id: uuid.UUID) -> PingOut:
    """Queue a signed `webhook.ping` for the endpoint; follow it in its delivery log."""
    endpoint = service.get_for(session, staff, endpoint_id)
    delivery = service.ping(session, staff, endpoint)
    return PingOut(delivery_id=delivery.id, webhook_id=signing.message_id(delivery.id))


@portal_router.get(
    "/webhook-endpoints/{endpoint_id}/deliveries",
    response_model=Page[DeliveryOut],
    responses=errors(403, 404),
)
def endpoint_deliveries(
    session: SessionDep,
    staff: CurrentStaff,
    endpoint_id: uuid.UUID,
    page: Pagination,
    status: Annotated[str | None, Query(pattern="^(pending|delivering|delivered|failed)$")] = None,
) -> Page[DeliveryOut]:
    """The endpoint's deliveries, newest first, each with every attempt (status code,
    duration, error class, the first bytes of the response)."""
    endpoint = service.get_for(session, staff, endpoint_id)
    stmt = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
    if status is not None:
        stmt = stmt.where(WebhookDelivery.status == status)
    rows, next_cursor = paginate(
        session,
        stmt,
        order_by=[WebhookDelivery.created_at, WebhookDelivery.id],  # type: ignore[list-item]
        params=page,
        scope=f"webhook-deliveries:{endpoint.id}",
        descending=True,
    )
    attempts = service.attempts_of(session, rows)
    return Page(
        items=[service.delivery_out(r, attempts[r.id]) for r in rows], next_cursor=next_cursor
    )


@portal_router.post(
    "/webhook-deliveries/{delivery_id}/redeliver",
    response_model=DeliveryOut,
    responses=errors(403, 404, 409),
)
def redeliver(session: SessionDep, staff: CurrentStaff, delivery_id: uuid.UUID) -> DeliveryOut:
    """Send the delivery again now, with the same `webhook-id` and body (audited)."""
    delivery = service.get_delivery(session, staff, delivery_id)
    service.redeliver(session, staff, delivery, staff.actor(delivery.study_id))
    return service.delivery_out(delivery, service.attempts_of(session, [delivery])[delivery.id])


@metrics_router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
    include_in_schema=False,
)
def prometheus_metrics(
    session: SessionDep,
    settings: SettingsDep,
    authorization: Annotated[str | None, Header()] = None,
) -> Response:
    """Webhook delivery metrics in the Prometheus text format, behind
    `Authorization: Bearer $MGDIARY_METRICS_TOKEN` (404 when no token is configured)."""
    token = settings.metrics_token
    given = (authorization or "").removeprefix("Bearer ").strip()
    if not token or not hmac.compare_digest(given.encode(), token.encode()):
        raise NotFound("Not found")
    body, content_type = metrics.render(session)
    return Response(content=body, media_type=content_type)
