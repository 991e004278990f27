"""Diary capture (single entry and batch sync): read, decide, write - on either database.

Each capture request is three phases:

1. **read** what the decision needs: the participant (and whether the token's session family is
   revoked), the entries the request may repeat with their current versions, and the
   Idempotency-Key record;
2. **decide** (pure, shared): validation, duplicate and conflict detection, the rows to insert
   and the response (app/diary/service.py ``Ingestor``);
3. **write** the rows and commit before answering: a 2xx means committed.

The read and write phases, chosen by the database:

- ``PostgresCapture``: psycopg's own pool, autocommit. A single entry is two statements: one
  SELECT with LEFT JOINs for every read, one INSERT with data-modifying CTEs for every row
  (atomic on its own; foreign keys are checked at the end of the statement). More than
  ``BULK_FROM_ROWS`` rows (a sync batch, a day of intraday steps) go in as one INSERT per table
  whose one parameter is all its rows as JSON (``rawsql.insert_json``), in one pipelined
  transaction: BEGIN, the statements and COMMIT in one round trip (two with the safety
  rules' reads).
  Statements come from the SQLAlchemy models, compiled once (app/core/rawsql.py).
- ``SqliteCapture``: the same statements for SQLite on a dedicated sqlite3 connection,
  ``BEGIN IMMEDIATE`` ... ``COMMIT``, requests taking turns on an asyncio lock and running on
  the event loop (in a worker thread when another connection holds the write lock).
- ``SessionCapture``: a SQLAlchemy session in one thread hop (app/core/uow.py). The test suite
  uses it, so every capture test runs on the rolled-back test transaction; also in-memory
  SQLite.

The decision phase is one code path for all three. tests/diary/test_capture_production.py runs
the production path of the database under test on committed data.

Fault injection for the crash drill (scripts/crash_drill.py), test-only:
``MGDIARY_FAULT_INJECT=before_commit|after_commit`` makes the process exit (status 137, no
cleanup) in the PostgreSQL and SQLite capture paths, just before a write commits or just after
it committed and before the response is sent, on the first write after
``MGDIARY_FAULT_INJECT_AFTER`` (default 0) writes that passed that point. Read once, at import,
in ``_fault_point``; ignored when ``MGDIARY_ENV=production``.

Measured on this machine (docs/performance.md): async SQLAlchemy over the same ORM code reached
0.105-0.137 of the baseline for a single entry; these paths reach about 0.34 on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import sqlite3
import threading
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any, Protocol

import anyio.to_thread
import psycopg
import sqlalchemy as sa
from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app.audit.service import Actor
from app.auth.principal import ParticipantPrincipal
from app.core import followups, rawsql
from app.core.config import Settings
from app.core.db import SQLITE_BUSY_TIMEOUT_MS, sqlite_on_connect
from app.core.errors import problem_response
from app.core.models import utcnow
from app.core.responses import ValuesResponse
from app.core.uow import ThreadUnitOfWork, UnitOfWork, engine_sessions
from app.diary import queries, service
from app.diary.models import (
    DiaryEntry,
    DiaryEntryVersion,
    IdempotencyRecord,
    is_current_version,
)
from app.participants import activation
from app.participants.deps import check_participant, participant_row
from app.participants.models import Participant
from app.studies import service as studies_service
from app.studies.models import ProtocolVersion
from app.studies.protocol import ProtocolDefinition

logger = logging.getLogger("mgdiary.capture")

IDEMPOTENCY_TTL = timedelta(hours=24)
#: PostgreSQL capture pool (scripts/pg_restart_drill.py): how long a request waits for a
#: connection, normally and while the database is unreachable (then a 503 with Retry-After);
#: and how long the pool keeps retrying one reconnection (its back-off doubles from 1 s) before
#: the next request starts a new one - so it reconnects within seconds after an outage.
POOL_TIMEOUT_SECONDS = 30.0  # as the engine's pool_timeout (app/core/db.py)
POOL_TIMEOUT_UNREACHABLE_SECONDS = 2.0
POOL_RECONNECT_SECONDS = 5.0
#: Above this many rows a request's inserts go in as JSON, one statement per table
#: (PostgreSQL; ``rawsql.insert_json``).
BULK_FROM_ROWS = 64
_IDLE = psycopg.pq.TransactionStatus.IDLE
Existing = dict[uuid.UUID, tuple[DiaryEntry, DiaryEntryVersion]]

FAULT_POINTS = ("before_commit", "after_commit")


def _fault_point() -> tuple[str, int] | None:
    """The crash drill's fault injection (see the module docstring): the point and how many
    writes pass it first. Never in production."""
    point = os.environ.get("MGDIARY_FAULT_INJECT")
    if not point:
        return None
    if os.environ.get("MGDIARY_ENV") == "production":
        logger.error("MGDIARY_FAULT_INJECT is ignored in production")
        return None
    if point not in FAULT_POINTS:
        raise RuntimeError(f"MGDIARY_FAULT_INJECT must be one of {', '.join(FAULT_POINTS)}")
    return point, int(os.environ.get("MGDIARY_FAULT_INJECT_AFTER") or 0)


_FAULT = _fault_point()
_fault_passed = 0


def _fault(point: str, decision: Decision) -> None:
    """Exit at ``point`` if the drill asked for it (only writes count; a replay writes nothing)."""
    global _fault_passed
    if _FAULT is None or _FAULT[0] != point or not decision.rows:
        return
    if _fault_passed < _FAULT[1]:
        _fault_passed += 1
        return
    logger.error("fault injection: exiting at %s", point)
    os._exit(137)


@dataclass
class Snapshot:
    """What the read phase found."""

    participant: Participant | None
    family_revoked: bool
    existing: Existing
    idempotency: IdempotencyRecord | None = None


@dataclass
class Decision:
    """What the decide phase wants written, and the answer."""

    rows: list[tuple[sa.Table, list[dict[str, Any]]]]
    response: Any
    idempotency_insert: dict[str, Any] | None = None
    idempotency_delete: uuid.UUID | None = None
    #: Work of higher domains (the safety rules) for the same transaction (app/core/followups.py).
    followups: list[followups.Followup] = field(default_factory=list)


def _rows(decision: Decision) -> int:
    return sum(len(rows) for _, rows in decision.rows)


def request_hash(raw: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()


def client_ids(raws: list[Any]) -> list[uuid.UUID]:
    ids = []
    for raw in raws:
        try:
            ids.append(uuid.UUID(str(raw["id"])))
        except (ValueError, KeyError, TypeError):
            continue  # answered `invalid` by ingest()
    return ids


def checked_participant(snapshot: Snapshot) -> Participant:
    return check_participant(snapshot.participant, snapshot.family_revoked)


def _ingestor(
    session: Session | None, participant: Participant, protocol: ProtocolDefinition
) -> service.Ingestor:
    return service.Ingestor(
        session=session,
        participant=participant,
        protocol=protocol,
        actor=Actor(type="participant", id=str(participant.id), role="participant"),
    )


def _replay(record: IdempotencyRecord, digest: str, now: datetime) -> JSONResponse | None:
    """The stored answer for a repeated Idempotency-Key, a 422 for a reused one, or None."""
    if record.expires_at <= now:
        return None
    if record.request_hash != digest:
        return problem_response(
            status=422,
            code="idempotency_key_reused",
            title="Idempotency-Key is already used",
            detail="This Idempotency-Key was used with a different request body.",
            errors=[
                {
                    "loc": ["header", "Idempotency-Key"],
                    "msg": "already used with another payload",
                    "type": "idempotency_key_reused",
                }
            ],
        )
    media = "application/problem+json" if record.status_code >= 400 else "application/json"
    return JSONResponse(
        record.response_body,
        status_code=record.status_code,
        headers={"Idempotent-Replayed": "true"},
        media_type=media,
    )


def decide_entry(
    snapshot: Snapshot,
    protocol_of: Any,
    raw: dict[str, Any],
    key: str | None,
    session: Session | None = None,
) -> Decision:
    participant = checked_participant(snapshot)
    now = utcnow()
    # Only an Idempotency-Key request needs the body's digest (a JSON dump and a SHA-256).
    digest = request_hash(raw) if key is not None else ""
    expired: uuid.UUID | None = None
    if key is not None and snapshot.idempotency is not None:
        replay = _replay(snapshot.idempotency, digest, now)
        if replay is not None:
            return Decision(rows=[], response=replay)
        expired = snapshot.idempotency.id  # an expired key is free again; the UUID still dedups
    ingestor = _ingestor(session, participant, protocol_of(participant))
    ingestor.prime(client_ids([raw]), snapshot.existing)
    result = ingestor.ingest(raw)
    if result.status == "invalid":
        response = problem_response(
            status=422,
            code="validation_failed",
            title="Request validation failed",
            detail="The entry is not valid",
            errors=[{**e, "loc": ["body", *e["loc"]]} for e in result.errors],
        )
    elif result.status == "conflict":
        # Returned, not raised: the conflicting submission must be committed for review.
        response = problem_response(
            status=409,
            code="entry_conflict",
            title="Conflict",
            detail="An entry with this id and different content exists; the new content was "
            "kept for the study team to review.",
        )
    else:
        assert result.entry is not None
        body = queries.entry_values(result.entry, ingestor.current_of(result))
        response = ValuesResponse(body, status_code=201 if result.status == "created" else 200)
    rows = ingestor.staged()
    decision = Decision(
        rows=rows,
        response=response,
        idempotency_delete=expired,
        followups=service.followups_of(participant, ingestor.protocol, rows),
    )
    # Validation failures are not remembered: nothing changed, and the client may fix and retry.
    if key is not None and response.status_code != 422:
        decision.idempotency_insert = service.row_of(
            IdempotencyRecord(
                participant_id=participant.id,
                key=key,
                request_hash=digest,
                status_code=response.status_code,
                response_body=json.loads(bytes(response.body)),
                expires_at=now + IDEMPOTENCY_TTL,
            )
        )
    return decision


def decide_sync(
    snapshot: Snapshot, protocol_of: Any, raws: list[Any], session: Session | None = None
) -> Decision:
    participant = checked_participant(snapshot)
    ingestor = _ingestor(session, participant, protocol_of(participant))
    ingestor.prime(client_ids(raws), snapshot.existing)
    results = []
    for raw in raws:
        result = ingestor.ingest(raw)
        entry = None
        if result.status in ("created", "duplicate"):
            assert result.entry is not None
            entry = queries.entry_values(result.entry, ingestor.current_of(result))
        # SyncResult's shape, as plain values: building 500 response models and having
        # FastAPI validate them again cost a tenth of a batch's CPU (docs/performance.md).
        results.append(
            {
                "id": result.client_id,
                "status": result.status,
                "errors": [
                    {"loc": e["loc"], "msg": e["msg"], "type": e["type"]} for e in result.errors
                ],
                "entry": entry,
            }
        )
    rows = ingestor.staged()
    return Decision(
        rows=rows,
        response=ValuesResponse({"results": results}),
        followups=service.followups_of(participant, ingestor.protocol, rows),
    )


class Capture(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def entry(
        self, principal: ParticipantPrincipal, raw: dict[str, Any], key: str | None
    ) -> JSONResponse: ...

    async def sync(self, principal: ParticipantPrincipal, raws: list[Any]) -> JSONResponse:
        """200 with a SyncResponse body."""


# --- any database, through a SQLAlchemy session -------------------------------------------------

_EXISTING = (
    select(DiaryEntry, DiaryEntryVersion)
    .join(DiaryEntryVersion, is_current_version())
    .where(
        DiaryEntry.participant_id == sa.bindparam("participant_id"),
        col(DiaryEntry.client_entry_id).in_(sa.bindparam("client_ids", expanding=True)),
    )
)
_IDEMPOTENCY = select(IdempotencyRecord).where(
    IdempotencyRecord.participant_id == sa.bindparam("participant_id"),
    IdempotencyRecord.key == sa.bindparam("key"),
)


def _session_snapshot(
    session: Session, principal: ParticipantPrincipal, ids: list[uuid.UUID], key: str | None
) -> Snapshot:
    participant, revoked = participant_row(session, principal)
    existing: Existing = {}
    if participant is not None:
        for start in range(0, len(ids), 500):
            params = {"participant_id": participant.id, "client_ids": ids[start : start + 500]}
            for entry, version in session.exec(_EXISTING, params=params):
                existing[entry.client_entry_id] = (entry, version)
    record = None
    if key is not None and participant is not None:
        record = session.exec(
            _IDEMPOTENCY, params={"participant_id": participant.id, "key": key}
        ).first()
    return Snapshot(participant, revoked, existing, record)


def _session_write(session: Session, decision: Decision) -> None:
    connection = session.connection()
    table = _IDEMPOTENCY_TABLE
    if decision.idempotency_delete is not None:
        connection.execute(sa.delete(table).where(table.c.id == decision.idempotency_delete))
    parts = list(decision.rows)
    if decision.idempotency_insert is not None:
        parts.append((table, [decision.idempotency_insert]))
    service.insert_rows(connection, parts)
    for followup in decision.followups:
        followups.run_followup(connection, followup)


class SessionCapture:
    def __init__(self, unit_of_work: UnitOfWork) -> None:
        self.unit_of_work = unit_of_work

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def entry(
        self, principal: ParticipantPrincipal, raw: dict[str, Any], key: str | None
    ) -> JSONResponse:
        def work(session: Session) -> JSONResponse:
            snapshot = _session_snapshot(session, principal, client_ids([raw]), key)
            decision = decide_entry(snapshot, _protocols(session), raw, key, session)
            _session_write(session, decision)
            response: JSONResponse = decision.response
            return response

        return await self.unit_of_work.run(work)

    async def sync(self, principal: ParticipantPrincipal, raws: list[Any]) -> JSONResponse:
        def work(session: Session) -> JSONResponse:
            snapshot = _session_snapshot(session, principal, client_ids(raws), None)
            decision = decide_sync(snapshot, _protocols(session), raws, session)
            _session_write(session, decision)
            response: JSONResponse = decision.response
            return response

        return await self.unit_of_work.run(work)


def _protocols(session: Session) -> Any:
    return lambda participant: service.protocol_of(session, participant)


# --- PostgreSQL: psycopg, pipelined --------------------------------------------------------------

#: Every read of a capture request in one statement: the participant (with whether the token's
#: session family is revoked), each entry the request may repeat with its current version, and
#: the Idempotency-Key record. One row per existing entry (or one row with NULLs).
_PG_READ_ENTITIES = [
    rawsql.AsRow(Participant),
    activation.family_revoked_clause(sa.bindparam("family_id", type_=sa.Uuid())).label(
        "family_revoked"
    ),
    rawsql.Nullable(DiaryEntry),
    rawsql.Nullable(DiaryEntryVersion),
    rawsql.Nullable(IdempotencyRecord),
]


def _read_joins(select: sa.Select[Any], entry_in_request: sa.ColumnElement[bool]) -> sa.Select[Any]:
    return (
        select.select_from(Participant)
        .outerjoin(
            DiaryEntry,
            sa.and_(col(DiaryEntry.participant_id) == Participant.id, entry_in_request),
        )
        .outerjoin(DiaryEntryVersion, is_current_version())
        .outerjoin(
            IdempotencyRecord,
            sa.and_(
                col(IdempotencyRecord.participant_id) == Participant.id,
                col(IdempotencyRecord.key) == sa.bindparam("key", type_=sa.String()),
            ),
        )
        .where(col(Participant.id) == sa.bindparam("participant_id", type_=sa.Uuid()))
    )


_PG_READ = rawsql.Query(
    _PG_READ_ENTITIES,
    lambda s: _read_joins(
        s,
        col(DiaryEntry.client_entry_id)
        == sa.any_(sa.bindparam("client_ids", type_=sa.ARRAY(sa.Uuid()))),
    ),
    {"participant_id": sa.Uuid(), "family_id": sa.Uuid()},
)
_PG_PROTOCOL = rawsql.Query(
    [ProtocolVersion],
    lambda s: s.where(col(ProtocolVersion.id) == sa.bindparam("id", type_=sa.Uuid())),
    {"id": sa.Uuid()},
)
_IDEMPOTENCY_TABLE: sa.Table = IdempotencyRecord.__table__  # type: ignore[attr-defined]


def _snapshot_of(query: rawsql.Query, rows: list[Any]) -> Snapshot:
    """The snapshot from the read statement's rows (one per existing entry, or one of NULLs)."""
    participant, revoked, record = None, False, None
    existing: Existing = {}
    for row in rows:
        participant, revoked, entry, version, record = query.decode(row)
        if entry is not None:
            existing[entry.client_entry_id] = (entry, version)
    return Snapshot(participant, bool(revoked), existing, record)


_VERSION_TABLE: sa.Table = DiaryEntryVersion.__table__  # type: ignore[attr-defined]


class PostgresCapture:
    def __init__(self, new_pool: Callable[[], AsyncConnectionPool[Any]]) -> None:
        self._new_pool = new_pool
        self._pool: AsyncConnectionPool[Any] | None = None
        #: A connection broke and no request has succeeded since: the database is probably
        #: down, so requests wait only briefly for a connection (then 503) instead of 30 s.
        self._unreachable = False

    @property
    def pool(self) -> AsyncConnectionPool[Any]:
        if self._pool is None:
            raise RuntimeError("the capture pool opens with the app's lifespan")
        return self._pool

    async def open(self) -> None:
        # A new pool per lifespan: a psycopg pool cannot be reopened once closed.
        self._pool = self._new_pool()
        await self._pool.open()

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConnection[Any]]:
        timeout = POOL_TIMEOUT_UNREACHABLE_SECONDS if self._unreachable else None
        entered = False
        try:
            async with self.pool.connection(timeout=timeout) as conn:
                entered = True
                try:
                    yield conn
                except psycopg.OperationalError:
                    if conn.broken:
                        self._unreachable = True
                    raise
        except PoolTimeout:
            if entered or not self._unreachable:
                raise  # the pool is exhausted: 503 database_busy
            # No connection because the database is down: 503 database_unavailable.
            raise psycopg.OperationalError("the database is unreachable") from None
        self._unreachable = False

    async def _snapshot(
        self,
        conn: AsyncConnection[Any],
        principal: ParticipantPrincipal,
        ids: list[uuid.UUID],
        key: str | None,
    ) -> Snapshot:
        params = {
            "participant_id": principal.participant_id,
            "family_id": principal.family_id,
            "client_ids": ids,
            "key": key,
        }
        cursor = await _PG_READ.send(conn, params)
        return _snapshot_of(_PG_READ, await cursor.fetchall())

    async def _protocols(self, conn: AsyncConnection[Any], snapshot: Snapshot) -> Any:
        participant = snapshot.participant
        if participant is not None:
            version_id = participant.protocol_version_id
            if studies_service.cached_definition(version_id) is None:
                cursor = await _PG_PROTOCOL.send(conn, {"id": version_id})
                found = await cursor.fetchone()
                if found is not None:
                    (version,) = _PG_PROTOCOL.decode(found)
                    studies_service.remember_definition(version)
        return lambda p: studies_service.cached_definition(p.protocol_version_id)

    async def _write(self, conn: AsyncConnection[Any], decision: Decision) -> None:
        """The connection is in autocommit mode. A few rows without follow-ups (a single
        entry): ONE multi-table INSERT statement, atomic by itself, no BEGIN or COMMIT.
        Otherwise one pipelined transaction (``_pipelined``)."""
        if decision.followups or _rows(decision) > BULK_FROM_ROWS:
            await self._pipelined(conn, decision)
        else:
            # Autocommit: the one INSERT is the commit.
            _fault("before_commit", decision)
            await self._insert(conn, decision, [])
        _fault("after_commit", decision)

    async def _pipelined(self, conn: AsyncConnection[Any], decision: Decision) -> None:
        """One transaction in one round trip, or two with follow-ups (the safety rules found
        something to look at): BEGIN, the participant's advisory lock and the follow-ups'
        reads (their results fetched with a flush), then the rows - one statement for a few,
        one JSON INSERT per table for many (a sync batch, a day of intraday steps) - what the
        follow-ups decided, their updates and COMMIT (the pipeline's sync). BEGIN and COMMIT
        are sent by hand on the autocommit connection: psycopg's ``transaction()`` inside a
        pipeline syncs after BEGIN and around its block (five round trips). On any error the
        transaction is rolled back here; the error itself (a unique violation: 409)
        propagates with its own type."""
        try:
            async with conn.pipeline():
                await conn.execute("BEGIN")
                extra = await self._followups(conn, decision.followups, own_pipeline=False)
                await self._insert(conn, decision, extra.parts)
                await self._updates(conn, extra.updates)
                _fault("before_commit", decision)
                await conn.execute("COMMIT")
        except BaseException:
            if not conn.closed and conn.info.transaction_status != _IDLE:
                try:
                    await conn.rollback()
                except psycopg.Error:
                    logger.warning("rollback after a failed pipelined write failed", exc_info=True)
            raise

    async def _followups(
        self,
        conn: AsyncConnection[Any],
        pending: list[followups.Followup],
        *,
        own_pipeline: bool = True,
    ) -> followups.Write:
        """Each follow-up's lock and reads, sent together (in a pipeline of their own, or
        queued in the caller's with ``own_pipeline=False``), then its ``finish``."""
        total = followups.Write()
        for followup in pending:
            if own_pipeline:
                async with conn.pipeline():
                    cursors = await self._send_reads(conn, followup)
            else:
                cursors = await self._send_reads(conn, followup)
            results = []
            for read, cursor in zip(followup.reads, cursors, strict=True):
                query = read.queries["postgresql"]
                results.append([query.decode(row) for row in await cursor.fetchall()])
            write = followup.finish(results)
            total.parts += write.parts
            total.updates += write.updates
        return total

    async def _send_reads(
        self, conn: AsyncConnection[Any], followup: followups.Followup
    ) -> list[Any]:
        # The lock first: the server runs the pipeline's statements in order.
        await conn.execute(followups.PG_LOCK_SQL, (followups.lock_key(followup.lock),))
        return [await read.queries["postgresql"].send(conn, read.params) for read in followup.reads]

    async def _updates(self, conn: AsyncConnection[Any], updates: list[followups.Update]) -> None:
        async with conn.cursor() as cursor:
            for update in updates:
                statement = update.statements["postgresql"]
                await cursor.execute(statement.sql, statement.params(update.params))

    async def _insert(
        self,
        conn: AsyncConnection[Any],
        decision: Decision,
        extra: list[tuple[sa.Table, list[dict[str, Any]]]],
    ) -> None:
        """The decision's rows and ``extra``: one multi-row INSERT statement for up to
        ``BULK_FROM_ROWS`` rows, one JSON INSERT per table above. Each is one statement, so
        this runs alone (autocommit) or queued in the caller's pipeline."""
        parts = list(decision.rows)
        if decision.idempotency_insert is not None:
            parts.append((_IDEMPOTENCY_TABLE, [decision.idempotency_insert]))
        parts += extra
        async with conn.cursor() as cursor:
            if decision.idempotency_delete is not None:
                # An expired key, freed before it is stored again (its own statement: a
                # unique key cannot be deleted and re-inserted inside one statement).
                await cursor.execute(
                    "DELETE FROM idempotency_record WHERE id = %s", (decision.idempotency_delete,)
                )
            if sum(len(rows) for _, rows in parts) > BULK_FROM_ROWS:
                for table, rows in parts:
                    await rawsql.insert_json(cursor, table, rows)
                return
        statement = rawsql.multi_insert(parts)
        if statement is not None:
            async with psycopg.AsyncRawCursor(conn) as raw:
                await raw.execute(*statement)

    async def _read(
        self,
        conn: AsyncConnection[Any],
        principal: ParticipantPrincipal,
        ids: list[uuid.UUID],
        key: str | None,
    ) -> tuple[Snapshot, Any]:
        snapshot = await self._snapshot(conn, principal, ids, key)
        return snapshot, await self._protocols(conn, snapshot)

    async def entry(
        self, principal: ParticipantPrincipal, raw: dict[str, Any], key: str | None
    ) -> JSONResponse:
        async with self._connection() as conn:
            snapshot, protocols = await self._read(conn, principal, client_ids([raw]), key)
            decision = decide_entry(snapshot, protocols, raw, key)
            await self._write(conn, decision)
        response: JSONResponse = decision.response
        return response

    async def sync(self, principal: ParticipantPrincipal, raws: list[Any]) -> JSONResponse:
        async with self._connection() as conn:
            snapshot, protocols = await self._read(conn, principal, client_ids(raws), None)
            decision = decide_sync(snapshot, protocols, raws)
            await self._write(conn, decision)
        response: JSONResponse = decision.response
        return response


# --- SQLite: sqlite3, in one thread hop ---------------------------------------------------

_SQLITE_READ = rawsql.Query(
    _PG_READ_ENTITIES,
    lambda s: _read_joins(
        s,
        col(DiaryEntry.client_entry_id).in_(
            sa.select(sa.column("value")).select_from(
                sa.func.json_each(sa.bindparam("client_ids", type_=sa.String()))
            )
        ),
    ),
    {"participant_id": sa.Uuid(), "family_id": sa.Uuid()},
    dialect="sqlite",
)

_SQLITE_PROTOCOL = rawsql.Query(
    [ProtocolVersion],
    lambda s: s.where(col(ProtocolVersion.id) == sa.bindparam("id", type_=sa.Uuid())),
    {"id": sa.Uuid()},
    dialect="sqlite",
)


class _Busy(Exception):
    """Another connection holds SQLite's write lock right now."""


#: SQLite's default ``wal_autocheckpoint``: a commit that leaves the log this many pages long
#: checkpoints it, inside the commit.
SQLITE_AUTOCHECKPOINT_PAGES = 1000
#: A log this many frames long (4 KiB pages: 32 MiB) is rewound (``WalCheckpointer``).
WAL_RESTART_FRAMES = 8192
#: How long a RESTART checkpoint waits for other writers and readers before it reports busy.
RESTART_WAIT_MS = 250


class WalCheckpointer:
    """Checkpoints an SQLite write-ahead log from a thread of its own, on its own connection.

    With SQLite's automatic checkpoints, the commit that grows the log past 1,000 pages copies
    the log into the database file and syncs it, inside that commit: measured in process
    (sequential single-entry POSTs), about one capture commit in 34 took 5-24 ms instead of
    1 ms, on the event loop, and every request queued behind it waited too. Here the capture
    connection turns automatic checkpoints off while this thread runs ``PRAGMA
    wal_checkpoint(PASSIVE)`` every ``interval`` seconds: a passive checkpoint never waits for,
    or blocks, the writer or the readers (it copies what it can now and the rest next time), and
    sqlite3 releases the GIL while it works.

    A log is only rewound from its start by a writer that begins when every frame of it is in
    the database file, which a checkpoint running alongside a busy writer never achieves: the
    log grew to 1.5 GB in 12,000 requests, and every page read searched it. So once the log is
    longer than ``restart_frames``, ``restart_wanted`` asks the capture path to finish the job
    between two of its transactions (``SqliteCapture``: in a worker thread, holding its turn):
    only the frames since this thread's last pass are left to copy, and the next transaction
    starts the log again (``rewind``; with other processes writing too, a RESTART checkpoint
    once the log is four times that long). If the thread is not running (before the app's
    lifespan starts, after it ends), the capture connection uses SQLite's automatic
    checkpoints; a failed checkpoint is logged and retried at the next interval.
    """

    def __init__(
        self, database: str, interval: float, restart_frames: int = WAL_RESTART_FRAMES
    ) -> None:
        self.database = database
        self.interval = interval
        self.restart_frames = restart_frames
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Checkpoints run, and the last one's (busy, log frames, frames checkpointed).
        self.runs = 0
        self.last: tuple[int, int, int] | None = None
        #: The log is long: the writer should let a checkpoint complete between transactions.
        self.restart_wanted = False

    @property
    def running(self) -> bool:
        thread = self._thread  # once: stop() clears it from another thread
        return thread is not None and thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, name="mgdiary-sqlite-checkpoint", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def checkpoint(self, conn: sqlite3.Connection, mode: str = "PASSIVE") -> None:
        # fetchall, not fetchone: a statement left unfinished keeps a read transaction open,
        # and a reader on the log stops writers from ever restarting it (it grows unbounded).
        rows = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchall()
        self.runs += 1
        self.last = (int(rows[0][0]), int(rows[0][1]), int(rows[0][2])) if rows else None

    def _thread_pass(self, conn: sqlite3.Connection) -> None:
        """The thread's checkpoint; only it decides that the log wants a rewind (a checkpoint
        reports the log's length before the writer restarts it, so the writer's own rewind
        would always ask for another)."""
        self.checkpoint(conn)
        self.restart_wanted = self.last is not None and self.last[1] >= self.restart_frames

    def rewind(self, conn: sqlite3.Connection) -> None:
        """The writer's part (``restart_wanted``), on its own connection between two of its
        transactions. Passive: with this process's writer paused the copy completes, unless
        another process writes too (several app processes on one file); if the log has still
        grown to four times ``restart_frames``, RESTART waits briefly for the other writers and
        readers (``RESTART_WAIT_MS``; it reports busy instead of waiting longer) and holds them
        off while it completes. Either way at most once per pass of the thread, which alone asks
        again. A failure is logged: the request goes on either way."""
        stuck = self.last is not None and self.last[1] >= 4 * self.restart_frames
        try:
            if stuck:
                conn.execute(f"PRAGMA busy_timeout={RESTART_WAIT_MS}")
            self.checkpoint(conn, "RESTART" if stuck else "PASSIVE")
        except sqlite3.Error:
            logger.warning("SQLite checkpoint before a capture transaction failed", exc_info=True)
        finally:
            self.restart_wanted = False

    def _pass(self, conn: sqlite3.Connection | None) -> sqlite3.Connection | None:
        """One checkpoint; the connection to use next time (None: open a new one)."""
        try:
            if conn is None:
                # mode=rw: never create an empty database where the app's file is missing.
                conn = sqlite3.connect(
                    f"file:{urllib.parse.quote(self.database)}?mode=rw", uri=True, timeout=0
                )
            self._thread_pass(conn)
            return conn
        except Exception:  # the thread must outlive any failure; the next pass retries
            logger.warning("SQLite checkpoint failed; again in %s s", self.interval, exc_info=True)
            if conn is not None:
                conn.close()
            return None

    def _loop(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while not self._stop.wait(self.interval):
                conn = self._pass(conn)
            conn = self._pass(conn)  # what the last interval wrote
        finally:
            if conn is not None:
                conn.close()


class SqliteCapture:
    """The embedded database: the same decisions, on a dedicated sqlite3 connection.

    SQLite has one writer at a time. Capture requests take turns on an asyncio lock (first
    come, first served) and run on the event loop itself: the statements are in-process calls
    of a few tens of microseconds, cheaper than a thread hand-off. If another connection (a
    portal write, the worker) holds the write lock at that moment, ``BEGIN IMMEDIATE`` fails at
    once and the request waits for the lock in a worker thread instead, with the usual busy
    timeout, so the event loop never blocks on it. Measured: docs/performance.md.
    """

    def __init__(self, engine: Engine, checkpoint_interval_seconds: float = 1.0) -> None:
        self.engine = engine
        self._turn: asyncio.Lock | None = None
        self._conn: sqlite3.Connection | None = None
        self._checkpointer = WalCheckpointer(self._database(), checkpoint_interval_seconds)
        #: The capture connection's automatic checkpoints are off (the thread does them).
        self._auto_off = False

    def _database(self) -> str:
        database = self.engine.url.database
        assert database, "create_capture() keeps in-memory databases on the session path"
        return database

    def _automatic_checkpoints(self, conn: sqlite3.Connection, on: bool) -> None:
        pages = SQLITE_AUTOCHECKPOINT_PAGES if on else 0
        conn.execute(f"PRAGMA wal_autocheckpoint={pages}")
        self._auto_off = not on

    async def open(self) -> None:
        self._turn = asyncio.Lock()
        self._checkpointer.start()
        if self._conn is not None:
            self._automatic_checkpoints(self._conn, on=False)

    async def close(self) -> None:
        turn = self._turn or asyncio.Lock()
        async with turn:  # no capture transaction (nor a thread using the connection) meanwhile
            try:
                await anyio.to_thread.run_sync(self._checkpointer.stop)
            finally:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                    self._auto_off = False
                self._turn = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(
                self._database(), timeout=SQLITE_BUSY_TIMEOUT_MS / 1000, check_same_thread=False
            )
            sqlite_on_connect(conn, None)
            self._conn = conn
            if self._checkpointer.running:
                self._automatic_checkpoints(conn, on=False)
        return self._conn

    async def _in_turn(self, *args: Any) -> JSONResponse:
        if self._turn is None:
            self._turn = asyncio.Lock()
        async with self._turn:
            conn = self._connection()
            if self._auto_off and not self._checkpointer.running:
                # The thread has stopped (the lifespan ended): SQLite's own checkpoints again.
                self._automatic_checkpoints(conn, on=True)
            if self._checkpointer.restart_wanted:
                # No capture transaction runs meanwhile: the checkpoint completes, and the next
                # transaction starts the log from its beginning (WalCheckpointer).
                await anyio.to_thread.run_sync(self._checkpointer.rewind, conn)
            try:
                response: JSONResponse = self._run(conn, False, *args)
            except _Busy:
                response = await anyio.to_thread.run_sync(self._run, conn, True, *args)
        return response

    def _run(
        self,
        conn: sqlite3.Connection,
        wait: bool,
        principal: ParticipantPrincipal,
        ids: list[uuid.UUID],
        key: str | None,
        decide: Callable[[Snapshot, Any], Decision],
    ) -> Any:
        conn.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS if wait else 0}")
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if not wait and "locked" in str(exc):
                raise _Busy from exc
            raise
        try:
            params = {
                "participant_id": principal.participant_id,
                "family_id": principal.family_id,
                "client_ids": json.dumps([i.hex for i in ids]),
                "key": key,
            }
            found = conn.execute(_SQLITE_READ.sql, _SQLITE_READ.params(params)).fetchall()
            snapshot = _snapshot_of(_SQLITE_READ, found)
            participant = snapshot.participant
            if participant is not None and (
                studies_service.cached_definition(participant.protocol_version_id) is None
            ):
                params = _SQLITE_PROTOCOL.params({"id": participant.protocol_version_id})
                for found in conn.execute(_SQLITE_PROTOCOL.sql, params):
                    studies_service.remember_definition(_SQLITE_PROTOCOL.decode(found)[0])
            decision = decide(
                snapshot, lambda p: studies_service.cached_definition(p.protocol_version_id)
            )
            if decision.idempotency_delete is not None:
                conn.execute(
                    "DELETE FROM idempotency_record WHERE id = ?",
                    (decision.idempotency_delete.hex,),
                )
            parts = list(decision.rows)
            if decision.idempotency_insert is not None:
                parts.append((_IDEMPOTENCY_TABLE, [decision.idempotency_insert]))
            for table, rows in parts:
                if table is _VERSION_TABLE:
                    rows = [{**row, "txid": 0} for row in rows]
                rawsql.insert_many(conn, table, rows)
            for followup in decision.followups:
                # SQLite: this connection already holds the one write lock (BEGIN IMMEDIATE).
                results = []
                for read in followup.reads:
                    query = read.queries["sqlite"]
                    found = conn.execute(query.sql, query.params(read.params)).fetchall()
                    results.append([query.decode(row) for row in found])
                write = followup.finish(results)
                for table, rows in write.parts:
                    rawsql.insert_many(conn, table, rows)
                for update in write.updates:
                    statement = update.statements["sqlite"]
                    conn.execute(statement.sql, statement.params(update.params))
            _fault("before_commit", decision)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        _fault("after_commit", decision)
        return decision.response

    async def entry(
        self, principal: ParticipantPrincipal, raw: dict[str, Any], key: str | None
    ) -> JSONResponse:
        return await self._in_turn(
            principal,
            client_ids([raw]),
            key,
            lambda snapshot, protocols: decide_entry(snapshot, protocols, raw, key),
        )

    async def sync(self, principal: ParticipantPrincipal, raws: list[Any]) -> JSONResponse:
        return await self._in_turn(
            principal,
            client_ids(raws),
            None,
            lambda snapshot, protocols: decide_sync(snapshot, protocols, raws),
        )


def create_capture(settings: Settings, engine: Engine) -> Capture:
    """PostgreSQL: the pipelined path, with its own pool (opened by the app's lifespan, since
    it needs the running event loop); any other database: the session path."""
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        return SqliteCapture(engine, settings.sqlite_checkpoint_interval_seconds)
    if engine.dialect.name != "postgresql":
        return SessionCapture(ThreadUnitOfWork(engine_sessions(engine)))
    kwargs = rawsql.connect_kwargs(settings, engine.url)

    def new_pool() -> AsyncConnectionPool[Any]:
        return AsyncConnectionPool(
            # Autocommit: a single entry's read and its one INSERT statement need no
            # BEGIN/COMMIT round trips; batches open a transaction for their bulk INSERTs.
            kwargs={**kwargs, "autocommit": True},
            min_size=1,
            max_size=settings.database_pool_size,
            timeout=POOL_TIMEOUT_SECONDS,
            reconnect_timeout=POOL_RECONNECT_SECONDS,
            open=False,
            name="mgdiary-capture",
        )

    return PostgresCapture(new_pool)


async def get_capture(request: Request) -> Capture:
    # async: a sync dependency would cost a thread hop.
    capture: Capture = request.app.state.capture
    return capture


CaptureDep = Annotated[Capture, Depends(get_capture)]
