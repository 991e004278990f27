"""The investigator's participant list: each row with the latest MG-ADL, its change from
baseline and diary adherence (api-contract.md "Participant list rows").

Everything for a page is read with a fixed number of queries (for all the page's participants at
once), never one query per row. Of each participant's MG-ADL series only what a row shows is
read: the values of the newest date and those inside the baseline window, not the whole series
(a year of daily entries is 365 values per row; docs/performance.md).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from pydantic import Field
from sqlmodel import Session, col

from app.diary import queries as diary_queries
from app.diary.models import DiaryEntry, DiaryEntryVersion, MgAdlResponse, is_current_version
from app.participants import service as participants_service
from app.participants.models import Participant
from app.participants.schemas import ParticipantPublic
from app.scores import trends
from app.scores.models import ClinicAssessment, ClinicAssessmentVersion
from app.studies import service as studies_service


class ParticipantRow(ParticipantPublic):
    latest_mg_adl: int | None = Field(description="The newest MG-ADL total (diary or clinic).")
    latest_mg_adl_date: dt.date | None
    mg_adl_baseline: int | None
    mg_adl_change_from_baseline: int | None = Field(
        description="Latest minus baseline (negative is better); null without a baseline."
    )
    diary_adherence: float | None = Field(description="0-1, by the protocol's diary cadence.")
    open_signals: int = Field(
        default=0, description="Active safety signals not yet dismissed or converted."
    )


def _int(value: float | None) -> int | None:
    return None if value is None else round(value)


Window = tuple[dt.date, dt.date]


def _days_before(dialect: str, day: Any, days: int) -> Any:
    """``day`` minus ``days`` days, in SQL (SQLite keeps dates as ISO text)."""
    if dialect == "sqlite":
        return sa.func.date(day, f"-{days} days")
    return day - days


def _row_points(
    session: Session, participant_ids: list[uuid.UUID], windows: dict[uuid.UUID, Window]
) -> dict[uuid.UUID, list[trends.Point]]:
    """Per participant, the MG-ADL values (diary, then clinic, each in series order) dated
    inside their baseline window or on the newest date of that source.

    A subsequence of the whole series (``app.scores.outcomes.participant_series``) that holds
    the series' last value and every value the baseline rule looks at, so ``trends.baseline``
    and the last of ``trends.sort_points`` give what they give on the whole series. Per source
    two index-driven queries: the window's values, then the newest date's values (left out
    when that date is inside the window: they came with it).
    """
    points: dict[uuid.UUID, list[trends.Point]] = defaultdict(list)
    if not participant_ids:
        return points
    connection = session.connection()
    diary_pid, diary_date = col(DiaryEntry.participant_id), col(DiaryEntry.diary_date)
    diary_scope = sa.and_(diary_pid.in_(participant_ids), col(DiaryEntry.kind) == "mg_adl")
    clinic_pid = col(ClinicAssessment.participant_id)
    assessed_date = col(ClinicAssessmentVersion.assessed_date)

    def clinic(statement: Any) -> Any:
        return statement.join(
            ClinicAssessmentVersion,
            col(ClinicAssessmentVersion.assessment_id) == ClinicAssessment.id,
        ).where(
            clinic_pid.in_(participant_ids),
            ClinicAssessment.instrument == "mg_adl",
            col(ClinicAssessmentVersion.version) == col(ClinicAssessment.current_version),
        )

    sources: tuple[tuple[trends.Source, Any, Any, Any, Any], ...] = (
        (
            "diary",
            diary_pid,
            diary_date,
            # Every entry's current version has its scored row, so the newest date needs only
            # the entries (their (participant, kind, date) index).
            sa.select(diary_pid, sa.func.max(diary_date)).where(diary_scope),
            sa.select(diary_pid, diary_date, col(MgAdlResponse.total))
            .join(DiaryEntryVersion, is_current_version())
            .join(MgAdlResponse, col(MgAdlResponse.version_id) == DiaryEntryVersion.id)
            .where(diary_scope)
            .order_by(diary_date, col(DiaryEntry.recorded_at)),
        ),
        (
            "clinic",
            clinic_pid,
            assessed_date,
            clinic(sa.select(clinic_pid, sa.func.max(assessed_date))),
            clinic(
                sa.select(clinic_pid, assessed_date, col(ClinicAssessmentVersion.total))
            ).order_by(col(ClinicAssessmentVersion.assessed_at)),
        ),
    )
    # Baseline windows: [day 0 - lookback, day 0], the lookback per protocol version; as a
    # join to the participant (an index range scan each), one query per distinct lookback.
    lookbacks: dict[int, list[uuid.UUID]] = defaultdict(list)
    for window_pid, (window_start, window_end) in windows.items():
        lookbacks[(window_end - window_start).days].append(window_pid)
    day0 = col(Participant.day0_date)
    dialect = connection.dialect.name
    for source, pid, day, newest, values in sources:
        found: dict[uuid.UUID, list[trends.Point]] = defaultdict(list)
        for lookback, ids in lookbacks.items():
            in_window = values.join(Participant, col(Participant.id) == pid).where(
                col(Participant.id).in_(ids),
                day >= _days_before(dialect, day0, lookback),
                day <= day0,
            )
            for p, d, t in connection.execute(in_window):
                found[p].append(trends.shared_point(d, t, source))
        on_newest = values.where(sa.tuple_(pid, day).in_(newest.group_by(pid).correlate(None)))
        for p, d, t in connection.execute(on_newest):
            start, end = windows.get(p, (None, None))
            if start is None or end is None or not start <= d <= end:
                found[p].append(trends.shared_point(d, t, source))
        for p, found_points in found.items():
            points[p].extend(found_points)
    return points


def participant_rows(
    session: Session, participants: Sequence[Participant], version_numbers: dict[uuid.UUID, int]
) -> list[ParticipantRow]:
    settings = {
        p.id: trends.settings_for(
            "mg_adl",
            (
                protocol := studies_service.definition_for_version(session, p.protocol_version_id)
            ).efficacy,
            protocol.baseline,
        )
        for p in participants
    }
    windows = {
        p.id: (p.day0_date - dt.timedelta(days=settings[p.id].lookback_days), p.day0_date)
        for p in participants
        if p.day0_date is not None
    }
    series = _row_points(session, [p.id for p in participants], windows)
    adherence = diary_queries.adherence_many(session, participants)
    rows = []
    for p in participants:
        points = series.get(p.id, [])
        base_value, _ = trends.baseline(points, p.day0_date, settings[p.id])
        latest = trends.sort_points(points)[-1] if points else None
        change = (latest.value - base_value) if latest and base_value is not None else None
        public = participants_service.to_public(session, p, version_numbers)
        rows.append(
            ParticipantRow(
                **public.model_dump(),
                latest_mg_adl=_int(latest.value) if latest else None,
                latest_mg_adl_date=latest.date if latest else None,
                mg_adl_baseline=_int(base_value),
                mg_adl_change_from_baseline=_int(change),
                diary_adherence=adherence[p.id].adherence,
            )
        )
    return rows
