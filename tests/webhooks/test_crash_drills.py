"""Worker crash drills (issue 7 Done-when; checklist E30): the real ``mgdiary worker`` process
killed by fault injection (``MGDIARY_WEBHOOK_CRASH_AT``, ``os._exit(137)``) after claiming,
after sending but before recording, and after recording; then a normal worker is started.

On committed data (a scratch database, SQLite or PostgreSQL after MGDIARY_TEST_DATABASE_URL),
a study's endpoint points at a loopback receiver (tests/webhooks/receiver.py) and ``ALERTS``
alerts are raised. The crashing worker claims all of them in one batch (batch size 20), so
every delivery is leased by it when it dies. Expected after the restart:

- every committed alert received (and verified with ``standardwebhooks``) at least once;
- every receipt of one delivery with the same ``webhook-id`` and the same body;
- duplicates only after ``after_send`` (exactly the one delivery sent before the crash);
- no row left ``delivering``, no lease left behind, and the attempt log consistent: one
  ``delivered`` attempt per delivery, numbered by the delivery's ``attempts``, the attempt the
  crash swallowed missing from the log (it was never recorded), nothing else.

Each drill waits for the dead worker's lease (``MGDIARY_WEBHOOK_LEASE_SECONDS=9``, the
long enough for one claim to take every alert) to run out, so a drill takes about 11-14 s.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
import standardwebhooks
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app.alerts import service as alerts
from app.core.models import utcnow
from app.webhooks import signing
from app.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tests.factories import create_study
from tests.scratch_database import scratch_engines
from tests.webhooks.receiver import Received, Receiver, running_receiver

ROOT = Path(__file__).resolve().parents[2]
ALERTS = 5
LEASE_SECONDS = 9  # one claim takes all ALERTS: 9 // (0.5 + 1) = 6 (delivery.batch_limit)
#: Bounds: the crashing worker must die within CRASH_WAIT, the restarted one deliver
#: everything within DRAIN_WAIT (the lease plus start-up plus the sends).
CRASH_WAIT = 15.0
DRAIN_WAIT = 20.0


@pytest.fixture
def engine() -> Iterator[Engine]:
    with scratch_engines(1) as (scratch,):
        yield scratch


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver("ok") as running:
        yield running


def _worker_env(engine: Engine, crash_at: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MGDIARY_WEBHOOK_CRASH_AT"}
    env.update(
        {
            "MGDIARY_ENV": "development",
            "MGDIARY_DATABASE_URL": engine.url.render_as_string(hide_password=False),
            "MGDIARY_WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
            "MGDIARY_WEBHOOK_LEASE_SECONDS": str(LEASE_SECONDS),
            "MGDIARY_WEBHOOK_TIMEOUT_SECONDS": "0.5",
            "MGDIARY_WEBHOOK_POLL_SECONDS": "0.1",
            "MGDIARY_WEBHOOK_RETRY_SCHEDULE": "0,0,0,0,0",
            "MGDIARY_WEBHOOK_RETRY_JITTER": "0",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    if crash_at is not None:
        env["MGDIARY_WEBHOOK_CRASH_AT"] = crash_at
    return env


def _start_worker(engine: Engine, log: Path, crash_at: str | None) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker"],
            cwd=ROOT,
            env=_worker_env(engine, crash_at),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
    except ProcessLookupError:
        pass


def _setup(engine: Engine, receiver: Receiver) -> tuple[WebhookEndpoint, list[uuid.UUID]]:
    with Session(engine, expire_on_commit=False) as session:
        study, _ = create_study(session)
        endpoint = WebhookEndpoint(
            study_id=study.id,
            url=receiver.url,
            event_types=["safety.signal.raised"],
            secret=signing.new_secret(),
            created_by="tests",
        )
        session.add(endpoint)
        session.commit()
        alert_ids = []
        for _ in range(ALERTS):
            alert, new = alerts.raise_alert(
                session,
                type="safety.signal.raised",
                priority="high",
                study_id=study.id,
                site_id=None,
                participant_id=None,
                subject_type="safety_signal",
                subject_id=uuid.uuid4(),
                dedup_key=f"drill:{uuid.uuid4()}",
                data={"category": "crs", "priority": "high"},
            )
            assert new
            assert alert is not None
            alert_ids.append(alert.id)
        session.commit()
    return endpoint, alert_ids


def _deliveries(engine: Engine) -> list[WebhookDelivery]:
    with Session(engine) as session:
        return list(
            session.exec(select(WebhookDelivery).order_by(col(WebhookDelivery.created_at))).all()
        )


def _attempts(engine: Engine) -> dict[uuid.UUID, list[WebhookAttempt]]:
    out: dict[uuid.UUID, list[WebhookAttempt]] = defaultdict(list)
    with Session(engine) as session:
        for attempt in session.exec(
            select(WebhookAttempt).order_by(col(WebhookAttempt.attempt))
        ).all():
            out[attempt.delivery_id].append(attempt)
    return out


def _wait_until_delivered(engine: Engine, worker: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + DRAIN_WAIT
    while time.monotonic() < deadline:
        rows = _deliveries(engine)
        if rows and all(d.status == "delivered" for d in rows):
            return
        assert worker.poll() is None, log.read_text(errors="replace")[-3000:]
        time.sleep(0.1)
    statuses = [(d.status, d.attempts, d.last_error) for d in _deliveries(engine)]
    pytest.fail(f"not delivered within {DRAIN_WAIT} s: {statuses}\n{log.read_text()[-3000:]}")


def _receipts(receiver: Receiver, secret: str) -> dict[str, list[Received]]:
    """The verified receipts by ``webhook-id``."""
    verifier = standardwebhooks.Webhook(secret)
    out: dict[str, list[Received]] = defaultdict(list)
    with receiver.lock:
        requests = list(receiver.requests)
    for request in requests:
        verifier.verify(request.body, request.headers)  # raises on a bad signature
        out[request.headers["webhook-id"]].append(request)
    return out


@pytest.mark.parametrize("crash_at", ["after_claim", "after_send", "after_record"])
def test_a_worker_killed_mid_delivery_loses_nothing(
    crash_at: str, engine: Engine, receiver: Receiver, tmp_path: Path
) -> None:
    endpoint, alert_ids = _setup(engine, receiver)
    assert len(_deliveries(engine)) == ALERTS
    log = tmp_path / "worker.log"
    crashing = _start_worker(engine, log, crash_at)
    normal: subprocess.Popen[bytes] | None = None
    try:
        try:
            code = crashing.wait(timeout=CRASH_WAIT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the worker did not crash at {crash_at}:\n{log.read_text()[-3000:]}")
        assert code == 137, log.read_text(errors="replace")[-3000:]

        # What the dead worker left behind: its claims, under a lease still running.
        left = _deliveries(engine)
        now = utcnow()
        recorded = [d for d in left if d.status == "delivered"]
        leased = [d for d in left if d.status == "delivering"]
        assert len(recorded) == (1 if crash_at == "after_record" else 0)
        assert len(leased) + len(recorded) == ALERTS
        assert all(d.lease_until is not None and d.lease_until > now for d in leased)
        assert len(receiver.requests) == (0 if crash_at == "after_claim" else 1)

        normal = _start_worker(engine, log, None)
        _wait_until_delivered(engine, normal, log)
    finally:
        _stop(crashing)
        if normal is not None:
            _stop(normal)

    rows = _deliveries(engine)
    by_id = {signing.message_id(d.id): d for d in rows}
    receipts = _receipts(receiver, endpoint.secret)

    # No loss: every committed alert's delivery was received, and nothing else was.
    assert sorted(str(d.alert_id) for d in rows) == sorted(str(a) for a in alert_ids)
    assert set(receipts) == set(by_id)
    received_alerts = {
        json.loads(r.body)["data"]["alert_id"] for same in receipts.values() for r in same
    }
    assert received_alerts == {str(a) for a in alert_ids}

    # One delivery, one webhook-id, one body: its stored bytes, on every receipt.
    for msg_id, same in receipts.items():
        assert {r.body for r in same} == {by_id[msg_id].body.encode()}
        assert {r.headers["webhook-id"] for r in same} == {msg_id}

    # Duplicates only where the crash came between sending and recording.
    counts = sorted(len(same) for same in receipts.values())
    expected = [1] * (ALERTS - 1) + [2] if crash_at == "after_send" else [1] * ALERTS
    assert counts == expected, crash_at

    # Nothing stuck: no row delivering, no lease or leaseholder left.
    now = utcnow()
    assert all(d.status == "delivered" for d in rows)
    assert not [d for d in rows if d.status == "delivering" and (d.lease_until or now) <= now]
    assert all(d.lease_until is None and d.leased_by is None for d in rows)

    # The attempt log: one delivered attempt per delivery, the last one claimed; the attempt
    # swallowed by the crash (claimed, maybe sent, never recorded) is absent, no other gap.
    log_of = _attempts(engine)
    for delivery in rows:
        logged = log_of[delivery.id]
        assert [a.outcome for a in logged] == ["delivered"], crash_at
        assert logged[0].attempt == delivery.attempts
        assert logged[0].status_code == 204
        sent = len(receipts[signing.message_id(delivery.id)])
        assert delivery.attempts >= sent
    assert sorted(d.attempts for d in rows) == (
        [1] + [2] * (ALERTS - 1) if crash_at == "after_record" else [2] * ALERTS
    )
