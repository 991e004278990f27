"""The missed-visit sweep (issue 5 item 6): a worker job that turns visits whose window closed
into ``missed``, exactly once, with an audit event and a ``visit.missed`` alert.

When a visit is missed: when ``service.state_of`` says so on the participant's local day - the
day after the window's last day (after the rescheduled date, for a visit moved past its window).
Dates are the participant's local calendar days, so a participant at UTC+14 crosses into the next
day up to 14 hours before UTC does and one at UTC-11 up to 11 hours after. No participant's local
date is later than the UTC date plus one day, so the database narrows the candidates to visits
whose window and target dates are before that bound, and each candidate is then checked against
its participant's own local date.

Exactly once, with several workers running:

- PostgreSQL: candidates are claimed with ``SELECT ... FOR UPDATE OF visit SKIP LOCKED`` (about
  ``BATCH_SIZE`` per run), so concurrent workers take disjoint sets instead of queueing.
- SQLite: every transaction starts with ``BEGIN IMMEDIATE`` (app/core/db.py), so sweeps, like all
  writes, run one at a time.
- Either way the ``UPDATE`` is conditional (``WHERE status = 'scheduled'``): a visit completed,
  cancelled or already marked meanwhile is left alone, and only the rows it changed (``RETURNING``)
  get an audit event and an alert; the alert's dedup key ``visit.missed:<visit id>`` would keep
  even a second marking from alerting twice.

Visits of withdrawn participants are never marked (their schedule stops with the withdrawal).
The job runs in the worker's transaction (``app.worker``) and only flushes.
"""

from __future__ import annotations

import datetime as dt
import uuid
from zoneinfo import ZoneInfo

from sqlalchemy import Date, Uuid, literal, tuple_, update
from sqlmodel import Session, col, select

from app.alerts import service as alerts_service
from app.audit import service as audit
from app.audit.service import Actor
from app.core.models import utcnow
from app.participants.models import Participant
from app.visits import service
from app.visits.models import Visit

SWEEP_ACTOR = Actor(type="system", id="visit-sweep", role="system")
#: Visits claimed per run (the page that reaches it is finished: fewer than twice this); the
#: worker runs again a few seconds later for the rest.
BATCH_SIZE = 500
ALERT_TYPE = "visit.missed"
REASON = "The visit window closed without the visit being recorded"


def sweep_missed(session: Session, *, now: dt.datetime | None = None) -> int:
    """Mark the visits whose window has closed as missed; returns how many this run marked."""
    now = now or utcnow()
    due = _claim_due(session, now=now, limit=BATCH_SIZE)
    if not due:
        return 0
    marked = session.scalars(
        update(Visit)
        .where(col(Visit.id).in_(due), col(Visit.status) == "scheduled")
        .values(status="missed", missed_at=now, updated_at=now, sequence=col(Visit.sequence) + 1)
        .returning(Visit)
        .execution_options(synchronize_session=False, populate_existing=True)
    ).all()
    for visit in sorted(marked, key=lambda v: (v.window_end, v.id)):
        _record(session, visit, site_id=due[visit.id], now=now)
    return len(marked)


def _claim_due(session: Session, *, now: dt.datetime, limit: int) -> dict[uuid.UUID, uuid.UUID]:
    """Claim scheduled visits that are missed on their participant's local day: at least
    ``limit`` of them if there are that many (at most one page more), each with its participant's
    site.

    Candidates come in pages of ``limit`` by (window end, id), locked with ``FOR UPDATE OF visit
    SKIP LOCKED`` on PostgreSQL (another worker's rows are skipped, not waited for); a page whose
    candidates are not yet due in their zones (the UTC-11 side of the date line) is passed over
    for the next one, so those can never hold back due visits behind them.
    """
    # No zone is more than one calendar day ahead of UTC (UTC+14 is the furthest).
    bound = now.astimezone(dt.UTC).date() + dt.timedelta(days=1)
    zones: dict[str, dt.date] = {}
    due: dict[uuid.UUID, uuid.UUID] = {}
    after: tuple[dt.date, uuid.UUID] | None = None
    while len(due) < limit:
        stmt = (
            select(Visit, Participant.site_id, Participant.time_zone)
            .join(Participant, col(Participant.id) == Visit.participant_id)
            .where(
                Visit.status == "scheduled",
                col(Visit.window_end) < bound,
                col(Visit.target_date) < bound,
                Participant.status != "withdrawn",
            )
            .order_by(col(Visit.window_end), col(Visit.id))
            .limit(limit)
            .with_for_update(of=Visit, skip_locked=True)
            .execution_options(populate_existing=True)
        )
        if after is not None:
            stmt = stmt.where(
                tuple_(col(Visit.window_end), col(Visit.id))
                > tuple_(literal(after[0], type_=Date()), literal(after[1], type_=Uuid()))
            )
        rows = session.exec(stmt).all()
        for visit, site_id, time_zone in rows:
            if time_zone not in zones:
                zones[time_zone] = now.astimezone(ZoneInfo(time_zone)).date()
            if service.state_of(visit, zones[time_zone]) == "missed":
                due[visit.id] = site_id
        if len(rows) < limit:
            break
        last = rows[-1][0]
        after = (last.window_end, last.id)
    return due


def _record(session: Session, visit: Visit, *, site_id: uuid.UUID, now: dt.datetime) -> None:
    audit.record(
        session,
        actor=SWEEP_ACTOR,
        action="visit.missed",
        entity_type="visit",
        entity_id=visit.id,
        study_id=visit.study_id,
        participant_id=visit.participant_id,
        # The UPDATE bumped the sequence by one from what it was.
        before={"status": "scheduled", "missed_at": None, "sequence": visit.sequence - 1},
        after={"status": visit.status, "missed_at": visit.missed_at, "sequence": visit.sequence},
        reason=f"{REASON} (window closed {visit.window_end.isoformat()}, participant-local)",
    )
    alerts_service.raise_alert(
        session,
        type=ALERT_TYPE,
        priority="routine",
        study_id=visit.study_id,
        site_id=site_id,
        participant_id=visit.participant_id,
        subject_type="visit",
        subject_id=visit.id,
        dedup_key=f"{ALERT_TYPE}:{visit.id}",
        data={
            "visit_id": visit.id,
            "participant_id": visit.participant_id,
            "visit_key": visit.key,
            "visit_kind": visit.kind,
            "visit_day": visit.day,
            "target_date": visit.target_date,
            "window_end": visit.window_end,
        },
        now=now,
    )
