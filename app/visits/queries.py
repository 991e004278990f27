"""Portal reads across a study: visits by state and due date, and schedule adherence.

A visit's state depends on its participant's local "today", which differs between participants
by up to 26 hours (UTC-12 to UTC+14), so a state filter cannot be a plain SQL condition on a
single date. Filtering rows in Python *after* a ``LIMIT`` would return short or empty pages with
more rows behind them. Instead:

1. SQL keeps only candidates: rows that could be in the requested state for *some* local today
   between the earliest and the latest local date anywhere on Earth at this instant
   (``local_today_bounds``). That is a superset of the answer, and a tight one: only visits at
   the edge of a state within a day or so are candidates that then turn out not to match.
2. Python applies the exact rule (``service.state_of`` with each participant's own local today)
   while walking the candidates in keyset order (target date, visit id), fetching further batches
   until the page is full.
3. The cursor is the key of the last row *returned*, so the next page resumes right after it:
   candidates that did not match are skipped again, and none that matched is lost or repeated.

The state of a visit can change between two page requests (a participant's midnight passes); as
with rows changing in any keyset list, a visit may then appear on neither or on both pages.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import sqlalchemy as sa
from sqlalchemy import ColumnElement, and_, literal, or_, tuple_
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import Select

from app.auth import scoping
from app.auth.principal import StaffPrincipal
from app.core.models import utcnow
from app.core.pagination import PageParams, decode_cursor, encode_cursor
from app.core.time import local_date
from app.participants import service as participants_service
from app.participants.models import Participant
from app.visits import service
from app.visits.models import Visit
from app.visits.schedule import ScheduleAdherence, VisitRecord, VisitState, schedule_adherence

#: The extreme UTC offsets in use (Etc/GMT+12 and Pacific/Kiritimati); a test checks every
#: zone of the installed tz database against them.
MIN_UTC_OFFSET: Final = dt.timedelta(hours=-12)
MAX_UTC_OFFSET: Final = dt.timedelta(hours=14)

#: States a visit is "due" in: not done, not cancelled, not missed.
DUE_STATES: Final = frozenset({"upcoming", "open", "overdue"})
#: Stored statuses of visits that are no longer pending.
_CLOSED = ("completed", "cancelled")


def local_today_bounds(now: dt.datetime) -> tuple[dt.date, dt.date]:
    """The earliest and latest local calendar date anywhere at the instant ``now``."""
    utc = now.astimezone(dt.UTC)
    return (utc + MIN_UTC_OFFSET).date(), (utc + MAX_UTC_OFFSET).date()


@dataclass(frozen=True, slots=True)
class VisitFilter:
    status: VisitState | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    site_id: uuid.UUID | None = None
    due_within_days: int | None = None
    """Not completed, cancelled or missed, with a target date up to local today + N (so open
    and overdue visits whose target has passed are included)."""

    def matches(self, visit: Visit, today: dt.date) -> bool:
        """The exact rule, on the participant's local ``today``."""
        state = service.state_of(visit, today)
        if self.status is not None and state != self.status:
            return False
        if self.due_within_days is not None:
            limit = today + dt.timedelta(days=self.due_within_days)
            return state in DUE_STATES and visit.target_date <= limit
        return True


def _state_candidates(state: VisitState, lo: dt.date, hi: dt.date) -> ColumnElement[bool]:
    """Visits that are in ``state`` for at least one local today ``t`` with lo <= t <= hi.

    With the effective window [min(window_start, target), max(window_end, target)] of
    ``schedule.visit_state``: upcoming t < start; open start <= t <= target; overdue
    target < t <= window_end; missed t > max(window_end, target) - or stored as missed.
    """
    status, target = col(Visit.status), col(Visit.target_date)
    start, end = col(Visit.window_start), col(Visit.window_end)
    pending = status.not_in(_CLOSED)
    if state == "cancelled":
        return status == "cancelled"
    if state == "completed":
        return and_(status != "cancelled", col(Visit.completed_on).is_not(None))
    if state == "upcoming":
        return and_(pending, start > lo, target > lo)
    if state == "open":
        return and_(pending, or_(start <= hi, target <= hi), target >= lo)
    if state == "overdue":
        return and_(pending, target < hi, end > target, end >= lo)
    return or_(status == "missed", and_(pending, end < hi, target < hi))


def _due_candidates(days: int, lo: dt.date, hi: dt.date) -> ColumnElement[bool]:
    """Pending visits with target <= t + days that are not missed on t (t <= max(end, target))."""
    status, target, end = col(Visit.status), col(Visit.target_date), col(Visit.window_end)
    return and_(
        status.not_in((*_CLOSED, "missed")),
        target <= hi + dt.timedelta(days=days),
        or_(end >= lo, target >= lo),
    )


def _candidates(
    principal: StaffPrincipal, study_id: uuid.UUID, f: VisitFilter, now: dt.datetime
) -> ColumnElement[bool]:
    lo, hi = local_today_bounds(now)
    clauses: list[ColumnElement[bool]] = [
        col(Visit.study_id) == study_id,
        scoping.site_filter(principal, Participant.study_id, Participant.site_id),
    ]
    if f.site_id is not None:
        clauses.append(col(Participant.site_id) == f.site_id)
    if f.date_from is not None:
        clauses.append(col(Visit.target_date) >= f.date_from)
    if f.date_to is not None:
        clauses.append(col(Visit.target_date) <= f.date_to)
    if f.status is not None:
        clauses.append(_state_candidates(f.status, lo, hi))
    if f.due_within_days is not None:
        clauses.append(_due_candidates(f.due_within_days, lo, hi))
    return and_(*clauses)


def study_visits(
    session: Session,
    *,
    principal: StaffPrincipal,
    study_id: uuid.UUID,
    filters: VisitFilter,
    params: PageParams,
) -> tuple[list[tuple[Visit, Participant, dt.date]], str | None]:
    """One page of the study's visits inside the caller's sites, by (target date, id), each with
    its participant and their local today; see the module docstring for how states are
    filtered."""
    now = utcnow()
    scope = f"study-visits:{study_id}"
    after: tuple[dt.date, uuid.UUID] | None = None
    if params.cursor:
        day, visit_id = decode_cursor(scope, params.cursor, [dt.date.fromisoformat, uuid.UUID])
        after = (day, visit_id)
    stmt = (
        select(Visit, Participant)
        .join(Participant, col(Participant.id) == Visit.participant_id)
        .where(_candidates(principal, study_id, filters, now))
        .order_by(col(Visit.target_date), col(Visit.id))
    )
    found: list[tuple[Visit, Participant, dt.date]] = []
    for visit, participant, today in _scan(session, stmt, after, batch=params.limit + 1, now=now):
        if filters.matches(visit, today):
            found.append((visit, participant, today))
            if len(found) > params.limit:
                break
    next_cursor = None
    if len(found) > params.limit:
        found = found[: params.limit]
        last = found[-1][0]
        next_cursor = encode_cursor(scope, [last.target_date, last.id])
    return found, next_cursor


def _scan(
    session: Session,
    stmt: Select[Visit, Participant],
    after: tuple[dt.date, uuid.UUID] | None,
    *,
    batch: int,
    now: dt.datetime,
) -> Iterator[tuple[Visit, Participant, dt.date]]:
    """Candidate rows in keyset order, fetched ``batch`` at a time, with the local today."""
    key = tuple_(col(Visit.target_date), col(Visit.id))
    todays: dict[uuid.UUID, dt.date] = {}
    while True:
        query = stmt
        if after is not None:
            bound = tuple_(literal(after[0], type_=sa.Date()), literal(after[1], type_=sa.Uuid()))
            query = query.where(key > bound)
        rows = session.exec(query.limit(batch)).all()
        for visit, participant in rows:
            today = todays.get(participant.id)
            if today is None:
                today = todays[participant.id] = local_date(now, participant.time_zone)
            yield visit, participant, today
        if len(rows) < batch:
            return
        last = rows[-1][0]
        after = (last.target_date, last.id)


# --- schedule adherence -----------------------------------------------------------------------


def adherence_as_of(participant: Participant, now: dt.datetime) -> dt.date:
    """The participant's local today, or their withdrawal day if earlier: a withdrawn
    participant's visits stop falling due when they leave (as diary adherence does)."""
    today = local_date(now, participant.time_zone)
    if participant.withdrawn_at is not None:
        today = min(today, local_date(participant.withdrawn_at, participant.time_zone))
    return today


def adherence_many(
    session: Session, participants: list[Participant]
) -> dict[uuid.UUID, tuple[dt.date, ScheduleAdherence]]:
    """Schedule adherence of several participants with one query for their visits."""
    now = utcnow()
    visits: dict[uuid.UUID, list[VisitRecord]] = {p.id: [] for p in participants}
    if visits:
        for v in session.exec(
            select(Visit).where(col(Visit.participant_id).in_(list(visits)))
        ).all():
            visits[v.participant_id].append(
                VisitRecord(
                    planned=service.planned_of(v),
                    completed_on=v.completed_on if v.status != "cancelled" else None,
                    cancelled=v.status == "cancelled",
                )
            )
    out = {}
    for p in participants:
        as_of = adherence_as_of(p, now)
        out[p.id] = (as_of, schedule_adherence(visits[p.id], today=as_of))
    return out


def study_adherence(
    session: Session,
    *,
    principal: StaffPrincipal,
    study_id: uuid.UUID,
    site_id: uuid.UUID | None,
    params: PageParams,
) -> tuple[list[tuple[Participant, dt.date, ScheduleAdherence]], str | None]:
    """One page of participants inside the caller's sites (by subject code), each with their
    schedule adherence."""
    participants, next_cursor = participants_service.list_for_staff(
        session, principal=principal, study_id=study_id, site_id=site_id, status=None, params=params
    )
    result = adherence_many(session, participants)
    rows = [(p, *result[p.id]) for p in participants]
    return rows, next_cursor
