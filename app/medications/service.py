"""The participant's medication list, kept by participant and investigator, versioned, audited;
and the daily prednisone-equivalent corticosteroid dose derived from it."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from app.audit.service import Actor
from app.audit.versioning import VersionedKind
from app.core.errors import NotFound
from app.medications import formulary
from app.medications.models import MedicationLine, MedicationLineVersion
from app.medications.schemas import (
    FREQUENCIES,
    CorticosteroidDay,
    CorticosteroidDoses,
    MedicationFields,
    MedicationLineOut,
)
from app.participants.models import Participant

_FIELDS = (
    "medication_code",
    "medication_text",
    "dose",
    "unit",
    "route",
    "frequency",
    "start_date",
    "stop_date",
)


def _values(body: MedicationFields) -> dict[str, Any]:
    entry = formulary.lookup(body.medication)
    return {
        "medication_code": entry.code if entry else None,
        "medication_text": body.medication,
        "dose": body.dose,
        "unit": body.unit,
        "route": body.route,
        "frequency": body.frequency,
        "start_date": body.start_date,
        "stop_date": body.stop_date,
    }


LINES: VersionedKind[MedicationLine, MedicationLineVersion] = VersionedKind(
    head=MedicationLine,
    version=MedicationLineVersion,
    head_key="line_id",
    entity_type="medication_line",
    audited=_FIELDS,
    not_found="No such medication",
)


def _version(
    line: MedicationLine, body: MedicationFields, actor: Actor, *, version: int, reason: str | None
) -> MedicationLineVersion:
    return MedicationLineVersion(
        line_id=line.id,
        version=version,
        reason=reason,
        actor_type=actor.type,
        actor_id=actor.id,
        actor_role=actor.role,
        **_values(body),
    )


def add(
    session: Session,
    *,
    participant: Participant,
    body: MedicationFields,
    reason: str | None,
    actor: Actor,
) -> tuple[MedicationLine, MedicationLineVersion]:
    line = MedicationLine(participant_id=participant.id, study_id=participant.study_id)
    return LINES.create(
        session, head=line, first=_version(line, body, actor, version=1, reason=reason), actor=actor
    )


def change(
    session: Session, *, line: MedicationLine, body: MedicationFields, reason: str, actor: Actor
) -> MedicationLineVersion:
    return LINES.amend(
        session,
        head=line,
        new=_version(line, body, actor, version=0, reason=reason),
        actor=actor,
        reason=reason,
        action="change",
    )


def get_line(session: Session, *, participant_id: uuid.UUID, line_id: uuid.UUID) -> MedicationLine:
    line = LINES.get(session, line_id)
    if line.participant_id != participant_id:
        raise NotFound(LINES.not_found)
    return line


def history(
    session: Session, *, participant_id: uuid.UUID, line_id: uuid.UUID
) -> list[MedicationLineOut]:
    """Every version of one of the participant's medication lines, oldest first."""
    line = get_line(session, participant_id=participant_id, line_id=line_id)
    return [to_out(line, v) for v in LINES.history(session, line)]


def to_out(line: MedicationLine, version: MedicationLineVersion) -> MedicationLineOut:
    entry = formulary.FORMULARY.get(version.medication_code or "")
    return MedicationLineOut(
        id=line.id,
        participant_id=line.participant_id,
        version=version.version,
        medication=version.medication_text,
        medication_code=version.medication_code,
        dose=version.dose,
        unit=version.unit,
        route=version.route,
        frequency=version.frequency,
        start_date=version.start_date,
        stop_date=version.stop_date,
        is_corticosteroid=bool(entry and entry.is_corticosteroid),
        reason=version.reason,
        updated_at=version.created_at,
        updated_by_role=version.actor_role,
    )


def current_lines(
    session: Session, *, participant_id: uuid.UUID
) -> list[tuple[MedicationLine, MedicationLineVersion]]:
    return LINES.current_rows(
        session, participant_id=participant_id, order_by=[col(MedicationLineVersion.start_date)]
    )


CONVERSION_NOTE = (
    "Prednisone-equivalent mg = dose x doses per day x the drug's equivalence factor "
    "(standard conversions, to be verified per protocol; as-needed doses are not counted)."
)


def _daily_prednisone_mg(
    code: str | None, dose: float, unit: str, frequency: str
) -> tuple[bool, float | None]:
    """``(is a corticosteroid, daily prednisone-equivalent mg)`` of one medication line; the
    dose is ``None`` when it cannot be derived (as-needed or "other" frequency, unit not mg)."""
    entry = formulary.FORMULARY.get(code or "")
    if entry is None or not entry.is_corticosteroid:
        return False, None
    per_dose_day = FREQUENCIES.get(frequency)
    if per_dose_day is None or unit != "mg":
        return True, None
    return True, formulary.prednisone_equivalent_mg(entry.code, dose * per_dose_day)


def corticosteroid_doses(
    session: Session, *, participant_id: uuid.UUID, date_from: date, date_to: date
) -> CorticosteroidDoses:
    """Daily prednisone-equivalent dose from the current medication list, per local day."""
    per_day: dict[date, float] = defaultdict(float)
    lines_per_day: dict[date, list[uuid.UUID]] = defaultdict(list)
    not_derivable: list[uuid.UUID] = []
    for line, version in current_lines(session, participant_id=participant_id):
        steroid, daily = _daily_prednisone_mg(
            version.medication_code, version.dose, version.unit, version.frequency
        )
        if not steroid:
            continue
        if daily is None:
            not_derivable.append(line.id)
            continue
        start = max(version.start_date, date_from)
        stop = min(version.stop_date or date_to, date_to)
        day = start
        while day <= stop:
            per_day[day] += daily
            lines_per_day[day].append(line.id)
            day += timedelta(days=1)
    days = []
    day = date_from
    while day <= date_to:
        days.append(
            CorticosteroidDay(
                date=day, prednisone_equivalent_mg=round(per_day[day], 4), lines=lines_per_day[day]
            )
        )
        day += timedelta(days=1)
    return CorticosteroidDoses(days=days, not_derivable=not_derivable, conversion=CONVERSION_NOTE)


@dataclass(frozen=True, slots=True)
class CorticosteroidRegimen:
    """A participant's current corticosteroid lines as ``(start_date, stop_date or None, daily
    prednisone-equivalent mg)``, and how many lines had a dose that cannot be derived.

    The daily dose on a date is the sum over the lines covering it (stop date inclusive), the
    same figure ``corticosteroid_doses`` gives per day.
    """

    lines: tuple[tuple[date, date | None, float], ...] = ()
    not_derivable: int = 0


def corticosteroid_regimens(
    session: Session, *, participant_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, CorticosteroidRegimen]:
    """The corticosteroid regimens of many participants, read with one column query (no ORM
    object per row). Participants without a corticosteroid line are left out."""
    if not participant_ids:
        return {}
    codes = [e.code for e in formulary.FORMULARY.values() if e.is_corticosteroid]
    rows = session.execute(
        sa.select(
            col(MedicationLine.participant_id),
            col(MedicationLineVersion.medication_code),
            col(MedicationLineVersion.dose),
            col(MedicationLineVersion.unit),
            col(MedicationLineVersion.frequency),
            col(MedicationLineVersion.start_date),
            col(MedicationLineVersion.stop_date),
        )
        .join(MedicationLineVersion, col(MedicationLineVersion.line_id) == MedicationLine.id)
        .where(
            col(MedicationLine.participant_id).in_(list(participant_ids)),
            col(MedicationLineVersion.version) == col(MedicationLine.current_version),
            col(MedicationLineVersion.medication_code).in_(codes),
        )
        .order_by(col(MedicationLineVersion.start_date), col(MedicationLine.id))
    ).all()
    lines: dict[uuid.UUID, list[tuple[date, date | None, float]]] = defaultdict(list)
    not_derivable: dict[uuid.UUID, int] = defaultdict(int)
    for pid, code, dose, unit, frequency, start, stop in rows:
        steroid, daily = _daily_prednisone_mg(code, dose, unit, frequency)
        if not steroid:
            continue
        if daily is None:
            not_derivable[pid] += 1
        else:
            lines[pid].append((start, stop, daily))
    return {
        pid: CorticosteroidRegimen(tuple(lines.get(pid, ())), not_derivable.get(pid, 0))
        for pid in {*lines, *not_derivable}
    }
