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

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache, cached_property
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, col, select

from app.audit import service as audit
from app.audit.models import AuditEvent
from app.audit.service import Actor
from app.core import followups
from app.core.errors import Conflict, InvalidInput
from app.core.models import utcnow
from app.core.rows import Row, fields_of, model_of, new_row
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
from app.diary.queries import current_version
from app.diary.schemas import (
    MedicationDoseData,
    MgAdlData,
    Payload,
    StepsData,
    SymptomsData,
    VitalsData,
)
from app.diary.validation import (
    ValidEntry,
    canonical_data,
    date_rules,
    validate_data,
    validate_entry,
)
from app.medications import formulary
from app.participants.models import Participant
from app.scores.instruments import mg_adl
from app.studies import service as studies_service
from app.studies.protocol import ProtocolDefinition

Status = Literal["created", "duplicate", "conflict", "invalid"]

# --- writing ------------------------------------------------------------------------------


def _score(
    data: Payload, protocol: ProtocolDefinition, canonical: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """The MG-ADL score of ``data`` (None for other kinds); ``canonical``: its
    ``canonical_data``, when the caller has it (the items by key, not dumped again)."""
    if not isinstance(data, MgAdlData):
        return None
    result = mg_adl.score(canonical if canonical is not None else data.model_dump())
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
    version: DiaryEntryVersion,
    data: Payload,
    score: dict[str, Any] | None,
    make: Callable[..., Any] = new_row,
) -> list[Any]:
    """The kind's typed rows: ``Row`` values for bulk inserts by default, or (``make=_orm``)
    table objects for a session."""
    v = fields_of(version, ("participant_id", "id", "data"))
    pid, vid, items = v["participant_id"], v["id"], v["data"]
    if isinstance(data, MgAdlData):
        assert score is not None
        return [
            # The version's data is the items by key (canonical_data: every item is required).
            make(MgAdlResponse, version_id=vid, participant_id=pid, **items, **score)
        ]
    if isinstance(data, VitalsData):
        return [
            make(
                VitalSign,
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
            make(
                SymptomReport,
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
            make(
                MedicationDose,
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
            make(
                StepCount,
                version_id=vid,
                participant_id=pid,
                step_date=data.date,
                count=data.count,
                source=data.source,
            )
        ]
        rows += [
            make(StepInterval, version_id=vid, start_at=i.start, end_at=i.end, count=i.count)
            for i in data.intervals or []
        ]
        return rows
    return []


def _orm(model: type[Any], **values: Any) -> Any:
    return model(**values)


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
    session.add_all(_typed_rows(row, data, score, make=_orm))
    return row


def _txid(session: Session) -> Any:
    """PostgreSQL: the writer's transaction id (also the column default there, for bulk
    inserts); SQLite serialises writers, so the sequence alone orders the feed."""
    if session.get_bind().dialect.name == "postgresql":
        return sa.text("pg_current_xact_id()::text::bigint")
    return 0


#: Columns the database fills when a bulk insert leaves them out.
_DATABASE_FILLED = frozenset({"seq", "txid"})


def row_of(obj: Any) -> dict[str, Any]:
    """A table object's (or ``Row``'s) column values for a Core bulk insert, database-filled
    keys left out."""
    skip = _filled_keys(cast(Any, model_of(obj)))
    if isinstance(obj, Row):
        # Most rows have no database-filled key left None: the Row itself, not a copy.
        drop = [k for k in skip if k in obj and obj[k] is None]
        if not drop:
            return obj
        return {k: v for k, v in obj.items() if k not in drop}
    row = {}
    for column in obj.__table__.columns:
        value = getattr(obj, column.key)
        if value is None and column.key in skip:
            continue
        row[column.key] = value
    return row


@cache
def _filled_keys(model: type[Any]) -> frozenset[str]:
    """Columns the database fills when an insert leaves them out (when they are None)."""
    columns = model.__table__.columns
    return frozenset(c.key for c in columns if c.key in _DATABASE_FILLED or c.primary_key)


#: The tables an ingest writes, in foreign-key order.
_TABLES: tuple[tuple[Any, sa.Table], ...] = tuple(
    (model, model.__table__)  # type: ignore[union-attr]
    for model in (
        DiaryEntry,
        DiaryEntryVersion,
        MgAdlResponse,
        VitalSign,
        SymptomReport,
        MedicationDose,
        StepCount,
        StepInterval,
        DiaryConflict,
        AuditEvent,
    )
)
_VERSION_TABLE: sa.Table = DiaryEntryVersion.__table__  # type: ignore[attr-defined]
_ENTRY_TABLE: sa.Table = DiaryEntry.__table__  # type: ignore[attr-defined]
_EXISTING = select(DiaryEntry).where(
    DiaryEntry.participant_id == sa.bindparam("participant_id"),
    col(DiaryEntry.client_entry_id).in_(sa.bindparam("client_ids", expanding=True)),
)


def insert_rows(
    connection: sa.Connection, parts: list[tuple[sa.Table, list[dict[str, Any]]]]
) -> None:
    """Staged rows through SQLAlchemy Core, one multi-row INSERT per table. Outside PostgreSQL
    (where the column default gives the writer's transaction id) versions get txid 0: SQLite
    serialises writers, so the sequence alone orders the changes feed."""
    txid_default = connection.dialect.name == "postgresql"
    for table, rows in parts:
        if table is _VERSION_TABLE and not txid_default:
            rows = [{**row, "txid": 0} for row in rows]
        connection.execute(sa.insert(table), rows)


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

    #: None when the caller reads and writes itself (app/diary/capture.py, PostgreSQL path).
    session: Session | None
    participant: Participant
    protocol: ProtocolDefinition
    actor: Actor
    now: datetime = field(default_factory=utcnow)
    _known: dict[uuid.UUID, DiaryEntry | None] = field(default_factory=dict)
    #: Rows waiting for ``write()``, by table, in foreign-key order.
    _pending: dict[Any, list[Any]] = field(default_factory=dict)
    _created: dict[uuid.UUID, DiaryEntryVersion] = field(default_factory=dict)
    _current: dict[uuid.UUID, DiaryEntryVersion] = field(default_factory=dict)

    @cached_property
    def _participant_keys(self) -> tuple[uuid.UUID, uuid.UUID]:
        return self.participant.id, self.participant.study_id

    def _stage(self, *objects: Any) -> None:
        for obj in objects:
            self._pending.setdefault(model_of(obj), []).append(obj)

    def staged(self) -> list[tuple[sa.Table, list[dict[str, Any]]]]:
        """Take the staged rows: per table, in foreign-key order, as column values (database-
        filled keys left out)."""
        out = []
        for model, table in _TABLES:
            objects = self._pending.pop(model, [])
            if objects:
                out.append((table, [row_of(obj) for obj in objects]))
        assert not self._pending, f"unwritten rows: {list(self._pending)}"
        return out

    def write(self) -> None:
        """Insert everything staged with one multi-row INSERT per table, then run the
        follow-ups (the safety rules) on the session's transaction.

        Per-row ORM flushes cost three round trips and most of the CPU of an entry; rows built
        here already carry their keys (UUIDs), so nothing needs to come back from the database.
        Core on the session's connection: the ORM's bulk-insert layer is not needed for rows
        that are already plain values.
        """
        assert self.session is not None
        rows = self.staged()
        connection = self.session.connection()
        insert_rows(connection, rows)
        for followup in followups_of(self.participant, self.protocol, rows):
            followups.run_followup(connection, followup)

    def prime(
        self,
        client_ids: Sequence[uuid.UUID],
        existing: dict[uuid.UUID, tuple[DiaryEntry, DiaryEntryVersion]],
    ) -> None:
        """What the caller read for these ids (entries with their current versions; absent
        ids are new): ingest then needs no lookups."""
        for client_id in client_ids:
            self._known.setdefault(client_id, None)
        for client_id, (entry, version) in existing.items():
            self._known[client_id] = entry
            self._current[client_id] = version

    def current_of(self, result: IngestResult) -> DiaryEntryVersion:
        """The version a created or duplicate result answers with."""
        assert result.entry is not None
        if result.version is not None:
            return result.version
        known = self._current.get(result.entry.client_entry_id)
        if known is not None:
            return known
        assert self.session is not None
        return current_version(self.session, result.entry)

    def preload(self, client_ids: Sequence[uuid.UUID]) -> None:
        """Read the entries a batch may repeat in one query instead of one per item."""
        wanted = [cid for cid in client_ids if cid not in self._known]
        if not wanted:
            return
        assert self.session is not None, "prime() the ids first"
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            for entry in self.session.exec(
                _EXISTING, params={"participant_id": self.participant.id, "client_ids": chunk}
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
                return IngestResult(
                    "duplicate",
                    entry=existing,
                    client_id=client_text,
                    version=self._created.get(existing.client_entry_id),
                )
            self._record_conflict(existing, raw, valid)
            return IngestResult("conflict", entry=existing, client_id=client_text)
        entry, version = self._create(valid)
        return IngestResult("created", entry=entry, version=version, client_id=client_text)

    def _create(self, valid: ValidEntry) -> tuple[DiaryEntry, DiaryEntryVersion]:
        # Locals rather than the new rows' attributes: a Row answers attribute access only
        # after a failed lookup (0.4 us each; the entry's rows are read 10 times here).
        env = valid.envelope
        participant_id, study_id = self._participant_keys
        diary_date, flags, data = valid.diary_date, valid.flags, valid.canonical
        entry = new_row(
            DiaryEntry,
            participant_id=participant_id,
            study_id=study_id,
            client_entry_id=env.id,
            kind=env.kind,
            recorded_at=env.recorded_at,
            recorded_offset_minutes=valid.offset_minutes,
            time_zone=env.time_zone,
            diary_date=diary_date,
            received_at=self.now,
            content_hash=valid.content_hash,
            flags=flags,
        )
        score = _score(valid.data, self.protocol, data)
        version = new_row(
            DiaryEntryVersion,
            entry_id=cast(Row, entry)["id"],
            participant_id=participant_id,
            version=1,
            data=data,
            score=score,
            actor_type=self.actor.type,
            actor_id=self.actor.id,
            actor_role=self.actor.role,
        )
        self._stage(entry, version, *_typed_rows(version, valid.data, score))
        self._stage(
            audit.build(
                actor=self.actor,
                action="diary_entry.create",
                entity_type="diary_entry",
                entity_id=env.id,
                study_id=study_id,
                participant_id=participant_id,
                after={
                    "kind": env.kind,
                    "recorded_at": env.recorded_at.isoformat(),
                    "time_zone": env.time_zone,
                    "diary_date": diary_date,
                    "version": 1,
                    "flags": flags,
                    "data": data,
                },
            )
        )
        self._known[env.id] = entry
        self._created[env.id] = version
        return entry, version

    def _record_conflict(
        self, existing: DiaryEntry, raw: dict[str, Any], valid: ValidEntry
    ) -> None:
        conflict = new_row(
            DiaryConflict,
            participant_id=existing.participant_id,
            study_id=existing.study_id,
            entry_id=existing.id,
            client_entry_id=existing.client_entry_id,
            payload=json.loads(json.dumps(raw, default=str)),
            content_hash=valid.content_hash,
            received_at=self.now,
        )
        self._stage(conflict)
        self._stage(
            audit.build(
                actor=self.actor,
                action="diary_entry.conflict",
                entity_type="diary_conflict",
                entity_id=conflict.id,
                study_id=existing.study_id,
                participant_id=existing.participant_id,
                after={"client_entry_id": existing.client_entry_id, "status": "open"},
            )
        )


def followups_of(
    participant: Participant,
    protocol: ProtocolDefinition,
    rows: list[tuple[sa.Table, list[dict[str, Any]]]],
) -> list[followups.Followup]:
    """The follow-ups (app/core/followups.py) of the entries created in ``rows`` (staged rows:
    entries, then their first versions)."""
    entries: dict[Any, dict[str, Any]] = {}
    written = []
    for table, values in rows:
        if table is _ENTRY_TABLE:
            entries = {row["id"]: row for row in values}
        elif table is _VERSION_TABLE:
            for row in values:
                entry = entries[row["entry_id"]]
                written.append(
                    followups.WrittenEntry(
                        entry_id=entry["client_entry_id"],
                        kind=entry["kind"],
                        recorded_at=entry["recorded_at"],
                        local_date=entry["diary_date"],
                        data=row["data"],
                    )
                )
    if not written:
        return []
    return followups.followups(followups.Written(participant, protocol, written))


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
    errors = date_rules(data, participant=participant, prefix=("body", "data"))
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
    written = followups.WrittenEntry(
        entry_id=entry.client_entry_id,
        kind=entry.kind,
        recorded_at=entry.recorded_at,
        local_date=entry.diary_date,
        data=version.data,
    )
    followups.run_on_session(session, followups.Written(participant, protocol, [written]))
    return version


class EditWindowClosed(Conflict):
    code = "edit_window_closed"
    title = "The edit window has closed"


def resolve_conflict(
    session: Session, *, conflict: DiaryConflict, reason: str, actor: Actor
) -> DiaryConflict:
    """Close a conflict after review (the entry itself is corrected separately if needed)."""
    if conflict.status != "open":
        raise Conflict("This conflict is already resolved")
    conflict.status = "resolved"
    conflict.resolved_at = utcnow()
    conflict.resolution = reason
    session.add(conflict)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="diary_conflict.resolve",
        entity_type="diary_conflict",
        entity_id=conflict.id,
        study_id=conflict.study_id,
        participant_id=conflict.participant_id,
        before={"status": "open"},
        after={"status": "resolved"},
        reason=reason,
    )
    return conflict
