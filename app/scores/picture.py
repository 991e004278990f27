"""The trend picture of one participant: the TREND document plus the marks the picture shows
(study-drug administrations and clinic visits), rendered by ``app.scores.svg``."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from sqlmodel import Session

from app.medications import administrations as administrations_service
from app.participants.models import Participant
from app.scores import svg, trend_service
from app.scores.trend_service import TrendInstrument
from app.visits import service as visits_service

#: Stored visit statuses drawn, and how (cancelled visits are not drawn).
_VISIT_STATUS: dict[str, svg.VisitStatus] = {
    "completed": "completed",
    "scheduled": "scheduled",
    "missed": "missed",
}


def marks_for(session: Session, participant: Participant) -> svg.Marks:
    """The participant's study-drug administrations (current versions; first and last local
    day) and clinic visits (completed: the day done; scheduled or missed: the target day)."""
    zone = ZoneInfo(participant.time_zone)
    dosing = []
    for a in administrations_service.current(session, participant_id=participant.id):
        end = a.start_date
        if a.ended_at is not None:
            end = max(a.ended_at.astimezone(zone).date(), a.start_date)
        dosing.append(svg.Dosing(start=a.start_date, end=end, cycle=a.cycle))
    visits = []
    for v in visits_service.visits_of(session, participant_id=participant.id):
        status = _VISIT_STATUS.get(v.status)
        if v.kind != "clinic" or status is None:
            continue
        when = v.completed_on if status == "completed" and v.completed_on else v.target_date
        visits.append(svg.VisitMark(date=when, day=v.day, status=status))
    return svg.Marks(dosing=tuple(dosing), visits=tuple(visits))


def participant_trend_svg(
    session: Session, *, participant: Participant, instrument: TrendInstrument
) -> str:
    document = trend_service.participant_trend(
        session, participant=participant, instrument=instrument
    )
    return svg.render_trend(document, marks_for(session, participant))
