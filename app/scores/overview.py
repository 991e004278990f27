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
    session: Session,
    participant_ids: list[uuid.UUID],
    windows: dict[uuid.UUID, Window],
    last_only: set[uuid.UUID],
) -> dict[uuid.UUID, list[trends.Point]]:
    """Per participant, the MG-ADL values (diary, then clinic, each in series order) that the
    row's figures depend on: those dated inside their baseline window, or for the participants
    in ``last_only`` (baseline rule ``last_on_or_before_day0``) only those on the window's last
    diary date; and those on the newest date of each source.

    A subsequence of the whole series (``app.scores.outcomes.participant_series``) that holds
    the series' last value and every value the baseline rule looks at, so ``trends.baseline``
    and the last of ``trends.sort_points`` give what they give on the whole series. The diary's
    "values on the last date (in the window)" are found per participant with an index lookup
    of that date (a correlated ``max`` over the ``(participant, kind, date)`` index) and then
    the entries on it: a few rows each instead of the window's range (docs/performance.md).
    The newest date's values are left out when that date is inside the window: they came with
    it.
    """
    points: dict[uuid.UUID, list[trends.Point]] = defaultdict(list)
    if not participant_ids:
        return points
    connection = session.connection()
    dialect = connection.dialect.name
    day0 = col(Participant.day0_date)
    diary_pid, diary_date = col(DiaryEntry.participant_id), col(DiaryEntry.diary_date)
    diary_scope = sa.and_(diary_pid.in_(participant_ids), col(DiaryEntry.kind) == "mg_adl")
    diary_values = (
        sa.select(diary_pid, diary_date, col(MgAdlResponse.total))
        .join(DiaryEntryVersion, is_current_version())
        .join(MgAdlResponse, col(MgAdlResponse.version_id) == DiaryEntryVersion.id)
        .join(Participant, col(Participant.id) == diary_pid)
        .where(diary_scope)
        .order_by(diary_date, col(DiaryEntry.recorded_at))
    )
    inner = sa.orm.aliased(DiaryEntry)

    def last_diary_date(*conditions: Any) -> Any:
        # Every entry's current version has its scored row, so the date needs only the
        # entries (their (participant, kind, date) index).
        return (
            sa.select(sa.func.max(inner.diary_date))
            .where(
                col(inner.participant_id) == col(Participant.id),
                col(inner.kind) == "mg_adl",
                *conditions,
            )
            .correlate(Participant)
            .scalar_subquery()
        )

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

    clinic_values = clinic(
        sa.select(clinic_pid, assessed_date, col(ClinicAssessmentVersion.total))
    ).order_by(col(ClinicAssessmentVersion.assessed_at))
    # Baseline windows: [day 0 - lookback, day 0], the lookback per protocol version; as a
    # join to the participant, one query per distinct (lookback, rule).
    groups: dict[tuple[int, bool], list[uuid.UUID]] = defaultdict(list)
    for window_pid, (window_start, window_end) in windows.items():
        groups[((window_end - window_start).days, window_pid in last_only)].append(window_pid)
    in_window_by_source: dict[trends.Source, list[Any]] = {"diary": [], "clinic": []}
    for (lookback, last), ids in groups.items():
        start = _days_before(dialect, day0, lookback)
        diary = diary_values.where(col(Participant.id).in_(ids))
        if last:
            diary = diary.where(
                diary_date
                == last_diary_date(col(inner.diary_date) >= start, col(inner.diary_date) <= day0)
            )
        else:
            diary = diary.where(diary_date >= start, diary_date <= day0)
        in_window_by_source["diary"].append(diary)
        in_window_by_source["clinic"].append(
            clinic_values.join(Participant, col(Participant.id) == clinic_pid).where(
                col(Participant.id).in_(ids), assessed_date >= start, assessed_date <= day0
            )
        )
    newest_clinic = clinic(sa.select(clinic_pid, sa.func.max(assessed_date))).group_by(clinic_pid)
    on_newest: dict[trends.Source, Any] = {
        "diary": diary_values.where(
            col(Participant.id).in_(participant_ids), diary_date == last_diary_date()
        ),
        "clinic": clinic_values.where(
            sa.tuple_(clinic_pid, assessed_date).in_(newest_clinic.correlate(None))
        ),
    }
    for source in ("diary", "clinic"):
        found: dict[uuid.UUID, list[trends.Point]] = defaultdict(list)
        for in_window in in_window_by_source[source]:
            for p, d, t in connection.execute(in_window):
                found[p].append(trends.shared_point(d, t, source))
        for p, d, t in connection.execute(on_newest[source]):
            start_date, end_date = windows.get(p, (None, None))
            if start_date is None or end_date is None or not start_date <= d <= end_date:
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
    last_only = {
        p.id for p in participants if settings[p.id].baseline_kind == "last_on_or_before_day0"
    }
    series = _row_points(session, [p.id for p in participants], windows, last_only)
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
