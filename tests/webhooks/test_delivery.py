"""Webhook delivery from the outbox against a fault-injecting receiver on loopback (issue 7;
checklist D23, D24, D27, D28, E29).

Runs on committed data (a scratch database): the worker's claim, send and record are separate
transactions, as in production. Retry delays are compressed through the settings.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import standardwebhooks
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app.alerts import service as alerts
from app.alerts.models import Alert
from app.core.config import Settings, get_settings
from app.core.models import utcnow
from app.webhooks import delivery, signing, ssrf
from app.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tests.factories import create_study
from tests.scratch_database import scratch_engines
from tests.webhooks.receiver import Receiver, running_receiver


def settings_with(**overrides: Any) -> Settings:
    base = get_settings().model_dump()
    base.update(
        webhook_allow_private_targets=True,
        webhook_retry_schedule=(0, 0, 0),
        webhook_retry_jitter=0.0,
        webhook_timeout_seconds=1.0,
        webhook_lease_seconds=5,
    )
    base.update(overrides)
    return Settings(**base)


@pytest.fixture
def engine() -> Iterator[Engine]:
    """A database of its own per test: the worker claims every due delivery, whoever's."""
    with scratch_engines(1) as (scratch,):
        yield scratch


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver("ok", hold=2.0) as running:
        yield running


def make_endpoint(engine: Engine, url: str, **extra: Any) -> WebhookEndpoint:
    with Session(engine, expire_on_commit=False) as session:
        study, _ = create_study(session)
        endpoint = WebhookEndpoint(
            study_id=study.id,
            url=url,
            event_types=["safety.signal.raised", "visit.missed", "webhook.delivery.failed"],
            secret=signing.new_secret(),
            created_by="tests",
            **extra,
        )
        session.add(endpoint)
        session.commit()
    return endpoint


def raise_alert(
    engine: Engine, endpoint: WebhookEndpoint, type: str = "safety.signal.raised"
) -> Alert:
    with Session(engine, expire_on_commit=False) as session:
        alert, new = alerts.raise_alert(
            session,
            type=type,
            priority="high",
            study_id=endpoint.study_id,
            site_id=None,
            participant_id=None,
            subject_type="safety_signal",
            subject_id=uuid.uuid4(),
            dedup_key=f"{type}:{uuid.uuid4()}",
            data={"category": "crs", "priority": "high"},
        )
        assert new
        assert alert is not None
        session.commit()
    return alert


def deliveries(engine: Engine, endpoint: WebhookEndpoint) -> list[WebhookDelivery]:
    with Session(engine) as session:
        return list(
            session.exec(
                select(WebhookDelivery)
                .where(WebhookDelivery.endpoint_id == endpoint.id)
                .order_by(col(WebhookDelivery.created_at))
            ).all()
        )


def attempts(engine: Engine, delivery_id: uuid.UUID) -> list[WebhookAttempt]:
    with Session(engine) as session:
        return list(
            session.exec(
                select(WebhookAttempt)
                .where(WebhookAttempt.delivery_id == delivery_id)
                .order_by(col(WebhookAttempt.attempt))
            ).all()
        )


def cycle(engine: Engine, settings: Settings, worker: str = "w1") -> int:
    with ssrf.guarded_client(
        allow_private=True, timeout=settings.webhook_timeout_seconds
    ) as client:
        return delivery.deliver_due(engine, settings, client, worker=worker)


def endpoint_of(engine: Engine, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    with Session(engine) as session:
        found = session.get(WebhookEndpoint, endpoint.id)
        assert found is not None
        return found


def test_a_delivery_verifies_with_standardwebhooks_and_tampering_does_not(
    engine: Engine, receiver: Receiver
) -> None:
    endpoint = make_endpoint(engine, receiver.url)
    alert = raise_alert(engine, endpoint)
    [queued] = deliveries(engine, endpoint)
    assert (queued.status, queued.alert_id) == ("pending", alert.id)
    assert cycle(engine, settings_with()) == 1
    [request] = receiver.requests
    verifier = standardwebhooks.Webhook(endpoint.secret)
    payload = verifier.verify(request.body, request.headers)
    assert payload["type"] == "safety.signal.raised"
    assert payload["data"]["alert_id"] == str(alert.id)
    assert set(payload) == {"type", "timestamp", "data"}
    assert request.headers["webhook-id"] == f"msg_{queued.id.hex}"
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        verifier.verify(request.body.replace(b"crs", b"icans"), request.headers)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(signing.new_secret()).verify(request.body, request.headers)
    [done] = deliveries(engine, endpoint)
    assert (done.status, done.attempts, done.last_status_code) == ("delivered", 1, 204)
    [attempt] = attempts(engine, done.id)
    assert (attempt.outcome, attempt.status_code, attempt.error_class) == ("delivered", 204, None)
    assert endpoint_of(engine, endpoint).last_success_at is not None


def test_during_rotation_both_signatures_verify(engine: Engine, receiver: Receiver) -> None:
    old = signing.new_secret()
    new = signing.new_secret()
    endpoint = make_endpoint(
        engine,
        receiver.url,
        previous_secret=old,
        previous_secret_expires_at=utcnow() + timedelta(hours=1),
    )
    with Session(engine) as session:
        stored = session.get(WebhookEndpoint, endpoint.id)
        assert stored is not None
        stored.secret = new
        session.add(stored)
        session.commit()
    raise_alert(engine, endpoint)
    cycle(engine, settings_with())
    [request] = receiver.requests
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    standardwebhooks.Webhook(old).verify(request.body, request.headers)
    standardwebhooks.Webhook(new).verify(request.body, request.headers)


def test_failures_retry_with_the_same_webhook_id_and_body_then_succeed(
    engine: Engine, receiver: Receiver
) -> None:
    receiver.script("500", "reset", "timeout", "ok")
    endpoint = make_endpoint(engine, receiver.url)
    raise_alert(engine, endpoint)
    settings = settings_with(webhook_retry_schedule=(0, 0, 0, 0))
    for _ in range(4):
        assert cycle(engine, settings) == 1
    [done] = deliveries(engine, endpoint)
    assert done.status == "delivered"
    log = attempts(engine, done.id)
    assert [(a.attempt, a.error_class, a.outcome) for a in log] == [
        (1, "http_status", "retry"),
        (2, "connection_reset", "retry"),
        (3, "timeout", "retry"),
        (4, None, "delivered"),
    ]
    assert log[2].duration_ms < 1800  # the 1 s timeout, not the receiver's 2 s hold
    ids = {r.headers["webhook-id"] for r in receiver.requests}
    bodies = {r.body for r in receiver.requests}
    assert len(ids) == 1
    assert len(bodies) == 1


def test_the_retry_schedule_and_retry_after_are_honoured(
    engine: Engine, receiver: Receiver
) -> None:
    receiver.script("500", "429", "500")
    endpoint = make_endpoint(engine, receiver.url)
    raise_alert(engine, endpoint)
    settings = settings_with(webhook_retry_schedule=(0, 30, 60, 90), webhook_retry_jitter=0.2)
    before = utcnow()
    cycle(engine, settings)
    [pending] = deliveries(engine, endpoint)
    wait = (pending.next_attempt_at - before).total_seconds()
    assert 30 * 0.8 - 1 <= wait <= 30 * 1.2 + 1  # schedule[1] with +-20 % jitter
    with Session(engine) as session:  # time passes
        row = session.get(WebhookDelivery, pending.id)
        assert row is not None
        row.next_attempt_at = utcnow()
        session.add(row)
        session.commit()
    before = utcnow()
    cycle(engine, settings)  # 429 with Retry-After: 7
    [pending] = deliveries(engine, endpoint)
    wait = (pending.next_attempt_at - before).total_seconds()
    assert 6 <= wait <= 8
    assert attempts(engine, pending.id)[-1].status_code == 429


def test_410_disables_the_endpoint_with_an_alert(engine: Engine, receiver: Receiver) -> None:
    receiver.script("410")
    endpoint = make_endpoint(engine, receiver.url)
    raise_alert(engine, endpoint)
    cycle(engine, settings_with())
    [gone] = deliveries(engine, endpoint)
    assert gone.status == "failed"
    assert attempts(engine, gone.id)[0].outcome == "disabled"
    stored = endpoint_of(engine, endpoint)
    assert (stored.enabled, stored.disabled_reason) == (False, "gone")
    with Session(engine) as session:
        types = session.exec(select(Alert.type).where(Alert.subject_id == str(endpoint.id))).all()
    assert list(types) == ["webhook.endpoint.disabled"]
    # A disabled endpoint's new deliveries wait (they are not attempted).
    raise_alert(engine, endpoint)
    assert cycle(engine, settings_with()) == 0
    assert len(receiver.requests) == 1


def test_redirects_are_not_followed(engine: Engine, receiver: Receiver) -> None:
    receiver.script("302", "ok")
    endpoint = make_endpoint(engine, receiver.url)
    raise_alert(engine, endpoint)
    cycle(engine, settings_with())
    [row] = deliveries(engine, endpoint)
    [attempt] = attempts(engine, row.id)
    assert (attempt.status_code, attempt.error_class, attempt.outcome) == (302, "redirect", "retry")
    assert receiver.admin_hits == 0


def test_slow_body_is_cut_at_the_timeout(engine: Engine, receiver: Receiver) -> None:
    receiver.script("slow")
    endpoint = make_endpoint(engine, receiver.url)
    raise_alert(engine, endpoint)
    started = time.monotonic()
    cycle(engine, settings_with())
    assert time.monotonic() - started < 3
    [row] = deliveries(engine, endpoint)
    [attempt] = attempts(engine, row.id)
    assert attempt.error_class == "timeout"


def test_exhausted_schedule_fails_with_one_operational_alert(
    engine: Engine, receiver: Receiver
) -> None:
    receiver.script("500")
    endpoint = make_endpoint(engine, receiver.url)
    raise_alert(engine, endpoint)
    settings = settings_with(webhook_retry_schedule=(0, 0))
    cycle(engine, settings)
    cycle(engine, settings)
    assert cycle(engine, settings) == 0  # nothing left to try
    rows = deliveries(engine, endpoint)
    failed = [d for d in rows if d.event_type == "safety.signal.raised"]
    assert [(d.status, d.attempts) for d in failed] == [("failed", 2)]
    with Session(engine) as session:
        ops = session.exec(
            select(Alert).where(
                Alert.type == "webhook.delivery.failed", Alert.study_id == endpoint.study_id
            )
        ).all()
    assert len(ops) == 1
    assert ops[0].data["delivery_id"] == str(failed[0].id)
    # The failing endpoint is subscribed to webhook.delivery.failed, but never gets its own.
    assert [d.event_type for d in rows] == ["safety.signal.raised"]


def test_an_endpoint_failing_for_the_disable_period_is_disabled(
    engine: Engine, receiver: Receiver
) -> None:
    receiver.script("500")
    endpoint = make_endpoint(engine, receiver.url, failing_since=utcnow() - timedelta(hours=2))
    raise_alert(engine, endpoint)
    cycle(engine, settings_with(webhook_disable_after_seconds=3600))
    stored = endpoint_of(engine, endpoint)
    assert (stored.enabled, stored.disabled_reason) == (False, "failing")


def test_a_success_resets_the_failing_clock(engine: Engine, receiver: Receiver) -> None:
    receiver.script("500", "ok")
    endpoint = make_endpoint(engine, receiver.url)
    raise_alert(engine, endpoint)
    settings = settings_with(webhook_disable_after_seconds=3600)
    cycle(engine, settings)
    assert endpoint_of(engine, endpoint).failing_since is not None
    cycle(engine, settings)
    stored = endpoint_of(engine, endpoint)
    assert (stored.enabled, stored.failing_since) == (True, None)


def test_a_private_target_is_blocked_at_delivery_without_the_setting(
    engine: Engine, receiver: Receiver
) -> None:
    endpoint = make_endpoint(engine, receiver.url)
    raise_alert(engine, endpoint)
    settings = settings_with(webhook_allow_private_targets=False)
    with ssrf.guarded_client(allow_private=False, timeout=1.0) as client:
        delivery.deliver_due(engine, settings, client, worker="w1")
    [row] = deliveries(engine, endpoint)
    [attempt] = attempts(engine, row.id)
    assert attempt.error_class in {"invalid_target", "blocked_ip"}
    assert receiver.requests == []


def test_an_expired_lease_is_claimed_again_and_a_late_result_changes_nothing(
    engine: Engine, receiver: Receiver
) -> None:
    endpoint = make_endpoint(engine, receiver.url)
    raise_alert(engine, endpoint)
    settings = settings_with()
    now = utcnow()
    with Session(engine) as session:
        [first] = delivery.claim(
            session, worker="dead", now=now, lease=timedelta(seconds=5), limit=10
        )
        session.commit()
    with Session(engine) as session:  # the lease holds: nobody else gets it
        assert (
            delivery.claim(
                session,
                worker="w2",
                now=now + timedelta(seconds=1),
                lease=timedelta(seconds=5),
                limit=10,
            )
            == []
        )
        session.rollback()
    with Session(engine) as session:  # the lease ran out: claimable again, attempt 2
        [second] = delivery.claim(
            session,
            worker="w2",
            now=now + timedelta(seconds=6),
            lease=timedelta(seconds=5),
            limit=10,
        )
        session.commit()
    assert (first.id, first.attempt, second.attempt) == (second.id, 1, 2)
    late = delivery.Result(204, None, 1.0, None)
    with Session(engine) as session:
        outcome = delivery.record(
            session, settings, delivery=first, result=late, worker="dead", now=utcnow()
        )
        session.commit()
    assert outcome == "superseded"
    [row] = deliveries(engine, endpoint)
    assert (row.status, row.leased_by) == ("delivering", "w2")


def test_the_body_carries_codes_only(engine: Engine, receiver: Receiver) -> None:
    """Checklist D26: only ids, codes, priorities and dates, no free text."""
    endpoint = make_endpoint(engine, receiver.url)
    raise_alert(engine, endpoint)
    cycle(engine, settings_with())
    [request] = receiver.requests
    payload = json.loads(request.body)
    assert set(payload["data"]) == {
        "alert_id",
        "study_id",
        "site_id",
        "participant_id",
        "subject_type",
        "subject_id",
        "priority",
        "category",
    }
    for value in payload["data"].values():
        assert value is None or (isinstance(value, str) and " " not in value)


def test_a_claim_never_takes_more_than_can_time_out_inside_its_lease() -> None:
    """Review finding: one lease covers a batch sent one by one; a claim takes at most as many
    deliveries as can each time out within it, so no other worker takes the tail over."""
    assert (
        delivery.batch_limit(settings_with(webhook_lease_seconds=60, webhook_timeout_seconds=10))
        == 5
    )
    assert (
        delivery.batch_limit(settings_with(webhook_lease_seconds=5, webhook_timeout_seconds=1)) == 2
    )
    assert delivery.batch_limit(settings_with(webhook_batch_size=3, webhook_lease_seconds=600)) == 3


def test_the_failure_of_an_operational_message_is_not_fanned_out(engine: Engine) -> None:
    """Review finding: two failing endpoints subscribed to webhook.delivery.failed must not feed
    each other; such an alert stays in the inbox."""
    from app.webhooks import outbox

    alert = Alert(
        study_id=uuid.uuid4(),
        type="webhook.delivery.failed",
        priority="high",
        subject_type="webhook_endpoint",
        subject_id=str(uuid.uuid4()),
        data={"event_type": "webhook.delivery.failed", "endpoint_id": str(uuid.uuid4())},
        dedup_key="x",
    )
    assert outbox.fanout(alert) == []
    alert.data = {"event_type": "safety.signal.raised", "endpoint_id": str(uuid.uuid4())}
    assert len(outbox.fanout(alert)) == 1
