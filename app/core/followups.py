"""Work that must commit in the same transaction as a clinical write, asked for by a higher domain.

The safety rules (app/safety) must run on every diary entry, sync batch, correction, clinic
assessment and study-drug administration, inside the writer's transaction, so the data, the
signal and its alert commit together before the client gets its 2xx (issue 6 item 3). The
writers sit below ``safety`` in the import order (conventions.md), so they do not call it: they
describe what they wrote as ``Written`` and ask the registered ``HOOKS`` for a ``Followup``.

A follow-up is read, then decide, then write, so each write path can run it with its own driver
(psycopg on the PostgreSQL capture path, sqlite3 on the SQLite one, a session elsewhere):

1. ``lock``: the writer first takes a per-participant lock (PostgreSQL: a transaction-level
   advisory lock; SQLite serialises writers anyway), so two requests for one participant never
   decide on the same stale state (two episodes for one fever);
2. ``reads``: statements compiled once per dialect (app/core/rawsql.py) with their parameters;
3. ``finish(results)``: pure; returns the rows to insert (in foreign-key order) and the updates.

A hook returns None when nothing it cares about was written: the common case costs no reads.
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal, Protocol

import sqlalchemy as sa
from sqlmodel import Session

from app.core import rawsql


@dataclass(frozen=True)
class WrittenEntry:
    """A diary entry version (or a clinic assessment) just written."""

    entry_id: uuid.UUID
    kind: str
    recorded_at: datetime
    local_date: date
    data: Mapping[str, Any]
    source: Literal["diary", "clinic"] = "diary"


@dataclass(frozen=True)
class Written:
    """What one transaction wrote for one participant."""

    participant: Any  # app.participants.models.Participant
    protocol: Any  # app.studies.protocol.ProtocolDefinition
    entries: Sequence[WrittenEntry] = ()
    #: A study-drug administration starting on this participant-local date was recorded.
    dose_on: date | None = None


@dataclass(frozen=True)
class Read:
    queries: Mapping[str, rawsql.Query]  # by dialect name
    params: dict[str, Any]


@dataclass(frozen=True)
class Update:
    statements: Mapping[str, rawsql.Statement]  # by dialect name
    params: dict[str, Any]


@dataclass
class Write:
    parts: list[tuple[sa.Table, list[dict[str, Any]]]] = field(default_factory=list)
    updates: list[Update] = field(default_factory=list)


class Followup(Protocol):
    lock: uuid.UUID
    reads: list[Read]

    def finish(self, results: list[list[list[Any]]]) -> Write:
        """The rows to write, given each read's decoded rows (in ``reads`` order)."""
        ...


Hook = Callable[[Written], Followup | None]
#: Registered by higher domains at import time (app/safety/engine.py).
HOOKS: list[Hook] = []


class HooksNotInstalled(RuntimeError):
    """A clinical write ran in a process that never installed its follow-ups."""


def followups(written: Written) -> list[Followup]:
    if not HOOKS:
        # A write without the safety rules must fail loudly, never pass silently.
        raise HooksNotInstalled("no follow-up hooks are registered: call app.hooks.install()")
    return [f for hook in HOOKS if (f := hook(written)) is not None]


def lock_key(participant_id: uuid.UUID) -> int:
    """A signed 64-bit advisory-lock key for a participant (stable across processes)."""
    value = zlib.crc32(participant_id.bytes) | (zlib.crc32(participant_id.bytes[::-1]) << 32)
    return value - (1 << 64) if value >= (1 << 63) else value


PG_LOCK_SQL = "SELECT pg_advisory_xact_lock(%s)"


def run_on_session(session: Session, written: Written) -> Write:
    """Run every follow-up of ``written`` on the session's transaction (portal writes,
    corrections, the test suite's capture path); returns what was written."""
    total = Write()
    session.flush()  # what the writer added through the ORM, before the reads
    for followup in followups(written):
        write = run_followup(session.connection(), followup)
        total.parts += write.parts
        total.updates += write.updates
    return total


def run_followup(connection: sa.Connection, followup: Followup) -> Write:
    """Lock, read, decide and write one follow-up on a SQLAlchemy connection."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.exec_driver_sql(PG_LOCK_SQL, (lock_key(followup.lock),))
    results = []
    for read in followup.reads:
        query = read.queries[dialect]
        rows = connection.exec_driver_sql(query.sql, query.params(read.params)).all()
        results.append([query.decode(row) for row in rows])
    write = followup.finish(results)
    apply_on_connection(connection, write)
    return write


def apply_on_connection(connection: sa.Connection, write: Write) -> None:
    dialect = connection.dialect.name
    for table, rows in write.parts:
        if rows:
            connection.execute(sa.insert(table), rows)
    for update in write.updates:
        statement = update.statements[dialect]
        connection.exec_driver_sql(statement.sql, statement.params(update.params))
