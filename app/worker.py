"""The background worker: runs periodic jobs and records a heartbeat operators can check.

Runs as ``mgdiary worker``, or as a thread inside ``mgdiary serve`` unless
``MGDIARY_INPROCESS_WORKER=false``. Jobs are plain functions taking a session; each job's run is
its own transaction, so one failing job never blocks the others. Jobs are listed in ``JOBS``
below; webhook delivery (app/webhooks/delivery.py) runs in a thread of its own beside them.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel

from app import hooks
from app.core.config import Settings, get_settings
from app.core.models import UTCDateTime, utcnow
from app.visits.sweep import sweep_missed
from app.webhooks.delivery import run_delivery_loop

logger = logging.getLogger("mgdiary.worker")

Job = Callable[[Session], int]
JOBS: dict[str, Job] = {
    # Visits whose window closed -> missed, with an audit event and a visit.missed alert.
    "visit-sweep": sweep_missed,
}


class WorkerHeartbeat(SQLModel, table=True):
    __tablename__ = "worker_heartbeat"

    name: str = Field(primary_key=True, max_length=200)
    started_at: datetime = Field(sa_type=UTCDateTime(), nullable=False)
    last_seen_at: datetime = Field(sa_type=UTCDateTime(), nullable=False)
    jobs_run: int = Field(default=0)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def run_once(engine: Engine, *, name: str, started_at: datetime) -> int:
    """Run every registered job once, then beat. Returns the number of items the jobs handled."""
    handled = 0
    for job_name, job in JOBS.items():
        try:
            with Session(engine) as session:
                handled += job(session)
                session.commit()
        except Exception:
            logger.exception("worker job %s failed; it runs again next cycle", job_name)
    with Session(engine) as session:
        beat = session.get(WorkerHeartbeat, name)
        if beat is None:
            beat = WorkerHeartbeat(name=name, started_at=started_at, last_seen_at=utcnow())
        beat.last_seen_at = utcnow()
        beat.jobs_run += 1
        session.add(beat)
        session.commit()
    return handled


def run_forever(
    engine: Engine,
    *,
    poll_seconds: float,
    stop: threading.Event,
    settings: Settings | None = None,
    deliver_webhooks: bool = True,
) -> None:
    """The periodic jobs every ``poll_seconds``, and webhook delivery in its own thread (it
    polls far more often: alert latency, issue 7)."""
    hooks.install()
    name = worker_name()
    started_at = utcnow()
    delivery: threading.Thread | None = None
    if deliver_webhooks:
        delivery = threading.Thread(
            target=run_delivery_loop,
            name="mgdiary-webhooks",
            daemon=True,
            args=(engine, settings or get_settings()),
            kwargs={"stop": stop, "worker": f"{name}:webhooks"},
        )
        delivery.start()
    logger.info("worker %s started with jobs: %s", name, ", ".join(JOBS) or "(none)")
    while not stop.is_set():
        try:
            run_once(engine, name=name, started_at=started_at)
        except Exception:
            logger.exception("worker cycle failed; retrying after %.1f s", poll_seconds)
        stop.wait(poll_seconds)
    if delivery is not None:
        delivery.join(timeout=30)
    logger.info("worker %s stopped", name)
