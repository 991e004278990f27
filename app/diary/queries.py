"""Reading diary entries: newest versions, history, the changes feed, adherence, daily steps."""

from __future__ import annotations

import uuid
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta, timezone
from functools import cache
from typing import Any, Literal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, col, select

from app.core.errors import NotFound
from app.core.models import utcnow
from app.core.pagination import PageParams, cursor_after, paginate
from app.core.rows import fields_of
from app.diary.models import DiaryEntry, DiaryEntryVersion, StepCount, is_current_version
from app.diary.schemas import Adherence, EntryOut, EntryVersionOut, MgAdlScoreOut
from app.participants.models import Participant
from app.studies import service as studies_service

ChangeKind = Literal["created", "corrected"]


def get_entry(
    session: Session, *, participant_id: uuid.UUID, client_entry_id: uuid.UUID
) -> DiaryEntry:
    entry = session.exec(
        select(DiaryEntry).where(
            DiaryEntry.participant_id == participant_id,
            DiaryEntry.client_entry_id == client_entry_id,
        )
    ).first()
    if entry is None:
        raise NotFound("No such diary entry")
    return entry


def current_version(session: Session, entry: DiaryEntry) -> DiaryEntryVersion:
    return session.exec(
        select(DiaryEntryVersion).where(
            DiaryEntryVersion.entry_id == entry.id,
            DiaryEntryVersion.version == entry.current_version,
        )
    ).one()


def versions_of(session: Session, entry: DiaryEntry) -> list[DiaryEntryVersion]:
    return list(
        session.exec(
            select(DiaryEntryVersion)
            .where(DiaryEntryVersion.entry_id == entry.id)
            .order_by(col(DiaryEntryVersion.version))
        ).all()
    )


def history(
    session: Session, *, participant_id: uuid.UUID, client_entry_id: uuid.UUID
) -> list[EntryVersionOut]:
    """Every version of one of the participant's entries, oldest first (404 if not theirs)."""
    entry = get_entry(session, participant_id=participant_id, client_entry_id=client_entry_id)
    return [version_out(v) for v in versions_of(session, entry)]


@cache
def _offset_text(minutes: int) -> str:
    sign = "+" if minutes >= 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{mins:02d}"


@cache
def _offset_zone(minutes: int) -> timezone:
    """The fixed zone of a UTC offset (a few dozen exist; each entry's response needs one)."""
    return timezone(timedelta(minutes=minutes))


def _score_out(score: dict[str, Any] | None) -> MgAdlScoreOut | None:
    return MgAdlScoreOut.model_validate(score) if score else None


_SCORE_FIELDS = tuple(MgAdlScoreOut.model_fields)


_ENTRY_FIELDS = (
    "client_entry_id",
    "kind",
    "recorded_at",
    "recorded_offset_minutes",
    "time_zone",
    "diary_date",
    "received_at",
    "flags",
    "participant_id",
)


def entry_values(entry: DiaryEntry, version: DiaryEntryVersion) -> dict[str, Any]:
    """``to_out(entry, version)``'s fields as plain Python values, for the capture responses
    (``app.core.responses.ValuesResponse`` writes them as the model would): the fields are
    already of their types (stored or just validated), so no model is built (a sync batch
    answers with 500). tests/diary/test_sync_api.py holds the JSON equal to ``to_out``'s."""
    e = fields_of(entry, _ENTRY_FIELDS)
    v = fields_of(version, ("version", "data", "score"))
    minutes = e["recorded_offset_minutes"]
    score = v["score"]
    return {
        "id": e["client_entry_id"],
        "kind": e["kind"],
        "recorded_at": e["recorded_at"].astimezone(_offset_zone(minutes)),
        "time_zone": e["time_zone"],
        "utc_offset": _offset_text(minutes),
        "diary_date": e["diary_date"],
        "received_at": e["received_at"],
        "version": v["version"],
        "flags": list(e["flags"]),
        "data": v["data"],
        "score": {k: score[k] for k in _SCORE_FIELDS} if score else None,
        "participant_id": e["participant_id"],
    }


def to_out(entry: DiaryEntry, version: DiaryEntryVersion) -> EntryOut:
    return EntryOut.model_validate(entry_values(entry, version))


def version_out(version: DiaryEntryVersion) -> EntryVersionOut:
    return EntryVersionOut(
        version=version.version,
        data=version.data,
        score=_score_out(version.score),
        reason=version.reason,
        created_at=version.created_at,
        actor_type=version.actor_type,
        actor_role=version.actor_role,
    )


def with_current_versions(session: Session, entries: Sequence[DiaryEntry]) -> list[EntryOut]:
    """Entries with their newest versions, read in one query."""
    if not entries:
        return []
    versions = {
        v.entry_id: v
        for v in session.exec(
            select(DiaryEntryVersion).where(
                col(DiaryEntryVersion.entry_id).in_([e.id for e in entries]),
                sa.tuple_(DiaryEntryVersion.entry_id, DiaryEntryVersion.version).in_(
                    [(e.id, e.current_version) for e in entries]
                ),
            )
        )
    }
    return [to_out(e, versions[e.id]) for e in entries]


def list_entries(
    session: Session,
    *,
    participant_id: uuid.UUID,
    kind: str | None,
    date_from: date | None,
    date_to: date | None,
    params: PageParams,
) -> tuple[list[EntryOut], str | None]:
    stmt = select(DiaryEntry).where(DiaryEntry.participant_id == participant_id)
    if kind:
        stmt = stmt.where(DiaryEntry.kind == kind)
    if date_from:
        stmt = stmt.where(DiaryEntry.diary_date >= date_from)
    if date_to:
        stmt = stmt.where(DiaryEntry.diary_date <= date_to)
    rows, cursor = paginate(
        session,
        stmt,
        order_by=[DiaryEntry.diary_date, DiaryEntry.recorded_at, DiaryEntry.id],  # type: ignore[list-item]
        params=params,
        scope=f"diary:{participant_id}:{kind}:{date_from}:{date_to}",
    )
    return with_current_versions(session, rows), cursor


@dataclass(frozen=True)
class ChangesPage:
    items: list[tuple[EntryOut, ChangeKind]]
    next_cursor: str | None
    resume_cursor: str | None


def changes(session: Session, *, participant_id: uuid.UUID, params: PageParams) -> ChangesPage:
    """Every new version of the participant's entries, in commit order.

    ``next_cursor`` is null on the last page (like every list); ``resume_cursor`` is always the
    place to continue from later, so a device that has read everything only gets new changes.

    On PostgreSQL only versions written by transactions older than every transaction still
    running are handed out, ordered by (transaction id, sequence): a version committed late by a
    slow transaction can never land behind a cursor already given out.
    """
    stmt = select(DiaryEntryVersion).where(DiaryEntryVersion.participant_id == participant_id)
    if session.get_bind().dialect.name == "postgresql":
        horizon = sa.cast(
            sa.cast(sa.func.pg_snapshot_xmin(sa.func.pg_current_snapshot()), sa.Text), sa.BigInteger
        )
        own = sa.cast(sa.cast(sa.func.pg_current_xact_id_if_assigned(), sa.Text), sa.BigInteger)
        stmt = stmt.where(
            sa.or_(col(DiaryEntryVersion.txid) < horizon, col(DiaryEntryVersion.txid) == own)
        )
    order_by: list[Any] = [DiaryEntryVersion.txid, DiaryEntryVersion.seq]
    scope = f"changes:{participant_id}"
    rows, cursor = paginate(
        session,
        stmt,
        order_by=order_by,
        params=params,
        scope=scope,
    )
    entries = {
        e.id: e
        for e in session.exec(
            select(DiaryEntry).where(col(DiaryEntry.id).in_({v.entry_id for v in rows}))
        )
    }
    out: list[tuple[EntryOut, ChangeKind]] = [
        (to_out(entries[v.entry_id], v), "created" if v.version == 1 else "corrected") for v in rows
    ]
    resume = cursor_after(scope, rows[-1], order_by) if rows else params.cursor
    return ChangesPage(items=out, next_cursor=cursor, resume_cursor=resume)


def _adherence(
    participant: Participant, period: int, dates: Sequence[date], today: date | None
) -> Adherence:
    zone = ZoneInfo(participant.time_zone)
    end = today or utcnow().astimezone(zone).date()
    if participant.withdrawn_at is not None:
        end = min(end, participant.withdrawn_at.astimezone(zone).date())
    start = participant.enrolled_date
    if end < start:
        return Adherence(
            participant_id=participant.id,
            period_days=period,
            periods_expected=0,
            periods_with_entry=0,
            adherence=None,
            start_date=start,
            end_date=end,
        )
    expected = (end - start).days // period + 1
    if period == 1:
        # Daily cadence: the distinct dates in [start, end] (a year of them per participant).
        ordered = sorted(set(dates))
        with_entry = bisect_right(ordered, end) - bisect_left(ordered, start)
    else:
        with_entry = len({(d - start).days // period for d in dates if start <= d <= end})
    return Adherence(
        participant_id=participant.id,
        period_days=period,
        periods_expected=expected,
        periods_with_entry=with_entry,
        adherence=round(with_entry / expected, 4),
        start_date=start,
        end_date=end,
    )


def _diary_dates(
    session: Session, participant_ids: list[uuid.UUID]
) -> dict[uuid.UUID, Sequence[date]]:
    """The dates with at least one diary entry, per participant (any order).

    On PostgreSQL one row per participant with an array of dates: a page of participants with a
    year of daily entries each is tens of thousands of (participant, date) rows otherwise, most
    of a participant-list request (docs/performance.md, issue 4).
    """
    pid, day = col(DiaryEntry.participant_id), col(DiaryEntry.diary_date)
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        arrays = (
            sa.select(pid, sa.func.array_agg(sa.distinct(day)))
            .where(pid.in_(participant_ids))
            .group_by(pid)
        )
        return dict(connection.execute(arrays).all())
    grouped: dict[uuid.UUID, list[date]] = {}
    for p, d in connection.execute(sa.select(pid, day).distinct().where(pid.in_(participant_ids))):
        grouped.setdefault(p, []).append(d)
    return dict(grouped)


def adherence(
    session: Session, *, participant: Participant, today: date | None = None
) -> Adherence:
    """Diary periods (the protocol's cadence) with at least one entry / periods elapsed.

    Periods are counted from the enrolment date to today (participant-local), the current
    period included; a withdrawn participant's periods end at withdrawal.
    """
    return adherence_many(session, [participant], today=today)[participant.id]


def adherence_many(
    session: Session, participants: Sequence[Participant], today: date | None = None
) -> dict[uuid.UUID, Adherence]:
    """Adherence of several participants with one query for their diary dates."""
    dates: dict[uuid.UUID, Sequence[date]] = {p.id: [] for p in participants}
    if dates:
        dates.update(_diary_dates(session, list(dates)))
    result = {}
    for p in participants:
        protocol = studies_service.definition_for_version(session, p.protocol_version_id)
        result[p.id] = _adherence(p, protocol.diary.cadence_days, dates[p.id], today)
    return result


@dataclass(frozen=True)
class DailySteps:
    date: date
    count: int
    source: str
    sources: dict[str, int]


def daily_steps(
    session: Session, *, participant: Participant, date_from: date, date_to: date
) -> list[DailySteps]:
    """One value per day: per source the newest total received (re-sent totals supersede older
    ones); then the first of the protocol's preferred sources present, else the largest total."""
    preferred = studies_service.definition_for_version(
        session, participant.protocol_version_id
    ).diary.steps_preferred_sources
    rows = session.exec(
        select(col(StepCount.step_date), col(StepCount.source), col(StepCount.count))
        .join(DiaryEntryVersion, col(DiaryEntryVersion.id) == StepCount.version_id)
        .join(DiaryEntry, is_current_version())
        .where(
            StepCount.participant_id == participant.id,
            StepCount.step_date >= date_from,
            StepCount.step_date <= date_to,
        )
        .order_by(col(StepCount.step_date), col(DiaryEntry.received_at), col(DiaryEntryVersion.seq))
    ).all()
    by_day: dict[date, dict[str, int]] = {}
    for day, source, count in rows:
        by_day.setdefault(day, {})[source] = count  # later rows supersede earlier ones
    result = []
    for day in sorted(by_day):
        sources = by_day[day]
        chosen = next((s for s in preferred if s in sources), None)
        if chosen is None:
            chosen = max(sources, key=lambda s: (sources[s], s))
        result.append(
            DailySteps(date=day, count=sources[chosen], source=chosen, sources=dict(sources))
        )
    return result
