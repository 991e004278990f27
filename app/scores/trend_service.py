"""Participant trends: read each instrument's series in SQL, then apply the pure trend rules."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, col, select

from app.core.models import utcnow
from app.diary.models import DiaryEntry, DiaryEntryVersion, MgAdlResponse, is_current_version
from app.diary.queries import daily_steps
from app.medications import service as medications_service
from app.participants.models import Participant
from app.scores import trends
from app.scores.models import ClinicAssessment, ClinicAssessmentVersion
from app.studies import service as studies_service
from app.studies.protocol import ProtocolDefinition

TrendInstrument = Literal[
    "mg_adl", "qmg", "mgc", "mg_qol15r", "mg_qol15", "steps", "corticosteroid"
]
#: How far back the series reaches before day 0 (the screening window and more).
HISTORY_DAYS = 3650


#: Built once (building a statement costs about what running this one does); plain Core rows.
_DIARY_MG_ADL = (
    select(col(DiaryEntry.diary_date), col(MgAdlResponse.total))
    .join(DiaryEntryVersion, is_current_version())
    .join(MgAdlResponse, col(MgAdlResponse.version_id) == DiaryEntryVersion.id)
    .where(
        DiaryEntry.participant_id == sa.bindparam("participant_id"),
        DiaryEntry.kind == "mg_adl",
    )
    .order_by(col(DiaryEntry.diary_date), col(DiaryEntry.recorded_at))
)


def _diary_mg_adl(session: Session, participant: Participant) -> list[trends.Point]:
    rows = session.connection().execute(_DIARY_MG_ADL, {"participant_id": participant.id})
    point = trends.shared_point
    return [point(d, total, "diary") for d, total in rows]


def _clinic(session: Session, participant: Participant, instrument: str) -> list[trends.Point]:
    rows = session.exec(
        select(col(ClinicAssessmentVersion.assessed_date), col(ClinicAssessmentVersion.total))
        .join(ClinicAssessment, col(ClinicAssessment.id) == ClinicAssessmentVersion.assessment_id)
        .where(
            ClinicAssessment.participant_id == participant.id,
            ClinicAssessment.instrument == instrument,
            col(ClinicAssessmentVersion.version) == col(ClinicAssessment.current_version),
        )
        .order_by(col(ClinicAssessmentVersion.assessed_at))
    ).all()
    return [trends.Point(date=d, value=float(total), source="clinic") for d, total in rows]


def _today(participant: Participant) -> dt.date:
    return utcnow().astimezone(ZoneInfo(participant.time_zone)).date()


def participant_trend(
    session: Session, *, participant: Participant, instrument: TrendInstrument
) -> dict[str, Any]:
    """The TREND document (api-contract.md) for one participant and instrument."""
    protocol = studies_service.definition_for_version(session, participant.protocol_version_id)
    day0 = participant.day0_date
    settings = trends.settings_for(instrument, protocol.efficacy, protocol.baseline)
    if instrument == "steps":
        return _steps_trend(session, participant, protocol)
    if instrument == "corticosteroid":
        start = participant.enrolled_date - dt.timedelta(days=protocol.baseline.lookback_days)
        doses = medications_service.corticosteroid_doses(
            session,
            participant_id=participant.id,
            date_from=start,
            date_to=max(_today(participant), start),
        )
        points = [
            trends.Point(date=d.date, value=d.prednisone_equivalent_mg, source="medication")
            for d in doses.days
        ]
        result = trends.compute_trend(instrument, points, day0, settings, rolling_mean_days=None)
        return trends.to_contract_dict(result)
    points = _clinic(session, participant, instrument)
    if instrument == "mg_adl":
        points = _diary_mg_adl(session, participant) + points
    result = trends.compute_trend(instrument, points, day0, settings)
    document = trends.to_contract_dict(result)
    document["improvement_delta"] = settings.improvement_delta
    return document


def _steps_trend(
    session: Session, participant: Participant, protocol: ProtocolDefinition
) -> dict[str, Any]:
    start = participant.enrolled_date - dt.timedelta(days=protocol.baseline.lookback_days)
    end = _today(participant)
    daily = (
        daily_steps(session, participant=participant, date_from=start, date_to=max(end, start))
        if end >= start
        else []
    )
    weekly = trends.weekly_steps(
        [(d.date, d.count) for d in daily],
        participant.day0_date,
        lookback_days=protocol.baseline.lookback_days,
    )
    day0 = participant.day0_date
    return {
        "instrument": "steps",
        "day0_date": day0.isoformat() if day0 else None,
        "baseline_value": weekly.baseline_mean,
        "baseline_date": (day0 - dt.timedelta(days=1)).isoformat() if day0 else None,
        "baseline_days": weekly.baseline_days,
        "points": [
            {
                "date": w.end_date.isoformat(),
                "value": w.mean,
                "change_from_baseline": w.change_from_baseline,
                "percent_change": w.percent_change,
                "source": "wearable",
                "week": w.week,
                "days": w.days,
            }
            for w in weekly.weeks
        ],
        "first_improvement_date": None,
        "sustained_response_start_date": None,
        "first_mse_date": None,
        "worsening_dates": [],
    }
