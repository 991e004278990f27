"""Webhook delivery metrics in the Prometheus text format, read from the outbox at scrape time
(so every API replica and worker reports the same, database-wide figures)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlmodel import Session, col, func, select

from app.core.models import utcnow
from app.webhooks.models import DELIVERY_STATUSES, WebhookAttempt, WebhookDelivery, WebhookEndpoint


class OutboxCollector:
    def __init__(self, session: Session, now: datetime) -> None:
        self.session = session
        self.now = now

    def collect(self) -> Iterator[Metric]:
        s = self.session
        by_status = dict.fromkeys(DELIVERY_STATUSES, 0)
        for status, count in s.exec(
            select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)
        ).all():
            by_status[status] = int(count)
        deliveries = GaugeMetricFamily(
            "mgdiary_webhook_deliveries", "Webhook deliveries by status", labels=["status"]
        )
        for status, count in by_status.items():
            deliveries.add_metric([status], count)
        yield deliveries

        queue = GaugeMetricFamily(
            "mgdiary_webhook_queue_depth",
            "Deliveries waiting to be sent (pending or being attempted)",
        )
        queue.add_metric([], by_status["pending"] + by_status["delivering"])
        yield queue

        oldest = s.exec(
            select(func.min(WebhookDelivery.created_at)).where(
                col(WebhookDelivery.status).in_(("pending", "delivering"))
            )
        ).one()
        age = GaugeMetricFamily(
            "mgdiary_webhook_oldest_pending_age_seconds",
            "Age of the oldest undelivered delivery (0 when none)",
        )
        age.add_metric([], (self.now - oldest).total_seconds() if oldest is not None else 0.0)
        yield age

        attempts = CounterMetricFamily(
            "mgdiary_webhook_attempts", "Delivery attempts by outcome", labels=["outcome"]
        )
        for outcome, count in s.exec(
            select(WebhookAttempt.outcome, func.count()).group_by(WebhookAttempt.outcome)
        ).all():
            attempts.add_metric([outcome], int(count))
        yield attempts

        endpoints = GaugeMetricFamily(
            "mgdiary_webhook_endpoints", "Webhook endpoints", labels=["enabled"]
        )
        for enabled, count in s.exec(
            select(WebhookEndpoint.enabled, func.count()).group_by(col(WebhookEndpoint.enabled))
        ).all():
            endpoints.add_metric(["true" if enabled else "false"], int(count))
        yield endpoints


def render(session: Session) -> tuple[bytes, str]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(OutboxCollector(session, utcnow()))
    return generate_latest(registry), CONTENT_TYPE_LATEST
