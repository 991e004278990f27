"""Demo diary and clinic data for `mgdiary demo`, so a new user sees trends with real shapes.

Written once, when a demo participant is first created, through the same services the API uses
(validated, scored and audited, attributed to the system actor ``mgdiary-demo``).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session

from app.audit.service import Actor
from app.diary import service as diary_service
from app.medications import administrations
from app.medications.schemas import AdministrationCreate
from app.participants.models import Participant
from app.scores import clinic
from app.scores.schemas import AssessmentCreate

MG_ADL_KEYS = (
    "talking",
    "chewing",
    "swallowing",
    "breathing",
    "brushing_teeth_or_combing_hair",
    "arising_from_chair",
    "double_vision",
    "eyelid_droop",
)
QMG_KEYS = (
    "diplopia",
    "ptosis",
    "facial_muscles",
    "swallowing",
    "speech",
    "right_arm",
    "left_arm",
    "vital_capacity",
    "right_grip",
    "left_grip",
    "head_lift",
    "right_leg",
    "left_leg",
)


def _items(keys: tuple[str, ...], total: int) -> dict[str, int]:
    items, left = {}, total
    for key in keys:
        items[key] = min(3, left)
        left -= items[key]
    return items


def _at(day: date, hour: int, zone: str) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=ZoneInfo(zone))


def load(session: Session, *, participant: Participant, actor: Actor, today: date) -> None:
    """A blinatumomab-like course: infusions on day 0 and 12, weekly MG-ADL falling from 9,
    daily steps rising, QMG at day 0 and 28."""
    day0 = participant.day0_date
    if day0 is None:
        return
    zone = participant.time_zone
    for cycle, offset in ((1, 0), (2, 12)):
        if day0 + timedelta(days=offset) <= today:
            administrations.record(
                session,
                participant=participant,
                actor=actor,
                body=AdministrationCreate(
                    product="blinatumomab",
                    dose=9 if cycle == 1 else 28,
                    unit="mcg/day",
                    cycle=cycle,
                    started_at=_at(day0 + timedelta(days=offset), 9, zone),
                    ended_at=_at(day0 + timedelta(days=offset + 4), 9, zone),
                ),
            )
    participant_actor = Actor(type="participant", id=str(participant.id), role="participant")
    ingestor = diary_service.Ingestor(
        session=session,
        participant=participant,
        protocol=diary_service.protocol_of(session, participant),
        actor=participant_actor,
    )
    weekly = [9, 8, 7, 6, 4, 3, 3, 2, 1]
    for week, total in enumerate(weekly):
        day = day0 - timedelta(days=2) + timedelta(days=7 * week)
        if day > today or day < participant.enrolled_date:
            continue
        ingestor.ingest(
            {
                "id": str(uuid.uuid4()),
                "kind": "mg_adl",
                "recorded_at": _at(day, 20, zone).isoformat(),
                "time_zone": zone,
                "data": _items(MG_ADL_KEYS, total),
            }
        )
    day = participant.enrolled_date
    while day <= today:
        count = 2500 + max(0, (day - day0).days) * 60
        ingestor.ingest(
            {
                "id": str(uuid.uuid4()),
                "kind": "steps",
                "recorded_at": _at(day, 22, zone).isoformat(),
                "time_zone": zone,
                "data": {"date": day.isoformat(), "count": count, "source": "demo_watch"},
            }
        )
        day += timedelta(days=1)
    ingestor.ingest(
        {
            "id": str(uuid.uuid4()),
            "kind": "vitals",
            "recorded_at": _at(day0 + timedelta(days=2), 18, zone).isoformat(),
            "time_zone": zone,
            "data": {"temperature_c": 38.3, "heart_rate_bpm": 104},
        }
    )
    ingestor.write()
    for offset, total in ((0, 18), (28, 12)):
        when = day0 + timedelta(days=offset)
        if when <= today:
            clinic.record_assessment(
                session,
                participant=participant,
                instrument="qmg",
                actor=actor,
                body=AssessmentCreate(
                    instrument="qmg", assessed_at=_at(when, 10, zone), items=_items(QMG_KEYS, total)
                ),
            )
