"""Capturing, syncing, correcting and reading diary entries.

Rules (api-contract.md "Rules a client relies on", issue 3):
- an entry is identified by its client UUID, unique per participant forever; the same content
  again is a duplicate, different content under the same id is a conflict kept for review;
- ``recorded_at`` more than 24 h ahead of the server, or a local date before enrolment, makes the
  entry invalid; an entry received long after it was recorded is accepted and flagged ``late``;
- the local ``diary_date`` is the calendar day of ``recorded_at`` in the entry's own IANA zone;
- entries are corrected by new versions with a reason, never overwritten.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Literal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from pydantic import ValidationError
from sqlmodel import Session, col, select

from app.audit import service as audit
from app.audit.service import Actor
from app.core.errors import Conflict, InvalidInput, NotFound
from app.core.models import utcnow
from app.core.pagination import PageParams, paginate
from app.diary.models import (
    DiaryConflict,
    DiaryEntry,
    DiaryEntryVersion,
    MedicationDose,
    MgAdlResponse,
    StepCount,
    StepInterval,
    SymptomReport,
    VitalSign,
)
from app.diary.schemas import (
    DATA_MODELS,
    Adherence,
    EntryEnvelope,
    EntryOut,
    EntryVersionOut,
    MedicationDoseData,
    MgAdlData,
    MgAdlScoreOut,
    Payload,
    StepsData,
    SymptomsData,
    VitalsData,
)
from app.medications import formulary
from app.participants.models import Participant
from app.scores.instruments import mg_adl
from app.studies import service as studies_service
from app.studies.protocol import ProtocolDefinition

FUTURE_LIMIT = timedelta(hours=24)
CLOCK_AHEAD_FLAG_AFTER = timedelta(minutes=5)
Status = Literal["created", "duplicate", "conflict", "invalid"]
ChangeKind = Literal["created", "corrected"]


# --- validation ---------------------------------------------------------------------------


def _errors(exc: ValidationError, prefix: Sequence[str | int] = ()) -> list[dict[str, Any]]:
    return [
        {"loc": [*prefix, *err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False)
    ]


@dataclass(frozen=True)
class ValidEntry:
    envelope: EntryEnvelope
    data: Payload
    diary_date: date
    offset_minutes: int
    flags: list[str]
    content_hash: str


def canonical_data(data: Payload) -> dict[str, Any]:
    return data.model_dump(mode="json", exclude_none=True)


def _hash(document: dict[str, Any]) -> str:
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def validate_data(kind: str, raw: Any, *, prefix: Sequence[str | int] = ("data",)) -> Payload:
    try:
        return DATA_MODELS[kind].model_validate(raw)
    except ValidationError as exc:
        raise InvalidInput(_errors(exc, prefix)) from exc


def _date_rules(
    data: Payload, *, participant: Participant, prefix: Sequence[str | int]
) -> list[dict[str, Any]]:
    if isinstance(data, StepsData) and data.date < participant.enrolled_date:
        return [
            {
                "loc": [*prefix, "date"],
                "msg": f"the steps date is before enrolment ({participant.enrolled_date})",
                "type": "before_enrolment",
            }
        ]
    return []


def validate_entry(
    raw: Any, *, participant: Participant, protocol: ProtocolDefinition, now: datetime
) -> ValidEntry:
    """Validate one ENTRY; raise ``InvalidInput`` with every field error found."""
    if not isinstance(raw, dict):
        raise InvalidInput(
            [{"loc": [], "msg": "an entry must be a JSON object", "type": "dict_type"}]
        )
    try:
        envelope = EntryEnvelope.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInput(_errors(exc)) from exc
    data = validate_data(envelope.kind, envelope.data)
    recorded = envelope.recorded_at
    offset = recorded.utcoffset()
    assert offset is not None  # AwareDatetime
    diary_date = recorded.astimezone(ZoneInfo(envelope.time_zone)).date()
    errors = _date_rules(data, participant=participant, prefix=("data",))
    if recorded > now + FUTURE_LIMIT:
        errors.append(
            {
                "loc": ["recorded_at"],
                "msg": "recorded_at is more than 24 h in the future; check the device clock",
                "type": "future",
            }
        )
    if diary_date < participant.enrolled_date:
        errors.append(
            {
                "loc": ["recorded_at"],
                "msg": f"recorded before enrolment ({participant.enrolled_date})",
                "type": "before_enrolment",
            }
        )
    if errors:
        raise InvalidInput(errors)
    flags = []
    if now - recorded > timedelta(hours=protocol.diary.late_after_hours):
        flags.append("late")
    if recorded > now + CLOCK_AHEAD_FLAG_AFTER:
        flags.append("clock_ahead")
    if recorded.astimezone(ZoneInfo(envelope.time_zone)).utcoffset() != offset:
        flags.append("offset_mismatch")
    offset_minutes = int(offset.total_seconds() // 60)
    content_hash = _hash(
        {
            "kind": envelope.kind,
            "recorded_at": recorded.isoformat(),
            "time_zone": envelope.time_zone,
            "data": canonical_data(data),
        }
    )
    return ValidEntry(envelope, data, diary_date, offset_minutes, flags, content_hash)


# --- writing ------------------------------------------------------------------------------


def _score(data: Payload, protocol: ProtocolDefinition) -> dict[str, Any] | None:
    if not isinstance(data, MgAdlData):
        return None
    result = mg_adl.score(data.model_dump())
    return {
        "total": result.total,
        "ocular": result.ocular,
        "bulbar": result.bulbar,
        "respiratory": result.respiratory,
        "limb": result.limb,
        "instrument_version": result.instrument_version,
        "recall_period_days": protocol.diary.recall_period_days,
    }


def _typed_rows(
    version: DiaryEntryVersion, data: Payload, score: dict[str, Any] | None
) -> list[Any]:
    pid, vid = version.participant_id, version.id
    if isinstance(data, MgAdlData):
        assert score is not None
        return [MgAdlResponse(version_id=vid, participant_id=pid, **data.model_dump(), **score)]
    if isinstance(data, VitalsData):
        return [
            VitalSign(
                version_id=vid,
                participant_id=pid,
                temperature_c=data.celsius(),
                heart_rate_bpm=data.heart_rate_bpm,
                spo2_percent=round(data.spo2_percent) if data.spo2_percent is not None else None,
                systolic_mmhg=data.systolic_mmhg,
                diastolic_mmhg=data.diastolic_mmhg,
                measured_at=data.measured_at,
                method=data.method,
            )
        ]
    if isinstance(data, SymptomsData):
        return [
            SymptomReport(
                version_id=vid,
                participant_id=pid,
                code=s.code,
                severity=s.severity,
                onset_at=s.onset_at,
            )
            for s in data.symptoms
        ]
    if isinstance(data, MedicationDoseData):
        entry = formulary.lookup(data.medication)
        return [
            MedicationDose(
                version_id=vid,
                participant_id=pid,
                medication_code=entry.code if entry else None,
                medication_text=data.medication,
                amount=data.amount,
                unit=data.unit,
                route=data.route,
                taken_at=data.taken_at,
                schedule=data.schedule,
            )
        ]
    if isinstance(data, StepsData):
        rows: list[Any] = [
            StepCount(
                version_id=vid,
                participant_id=pid,
                step_date=data.date,
                count=data.count,
                source=data.source,
            )
        ]
        rows += [
            StepInterval(version_id=vid, start_at=i.start, end_at=i.end, count=i.count)
            for i in data.intervals or []
        ]
        return rows
    return []


def _new_version(
    session: Session,
    *,
    entry: DiaryEntry,
    version: int,
    data: Payload,
    protocol: ProtocolDefinition,
    actor: Actor,
    reason: str | None,
) -> DiaryEntryVersion:
    score = _score(data, protocol)
    row = DiaryEntryVersion(
        entry_id=entry.id,
        participant_id=entry.participant_id,
        version=version,
        data=canonical_data(data),
        score=score,
        reason=reason,
        actor_type=actor.type,
        actor_id=actor.id,
        actor_role=actor.role,
        txid=_txid(session),
    )
    session.add(row)
    session.flush()
    session.add_all(_typed_rows(row, data, score))
    return row


def _txid(session: Session) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return sa.text("pg_current_xact_id()::text::bigint")
    return 0  # SQLite serialises writers: the sequence alone orders the feed.


@dataclass
class IngestResult:
    status: Status
    entry: DiaryEntry | None = None
    version: DiaryEntryVersion | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    client_id: str | None = None


@dataclass
class Ingestor:
    """Stores entries for one participant; remembers what this request stored already."""

    session: Session
    participant: Participant
    protocol: ProtocolDefinition
    actor: Actor
    now: datetime = field(default_factory=utcnow)
    _known: dict[uuid.UUID, DiaryEntry | None] = field(default_factory=dict)

    def preload(self, client_ids: Sequence[uuid.UUID]) -> None:
        """Read the entries a batch may repeat in one query instead of one per item."""
        wanted = [cid for cid in client_ids if cid not in self._known]
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            for entry in self.session.exec(
                select(DiaryEntry).where(
                    DiaryEntry.participant_id == self.participant.id,
                    col(DiaryEntry.client_entry_id).in_(chunk),
                )
            ):
                self._known[entry.client_entry_id] = entry
        for cid in wanted:
            self._known.setdefault(cid, None)

    def _existing(self, client_id: uuid.UUID) -> DiaryEntry | None:
        if client_id not in self._known:
            self.preload([client_id])
        return self._known.get(client_id)

    def ingest(self, raw: Any) -> IngestResult:
        client_id = raw.get("id") if isinstance(raw, dict) else None
        client_text = str(client_id) if client_id is not None else None
        try:
            valid = validate_entry(
                raw, participant=self.participant, protocol=self.protocol, now=self.now
            )
        except InvalidInput as exc:
            return IngestResult("invalid", errors=exc.errors, client_id=client_text)
        existing = self._existing(valid.envelope.id)
        if existing is not None:
            if existing.content_hash == valid.content_hash:
                return IngestResult("duplicate", entry=existing, client_id=client_text)
            self._record_conflict(existing, raw, valid)
            return IngestResult("conflict", entry=existing, client_id=client_text)
        entry, version = self._create(valid)
        return IngestResult("created", entry=entry, version=version, client_id=client_text)

    def _create(self, valid: ValidEntry) -> tuple[DiaryEntry, DiaryEntryVersion]:
        env = valid.envelope
        entry = DiaryEntry(
            participant_id=self.participant.id,
            study_id=self.participant.study_id,
            client_entry_id=env.id,
            kind=env.kind,
            recorded_at=env.recorded_at,
            recorded_offset_minutes=valid.offset_minutes,
            time_zone=env.time_zone,
            diary_date=valid.diary_date,
            received_at=self.now,
            content_hash=valid.content_hash,
            flags=valid.flags,
        )
        self.session.add(entry)
        self.session.flush()
        version = _new_version(
            self.session,
            entry=entry,
            version=1,
            data=valid.data,
            protocol=self.protocol,
            actor=self.actor,
            reason=None,
        )
        audit.record(
            self.session,
            actor=self.actor,
            action="diary_entry.create",
            entity_type="diary_entry",
            entity_id=entry.client_entry_id,
            study_id=entry.study_id,
            participant_id=entry.participant_id,
            after={
                "kind": entry.kind,
                "recorded_at": env.recorded_at.isoformat(),
                "time_zone": entry.time_zone,
                "diary_date": entry.diary_date,
                "version": 1,
                "flags": entry.flags,
                "data": version.data,
            },
        )
        self._known[env.id] = entry
        return entry, version

    def _record_conflict(
        self, existing: DiaryEntry, raw: dict[str, Any], valid: ValidEntry
    ) -> None:
        conflict = DiaryConflict(
            participant_id=existing.participant_id,
            study_id=existing.study_id,
            entry_id=existing.id,
            client_entry_id=existing.client_entry_id,
            payload=json.loads(json.dumps(raw, default=str)),
            content_hash=valid.content_hash,
            received_at=self.now,
        )
        self.session.add(conflict)
        self.session.flush()
        audit.record(
            self.session,
            actor=self.actor,
            action="diary_entry.conflict",
            entity_type="diary_conflict",
            entity_id=conflict.id,
            study_id=existing.study_id,
            participant_id=existing.participant_id,
            after={"client_entry_id": existing.client_entry_id, "status": "open"},
        )


def protocol_of(session: Session, participant: Participant) -> ProtocolDefinition:
    return studies_service.definition_for_version(session, participant.protocol_version_id)


# --- corrections --------------------------------------------------------------------------


def correct(
    session: Session,
    *,
    entry: DiaryEntry,
    participant: Participant,
    raw_data: Any,
    reason: str,
    actor: Actor,
    by_participant: bool,
) -> DiaryEntryVersion:
    protocol = protocol_of(session, participant)
    if by_participant:
        local_today = utcnow().astimezone(ZoneInfo(participant.time_zone)).date()
        window = protocol.diary.edit_window_days
        if (local_today - entry.diary_date).days > window:
            raise EditWindowClosed(
                f"Entries can be corrected in the app for {window} days; ask your study site "
                "to correct this one"
            )
    data = validate_data(entry.kind, raw_data, prefix=("body", "data"))
    errors = _date_rules(data, participant=participant, prefix=("body", "data"))
    if errors:
        raise InvalidInput(errors)
    current = current_version(session, entry)
    new_data = canonical_data(data)
    if new_data == current.data:
        raise Conflict("The correction is identical to the current version")
    version = _new_version(
        session,
        entry=entry,
        version=entry.current_version + 1,
        data=data,
        protocol=protocol,
        actor=actor,
        reason=reason,
    )
    entry.current_version = version.version
    session.add(entry)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="diary_entry.correct",
        entity_type="diary_entry",
        entity_id=entry.client_entry_id,
        study_id=entry.study_id,
        participant_id=entry.participant_id,
        reason=reason,
        before={"version": current.version, "data": current.data, "score": current.score},
        after={"version": version.version, "data": version.data, "score": version.score},
    )
    return version


class EditWindowClosed(Conflict):
    code = "edit_window_closed"
    title = "The edit window has closed"


# --- reading ------------------------------------------------------------------------------


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


def _offset_text(minutes: int) -> str:
    sign = "+" if minutes >= 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{mins:02d}"


def _score_out(score: dict[str, Any] | None) -> MgAdlScoreOut | None:
    return MgAdlScoreOut.model_validate(score) if score else None


def to_out(entry: DiaryEntry, version: DiaryEntryVersion) -> EntryOut:
    offset = timedelta(minutes=entry.recorded_offset_minutes)
    return EntryOut(
        id=entry.client_entry_id,
        kind=entry.kind,
        recorded_at=entry.recorded_at.astimezone(timezone(offset)),
        time_zone=entry.time_zone,
        utc_offset=_offset_text(entry.recorded_offset_minutes),
        diary_date=entry.diary_date,
        received_at=entry.received_at,
        version=version.version,
        flags=list(entry.flags),
        data=version.data,
        score=_score_out(version.score),
        participant_id=entry.participant_id,
    )


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


def changes(
    session: Session, *, participant_id: uuid.UUID, params: PageParams
) -> tuple[list[tuple[EntryOut, ChangeKind]], str | None]:
    """Every new version of the participant's entries, in commit order.

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
    rows, cursor = paginate(
        session,
        stmt,
        order_by=[DiaryEntryVersion.txid, DiaryEntryVersion.seq],  # type: ignore[list-item]
        params=params,
        scope=f"changes:{participant_id}",
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
    return out, cursor


def adherence(
    session: Session, *, participant: Participant, today: date | None = None
) -> Adherence:
    """Diary periods (the protocol's cadence) with at least one entry / periods elapsed.

    Periods are counted from the enrolment date to today (participant-local), the current
    period included; a withdrawn participant's periods end at withdrawal.
    """
    protocol = protocol_of(session, participant)
    period = protocol.diary.cadence_days
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
    dates = session.exec(
        select(col(DiaryEntry.diary_date))
        .distinct()
        .where(
            DiaryEntry.participant_id == participant.id,
            DiaryEntry.diary_date >= start,
            DiaryEntry.diary_date <= end,
        )
    ).all()
    covered = {(d - start).days // period for d in dates}
    return Adherence(
        participant_id=participant.id,
        period_days=period,
        periods_expected=expected,
        periods_with_entry=len(covered),
        adherence=round(len(covered) / expected, 4),
        start_date=start,
        end_date=end,
    )


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
    preferred = protocol_of(session, participant).diary.steps_preferred_sources
    rows = session.exec(
        select(col(StepCount.step_date), col(StepCount.source), col(StepCount.count))
        .join(DiaryEntryVersion, col(DiaryEntryVersion.id) == StepCount.version_id)
        .join(
            DiaryEntry,
            sa.and_(
                col(DiaryEntry.id) == DiaryEntryVersion.entry_id,
                col(DiaryEntry.current_version) == DiaryEntryVersion.version,
            ),
        )
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
