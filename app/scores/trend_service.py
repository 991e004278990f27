"""Participant trends: read each instrument's series in SQL, then apply the pure trend rules."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from app.core.models import utcnow
from app.diary.models import DiaryEntry, DiaryEntryVersion, MgAdlResponse
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


def _diary_mg_adl(session: Session, participant: Participant) -> list[trends.Point]:
    rows = session.exec(
        select(col(DiaryEntry.diary_date), col(MgAdlResponse.total))
        .join(DiaryEntryVersion, col(DiaryEntryVersion.entry_id) == DiaryEntry.id)
        .join(MgAdlResponse, col(MgAdlResponse.version_id) == DiaryEntryVersion.id)
        .where(
            DiaryEntry.participant_id == participant.id,
            DiaryEntry.kind == "mg_adl",
            col(DiaryEntryVersion.version) == col(DiaryEntry.current_version),
        )
        .order_by(col(DiaryEntry.diary_date), col(DiaryEntry.recorded_at))
    ).all()
    return [trends.Point(date=d, value=float(total), source="diary") for d, total in rows]


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


# --- picture ------------------------------------------------------------------------------

_W, _H, _PAD = 640, 320, 48


def trend_svg(document: dict[str, Any]) -> str:
    """A small, dependency-free SVG: the series, the baseline, the improvement band and day 0."""
    points = [p for p in document["points"] if p["value"] is not None]
    title = f"{document['instrument']} trend"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
        f'viewBox="0 0 {_W} {_H}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<rect x="0" y="0" width="{_W}" height="{_H}" fill="white"/>',
    ]
    if not points:
        parts.append(
            f'<text x="{_W / 2}" y="{_H / 2}" text-anchor="middle" '
            'font-family="sans-serif" font-size="14">No data yet</text></svg>'
        )
        return "".join(parts)
    dates = [dt.date.fromisoformat(p["date"]) for p in points]
    values = [float(p["value"]) for p in points]
    raw_baseline, raw_delta = document.get("baseline_value"), document.get("improvement_delta")
    baseline = float(raw_baseline) if raw_baseline is not None else None
    delta = float(raw_delta) if raw_delta else None
    lows = values + ([baseline - delta] if baseline is not None and delta else [])
    highs = values + ([baseline] if baseline is not None else [])
    lo, hi = min(0.0, min(lows)), max(highs) or 1.0
    first, last = min(dates), max(dates)
    span = max((last - first).days, 1)

    def x(d: dt.date) -> float:
        return _PAD + (d - first).days / span * (_W - 2 * _PAD)

    def y(v: float) -> float:
        return _H - _PAD - (v - lo) / ((hi - lo) or 1.0) * (_H - 2 * _PAD)

    if baseline is not None:
        if delta:
            top, bottom = y(baseline - delta), y(lo)
            parts.append(
                f'<rect class="improvement-band" x="{_PAD}" y="{top:.1f}" '
                f'width="{_W - 2 * _PAD}" height="{max(bottom - top, 0):.1f}" '
                'fill="#e6f4ea"/>'
            )
        parts.append(
            f'<line class="baseline" x1="{_PAD}" x2="{_W - _PAD}" y1="{y(baseline):.1f}" '
            f'y2="{y(baseline):.1f}" stroke="#888" stroke-dasharray="4 3"/>'
        )
    day0 = document.get("day0_date")
    if day0 and first <= dt.date.fromisoformat(day0) <= last:
        x0 = x(dt.date.fromisoformat(day0))
        parts.append(
            f'<line class="day0" x1="{x0:.1f}" x2="{x0:.1f}" y1="{_PAD}" '
            f'y2="{_H - _PAD}" stroke="#c5221f"/>'
        )
    path = " ".join(f"{x(d):.1f},{y(v):.1f}" for d, v in zip(dates, values, strict=True))
    parts.append(
        f'<polyline class="series" points="{path}" fill="none" stroke="#1a73e8" stroke-width="2"/>'
    )
    for p, d, v in zip(points, dates, values, strict=True):
        parts.append(
            f'<circle class="point" cx="{x(d):.1f}" cy="{y(v):.1f}" r="3" '
            f'fill="#1a73e8" data-date="{d.isoformat()}" data-value="{v:g}" '
            f'data-source="{escape(p["source"])}"/>'
        )
    parts.append(
        f'<text x="{_PAD}" y="{_PAD - 16}" font-family="sans-serif" font-size="14">'
        f"{escape(title)}</text>"
    )
    parts.append(
        f'<text x="{_PAD}" y="{_H - 16}" font-family="sans-serif" font-size="11">'
        f"{first.isoformat()}</text>"
    )
    parts.append(
        f'<text x="{_W - _PAD}" y="{_H - 16}" text-anchor="end" '
        f'font-family="sans-serif" font-size="11">{last.isoformat()}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)
