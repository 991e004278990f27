"""Delivering the outbox: claim under a lease, send signed, record every attempt (issue 7).

One cycle (``deliver_due``):

1. **claim** (one short transaction): due rows of enabled endpoints - ``pending``, or
   ``delivering`` whose lease ran out (its worker died) - become ``delivering`` with
   ``lease_until = now + MGDIARY_WEBHOOK_LEASE_SECONDS`` and ``attempts + 1``. On PostgreSQL the
   candidates are locked ``FOR UPDATE SKIP LOCKED``, so several workers never claim one row;
   SQLite has one writer and runs one worker.
2. **send**, outside any transaction: POST the stored body with the Standard Webhooks headers
   (the delivery's ``webhook-id`` on every attempt, a fresh ``webhook-timestamp``, one signature
   per live secret) through the SSRF-guarded client (app/webhooks/ssrf.py: the host is resolved
   and vetted at connect time, redirects are never followed, the whole attempt is bounded by
   ``MGDIARY_WEBHOOK_TIMEOUT_SECONDS``).
3. **record** (one short transaction): the attempt row, then the delivery - ``delivered`` on
   2xx; ``410`` disables the endpoint (with an alert) and fails the delivery; anything else is
   retried after the next delay of ``MGDIARY_WEBHOOK_RETRY_SCHEDULE`` (with jitter), or after the
   receiver's ``Retry-After``; when the schedule is exhausted the delivery is ``failed`` with an
   operational alert. An endpoint failing for ``MGDIARY_WEBHOOK_DISABLE_AFTER_SECONDS`` is
   disabled with an alert. The update is conditional on the claim (same worker, same attempt),
   so a result that arrives after its lease was taken over changes nothing but the log.

A crash anywhere leaves a row that the lease hands to the next claim: after claiming (the
attempt is sent later), after sending (sent again: the receiver dedups on ``webhook-id``), after
recording (nothing to do). At least once, never lost.

Fault injection for the crash drills: ``MGDIARY_WEBHOOK_CRASH_AT=after_claim|after_send|
after_record`` makes the process exit (status 137) at that point; it is refused in production.
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app.alerts import service as alerts
from app.core.config import Settings
from app.core.models import utcnow
from app.webhooks import signing, ssrf
from app.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

logger = logging.getLogger("mgdiary.webhooks")

USER_AGENT = "mgdiary-webhooks/1"
EXCERPT_BYTES = 1024
#: The longest ``Retry-After`` honoured (a receiver cannot park a safety alert for a week).
MAX_RETRY_AFTER = timedelta(hours=24)
CRASH_POINTS = ("after_claim", "after_send", "after_record")


@dataclass(frozen=True)
class Claimed:
    id: uuid.UUID
    endpoint_id: uuid.UUID
    study_id: uuid.UUID
    event_type: str
    body: str
    attempt: int


@dataclass(frozen=True)
class Target:
    url: str
    enabled: bool
    secrets: tuple[str, ...]


@dataclass(frozen=True)
class Result:
    status_code: int | None
    error_class: str | None
    duration_ms: float
    excerpt: str | None
    retry_after: timedelta | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _crash(point: str) -> None:
    if os.environ.get("MGDIARY_WEBHOOK_CRASH_AT") == point:
        if os.environ.get("MGDIARY_ENV") == "production":
            return
        logger.error("fault injection: exiting at %s", point)
        os._exit(137)


# --- claim ------------------------------------------------------------------------------------


def claim(
    session: Session, *, worker: str, now: datetime, lease: timedelta, limit: int
) -> list[Claimed]:
    d = WebhookDelivery.__table__.c  # type: ignore[attr-defined]
    e = WebhookEndpoint.__table__.c  # type: ignore[attr-defined]
    due = (
        sa.select(d.id)
        .join(WebhookEndpoint, e.id == d.endpoint_id)
        .where(
            d.status.in_(("pending", "delivering")),
            d.next_attempt_at <= now,
            sa.or_(d.lease_until.is_(None), d.lease_until < now),
            e.enabled.is_(True),
        )
        .order_by(d.next_attempt_at)
        .limit(limit)
        .with_for_update(of=d, skip_locked=True)
    )
    statement = (
        sa.update(WebhookDelivery.__table__)  # type: ignore[attr-defined]
        .where(d.id.in_(due.scalar_subquery()))
        .values(
            status="delivering",
            lease_until=now + lease,
            leased_by=worker,
            attempts=d.attempts + 1,
            updated_at=now,
        )
        .returning(d.id, d.endpoint_id, d.study_id, d.event_type, d.body, d.attempts)
    )
    rows = session.execute(statement).all()
    return [Claimed(*row) for row in rows]


def _targets(session: Session, ids: set[uuid.UUID], now: datetime) -> dict[uuid.UUID, Target]:
    out = {}
    for endpoint in session.exec(
        select(WebhookEndpoint).where(col(WebhookEndpoint.id).in_(ids))
    ).all():
        live = [endpoint.secret]
        expires = endpoint.previous_secret_expires_at
        if endpoint.previous_secret and expires is not None and expires > now:
            live.append(endpoint.previous_secret)
        out[endpoint.id] = Target(endpoint.url, endpoint.enabled, tuple(live))
    return out


# --- send -------------------------------------------------------------------------------------


def _retry_after(value: str | None, now: datetime) -> timedelta | None:
    if not value:
        return None
    value = value.strip()
    try:
        delay = timedelta(seconds=max(0, int(value)))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        delay = max(timedelta(0), when - now)
    return min(delay, MAX_RETRY_AFTER)


def _post(
    client: httpx.Client, url: str, body: str, headers: dict[str, str]
) -> tuple[int, bytes, str | None]:
    """POST and read at most ``EXCERPT_BYTES`` of the answer: the guarded client bounds the
    whole exchange by its timeout, so a slow-drip or endless body cannot hold the worker."""
    with client.stream("POST", url, content=body.encode(), headers=headers) as response:
        excerpt = ssrf.read_limited(response, EXCERPT_BYTES)
        return response.status_code, excerpt, response.headers.get("retry-after")


def send(
    client: httpx.Client,
    delivery: Claimed,
    target: Target,
    *,
    now: datetime,
    allow_private: bool = False,
) -> Result:
    """One attempt. The URL's scheme and port are checked again (the setting may have changed
    since registration); its addresses are vetted by the guarded client at connect time."""
    msg_id = signing.message_id(delivery.id)
    headers = {
        **signing.headers(target.secrets, msg_id, int(now.timestamp()), delivery.body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }
    started = time.monotonic()

    def elapsed() -> float:
        return round((time.monotonic() - started) * 1000, 1)

    try:
        ssrf.check_url(target.url, allow_private=allow_private, resolve=_no_lookup)
    except ssrf.InvalidWebhookUrl as exc:
        if exc.rule not in ("unresolvable", "private_address"):
            return Result(None, "invalid_target", elapsed(), str(exc)[:EXCERPT_BYTES])
    try:
        status, body, retry_after = _post(client, target.url, delivery.body, headers)
    except ssrf.InvalidWebhookUrl as exc:
        return Result(None, "invalid_target", elapsed(), str(exc)[:EXCERPT_BYTES])
    except ssrf.BlockedAddress as exc:
        return Result(None, "blocked_ip", elapsed(), str(exc)[:EXCERPT_BYTES])
    except httpx.TimeoutException:
        return Result(None, "timeout", elapsed(), None)
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
        return Result(None, "connection_reset", elapsed(), type(exc).__name__)
    except httpx.ConnectError as exc:
        blocked = ssrf.blocked(exc)
        if blocked is not None:
            return Result(None, "blocked_ip", elapsed(), blocked[:EXCERPT_BYTES])
        return Result(None, "connect_error", elapsed(), type(exc).__name__)
    except httpx.HTTPError as exc:
        blocked = ssrf.blocked(exc)
        return Result(
            None, "blocked_ip" if blocked else "transport_error", elapsed(), type(exc).__name__
        )
    excerpt = body[:EXCERPT_BYTES].decode("utf-8", "replace") if body else None
    error = None
    if 300 <= status < 400:
        error = "redirect"  # never followed (checklist D23)
    elif not 200 <= status < 300:
        error = "http_status"
    return Result(status, error, elapsed(), excerpt, _retry_after(retry_after, now))


def _no_lookup(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
    """For re-checking a URL's form without DNS: the guarded client resolves and vets."""
    raise OSError("not resolved here")


# --- record -----------------------------------------------------------------------------------


def _delay(settings: Settings, attempt: int) -> timedelta | None:
    """The wait before attempt ``attempt + 1`` (attempts count from 1), or None when the
    schedule is exhausted."""
    schedule = settings.webhook_retry_schedule
    if attempt >= len(schedule):
        return None
    jitter = settings.webhook_retry_jitter
    factor = random.uniform(1 - jitter, 1 + jitter) if jitter else 1.0  # noqa: S311
    return timedelta(seconds=schedule[attempt] * factor)


def _operational_alert(
    session: Session,
    *,
    type: str,
    endpoint: WebhookEndpoint,
    delivery_id: uuid.UUID | None,
    attempts: int | None,
    reason: str,
    now: datetime,
    event_type: str | None = None,
) -> None:
    key = f"{type}:{delivery_id or endpoint.id}"
    if type == "webhook.endpoint.disabled":
        key = f"{type}:{endpoint.id}:{now.isoformat()}"
    alerts.raise_alert(
        session,
        type=type,
        priority="high",
        study_id=endpoint.study_id,
        site_id=None,
        participant_id=None,
        subject_type="webhook_endpoint",
        subject_id=endpoint.id,
        dedup_key=key,
        data={
            "endpoint_id": endpoint.id,
            "delivery_id": delivery_id,
            "event_type": event_type,
            "attempts": attempts,
            "reason": reason,
        },
        now=now,
    )


def disable(session: Session, endpoint: WebhookEndpoint, *, reason: str, now: datetime) -> None:
    """Disable an endpoint (it stops receiving; its pending deliveries wait), with an alert."""
    if not endpoint.enabled:
        return
    endpoint.enabled = False
    endpoint.disabled_at = now
    endpoint.disabled_reason = reason
    endpoint.updated_at = now
    session.add(endpoint)
    session.flush()
    _operational_alert(
        session,
        type="webhook.endpoint.disabled",
        endpoint=endpoint,
        delivery_id=None,
        attempts=None,
        reason=reason,
        now=now,
    )


def record(
    session: Session,
    settings: Settings,
    *,
    delivery: Claimed,
    result: Result,
    worker: str,
    now: datetime,
) -> str:
    """Store the attempt and move the delivery on; returns the outcome."""
    endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
    assert endpoint is not None
    values: dict[str, Any] = {
        "lease_until": None,
        "leased_by": None,
        "updated_at": now,
        "last_status_code": result.status_code,
        "last_error": result.error_class,
    }
    if result.ok:
        outcome = "delivered"
        values.update(status="delivered", delivered_at=now)
        endpoint.last_success_at = now
        endpoint.failing_since = None
    elif result.status_code == 410:
        outcome = "disabled"
        values.update(status="failed")
    else:
        delay = _delay(settings, delivery.attempt)
        if delay is None:
            outcome = "failed"
            values.update(status="failed")
        else:
            outcome = "retry"
            if result.retry_after is not None:
                delay = result.retry_after
            values.update(status="pending", next_attempt_at=now + delay)
        if endpoint.failing_since is None:
            endpoint.failing_since = now
    table = WebhookDelivery.__table__  # type: ignore[attr-defined]
    updated = session.execute(
        sa.update(table)
        .where(
            table.c.id == delivery.id,
            table.c.leased_by == worker,
            table.c.attempts == delivery.attempt,
            table.c.status == "delivering",
        )
        .values(**values)
    )
    if updated.rowcount == 0:  # type: ignore[attr-defined]
        outcome = "superseded"  # the lease ran out and another claim took the row over
    session.add(
        WebhookAttempt(
            delivery_id=delivery.id,
            attempt=delivery.attempt,
            started_at=now,
            duration_ms=result.duration_ms,
            status_code=result.status_code,
            error_class=result.error_class,
            response_excerpt=result.excerpt,
            outcome=outcome,
            worker=worker,
        )
    )
    session.add(endpoint)
    session.flush()
    if outcome == "disabled":
        disable(session, endpoint, reason="gone", now=now)
    elif outcome == "failed":
        _operational_alert(
            session,
            type="webhook.delivery.failed",
            endpoint=endpoint,
            delivery_id=delivery.id,
            attempts=delivery.attempt,
            reason=result.error_class or "http_status",
            now=now,
            event_type=delivery.event_type,
        )
    if (
        not result.ok
        and endpoint.enabled
        and endpoint.failing_since is not None
        and now - endpoint.failing_since
        >= timedelta(seconds=settings.webhook_disable_after_seconds)
    ):
        disable(session, endpoint, reason="failing", now=now)
    return outcome


# --- the loop ---------------------------------------------------------------------------------


def batch_limit(settings: Settings) -> int:
    """How many deliveries one claim takes: no more than can all time out, one after the
    other, inside their shared lease - else another worker would take the tail over and send
    it again."""
    fits = int(settings.webhook_lease_seconds // (settings.webhook_timeout_seconds + 1))
    return max(1, min(settings.webhook_batch_size, fits))


def deliver_due(engine: Engine, settings: Settings, client: httpx.Client, *, worker: str) -> int:
    """One cycle: claim, send, record. Returns how many deliveries were attempted."""
    now = utcnow()
    with Session(engine, expire_on_commit=False) as session:
        claimed = claim(
            session,
            worker=worker,
            now=now,
            lease=timedelta(seconds=settings.webhook_lease_seconds),
            limit=batch_limit(settings),
        )
        targets = _targets(session, {c.endpoint_id for c in claimed}, now)
        session.commit()
    if not claimed:
        return 0
    _crash("after_claim")
    for delivery in claimed:
        target = targets[delivery.endpoint_id]
        started = utcnow()
        if not target.enabled:
            result = Result(None, "endpoint_disabled", 0.0, None)
        else:
            result = send(
                client,
                delivery,
                target,
                now=started,
                allow_private=settings.webhook_allow_private_targets,
            )
        _crash("after_send")
        with Session(engine, expire_on_commit=False) as session:
            outcome = record(
                session, settings, delivery=delivery, result=result, worker=worker, now=utcnow()
            )
            session.commit()
        logger.info(
            "webhook %s attempt %d to endpoint %s: %s (%s %s)",
            signing.message_id(delivery.id),
            delivery.attempt,
            delivery.endpoint_id,
            outcome,
            result.status_code,
            result.error_class,
        )
        _crash("after_record")
    return len(claimed)


def run_delivery_loop(
    engine: Engine, settings: Settings, *, stop: threading.Event, worker: str
) -> None:
    """Deliver until ``stop`` is set: at once while there is work, else every poll interval."""
    with ssrf.guarded_client(
        allow_private=settings.webhook_allow_private_targets,
        timeout=settings.webhook_timeout_seconds,
    ) as client:
        logger.info("webhook delivery %s started", worker)
        while not stop.is_set():
            try:
                handled = deliver_due(engine, settings, client, worker=worker)
            except Exception:
                logger.exception("webhook delivery cycle failed; retrying")
                handled = 0
            if handled == 0:
                stop.wait(settings.webhook_poll_seconds)
