"""Diary capture's production paths (app/diary/capture.py) on a database where requests really
commit: PostgreSQL through psycopg (one read and one write statement, or COPY), SQLite through
sqlite3 in one thread hop.

Everything else in the suite runs capture through the session path on a rolled-back test
transaction; these tests prove the production path stores, deduplicates, replays, keeps
conflicts, rolls back on a fault and refuses the participants the session path refuses.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app.audit.models import AuditEvent
from app.core import rawsql
from app.core.config import get_settings
from app.diary import service as diary_service
from app.diary.capture import PostgresCapture, SqliteCapture
from app.diary.models import DiaryConflict, DiaryEntry, DiaryEntryVersion, StepInterval
from app.main import create_app
from app.participants.models import Participant
from tests.conftest import IS_POSTGRES
from tests.factories import bearer, create_participant, create_study, participant_token
from tests.scratch_database import scratch_engines


@pytest.fixture(scope="module")
def scratch_engine() -> Iterator[Engine]:
    with scratch_engines(1) as (engine,):
        yield engine


@pytest.fixture
def client(scratch_engine: Engine) -> Iterator[TestClient]:
    app = create_app(get_settings(), engine=scratch_engine)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def participant(scratch_engine: Engine) -> Participant:
    with Session(scratch_engine, expire_on_commit=False) as session:
        study, sites = create_study(session)
        participant, _ = create_participant(
            session, study=study, site=sites["X"], enrolled_on=datetime.now(UTC).date()
        )
        session.commit()
    return participant


def _entry(**data: Any) -> dict[str, Any]:
    recorded = datetime.now(UTC) - timedelta(minutes=5)
    return {
        "id": str(uuid.uuid4()),
        "kind": "vitals",
        "recorded_at": recorded.isoformat(),
        "time_zone": "Europe/Berlin",
        "data": data or {"temperature_c": 37.1, "heart_rate_bpm": 72},
    }


def _stored(engine: Engine, participant: Participant) -> tuple[int, int, int]:
    with Session(engine) as session:
        entries = session.exec(
            select(func.count())
            .select_from(DiaryEntry)
            .where(DiaryEntry.participant_id == participant.id)
        ).one()
        versions = session.exec(
            select(func.count())
            .select_from(DiaryEntryVersion)
            .where(DiaryEntryVersion.participant_id == participant.id)
        ).one()
        audits = session.exec(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.participant_id == participant.id)
        ).one()
    return entries, versions, audits


def test_the_production_path_is_the_one_this_database_calls_for(
    client: TestClient, scratch_engine: Engine
) -> None:
    capture = client.app.state.capture  # type: ignore[attr-defined]
    if scratch_engine.dialect.name == "postgresql":
        assert isinstance(capture, PostgresCapture)
    else:
        assert isinstance(capture, SqliteCapture)


def test_an_acknowledged_entry_and_batch_are_committed(
    client: TestClient, scratch_engine: Engine, participant: Participant
) -> None:
    headers = bearer(participant_token(participant))
    _, _, audits_before = _stored(scratch_engine, participant)
    single = _entry()
    created = client.post("/app/v1/diary/entries", json=single, headers=headers)
    assert created.status_code == 201, created.text
    again = client.post("/app/v1/diary/entries", json=single, headers=headers)
    assert again.status_code == 200
    assert again.json() == created.json()

    batch = [_entry() for _ in range(20)] + [single]
    synced = client.post("/app/v1/diary/sync", json={"entries": batch}, headers=headers)
    assert synced.status_code == 200, synced.text
    statuses = [r["status"] for r in synced.json()["results"]]
    assert statuses == ["created"] * 20 + ["duplicate"]
    # The duplicate answers with the stored entry, decoded from the database as it was stored.
    assert synced.json()["results"][-1]["entry"] == created.json()
    # Read back on other connections: committed, once each, one audit row per entry.
    assert _stored(scratch_engine, participant) == (21, 21, audits_before + 21)


@pytest.mark.parametrize(
    "entries",
    [5, 30],
    ids=["one statement", "bulk: a JSON insert per table in one pipelined transaction"],
)
def test_a_server_fault_mid_batch_commits_nothing(
    client: TestClient,
    scratch_engine: Engine,
    participant: Participant,
    monkeypatch: pytest.MonkeyPatch,
    entries: int,
) -> None:
    headers = bearer(participant_token(participant))
    before = _stored(scratch_engine, participant)
    staged = diary_service.Ingestor.staged
    calls = {"n": 0}

    def poisoned(self: diary_service.Ingestor) -> list[Any]:
        rows = staged(self)
        calls["n"] += 1
        # The last table's rows break a constraint: the earlier inserts went out, then fail.
        table, last = rows[-1]
        return [*rows, (table, [dict(last[0])])]

    monkeypatch.setattr(diary_service.Ingestor, "staged", poisoned)
    bulk = {"n": 0}
    insert_json = rawsql.insert_json

    async def counted(*args: Any) -> None:
        bulk["n"] += 1
        await insert_json(*args)

    monkeypatch.setattr(rawsql, "insert_json", counted)
    response = client.post(
        "/app/v1/diary/sync", json={"entries": [_entry() for _ in range(entries)]}, headers=headers
    )
    assert calls["n"] == 1
    # PostgreSQL: the larger batch went the bulk way (the poisoned last table's insert fails).
    assert (bulk["n"] > 0) == (IS_POSTGRES and entries == 30)
    assert response.status_code == 409
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "Traceback" not in response.text
    # ... and rolled back: nothing of the batch is stored.
    assert _stored(scratch_engine, participant) == before


def test_a_withdrawn_participant_is_refused_on_the_production_path(
    client: TestClient, scratch_engine: Engine, participant: Participant
) -> None:
    with Session(scratch_engine) as session:
        row = session.get(Participant, participant.id)
        assert row is not None
        row.status = "withdrawn"
        session.add(row)
        session.commit()
    response = client.post(
        "/app/v1/diary/entries", json=_entry(), headers=bearer(participant_token(participant))
    )
    assert response.status_code == 403
    assert response.json()["code"] == "participant_withdrawn"


def test_idempotency_key_replay_and_reuse_on_the_production_path(
    client: TestClient, scratch_engine: Engine, participant: Participant
) -> None:
    headers = {**bearer(participant_token(participant)), "Idempotency-Key": "key-1"}
    body = _entry()
    first = client.post("/app/v1/diary/entries", json=body, headers=headers)
    assert first.status_code == 201, first.text
    replay = client.post("/app/v1/diary/entries", json=body, headers=headers)
    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == first.json()
    reused = client.post("/app/v1/diary/entries", json=_entry(), headers=headers)
    assert reused.status_code == 422
    assert reused.json()["code"] == "idempotency_key_reused"
    assert _stored(scratch_engine, participant)[0] == 1


def test_a_conflicting_entry_is_kept_for_review_on_the_production_path(
    client: TestClient, scratch_engine: Engine, participant: Participant
) -> None:
    headers = bearer(participant_token(participant))
    body = _entry()
    assert client.post("/app/v1/diary/entries", json=body, headers=headers).status_code == 201
    changed = {**body, "data": {"temperature_c": 38.4, "heart_rate_bpm": 90}}
    conflict = client.post("/app/v1/diary/entries", json=changed, headers=headers)
    assert conflict.status_code == 409
    assert conflict.json()["code"] == "entry_conflict"
    with Session(scratch_engine) as session:
        kept = session.exec(
            select(DiaryConflict).where(DiaryConflict.participant_id == participant.id)
        ).all()
    assert [c.client_entry_id for c in kept] == [uuid.UUID(body["id"])]
    assert kept[0].payload["data"]["temperature_c"] == 38.4


def test_an_invalid_entry_stores_nothing_on_the_production_path(
    client: TestClient, scratch_engine: Engine, participant: Participant
) -> None:
    headers = bearer(participant_token(participant))
    before = _stored(scratch_engine, participant)
    bad = client.post("/app/v1/diary/entries", json=_entry(temperature_c=60.0), headers=headers)
    assert bad.status_code == 422
    assert "temperature_c" in str(bad.json()["errors"])
    assert _stored(scratch_engine, participant) == before


def test_a_day_of_intraday_steps_is_stored_whole(
    client: TestClient, scratch_engine: Engine, participant: Participant
) -> None:
    """1,440 one-minute samples: the bulk path (COPY on PostgreSQL) stores every one."""
    headers = bearer(participant_token(participant))
    zone = ZoneInfo("Europe/Berlin")
    today = datetime.now(zone).date()
    midnight = datetime(today.year, today.month, today.day, tzinfo=zone)
    samples = [
        {
            "start": (midnight + timedelta(minutes=m)).isoformat(),
            "end": (midnight + timedelta(minutes=m + 1)).isoformat(),
            "count": m % 7,
        }
        for m in range(1440)
    ]
    body = {
        **_entry(),
        "kind": "steps",
        "data": {
            "date": today.isoformat(),
            "count": sum(s["count"] for s in samples),
            "source": "healthkit:iphone",
            "intervals": samples,
        },
    }
    created = client.post("/app/v1/diary/entries", json=body, headers=headers)
    assert created.status_code == 201, created.text
    with Session(scratch_engine) as session:
        stored = session.exec(
            select(StepInterval.count, StepInterval.start_at)
            .join(DiaryEntryVersion, col(DiaryEntryVersion.id) == StepInterval.version_id)
            .where(DiaryEntryVersion.participant_id == participant.id)
            .order_by(col(StepInterval.start_at))
        ).all()
    assert [count for count, _ in stored] == [s["count"] for s in samples]
    assert stored[0][1] == midnight.astimezone(UTC)


def test_sqlite_capture_waits_for_another_writer_without_failing(
    client: TestClient, scratch_engine: Engine, participant: Participant
) -> None:
    """Another connection holds SQLite's write lock: the capture request waits for it (in a
    worker thread, not on the event loop) and then stores the entry."""
    if scratch_engine.dialect.name != "sqlite":
        pytest.skip("SQLite's single-writer lock")
    database = scratch_engine.url.database
    assert database
    other = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.5, lambda: other.execute("COMMIT"))
    release.start()
    try:
        started = time.monotonic()
        response = client.post(
            "/app/v1/diary/entries", json=_entry(), headers=bearer(participant_token(participant))
        )
        waited = time.monotonic() - started
    finally:
        release.join()
        other.close()
    assert response.status_code == 201, response.text
    assert waited >= 0.4


def _checkpointing_app(scratch_engine: Engine, interval: float) -> Any:
    app = create_app(
        get_settings().model_copy(update={"sqlite_checkpoint_interval_seconds": interval}),
        engine=scratch_engine,
    )
    assert isinstance(app.state.capture, SqliteCapture)
    return app


def test_sqlite_capture_never_checkpoints_inside_a_commit_and_rewinds_a_long_log(
    scratch_engine: Engine, participant: Participant
) -> None:
    """While the checkpointer runs, capture commits only append to the log (no checkpoint
    inside a commit, on the event loop); when the checkpointer asks for it, the capture path
    completes a checkpoint between two transactions and the log starts again from its
    beginning, so it stops growing (measured before the rewind: 1.5 GB after 12,000 entries).
    Closing hands checkpoints back to SQLite."""
    if scratch_engine.dialect.name != "sqlite":
        pytest.skip("SQLite's write-ahead log")
    database = scratch_engine.url.database
    assert database
    wal = f"{database}-wal"
    app = _checkpointing_app(scratch_engine, interval=3600)  # the thread never takes a pass
    capture = app.state.capture
    headers = bearer(participant_token(participant))

    def post(count: int) -> int:
        for _ in range(count):
            response = client.post("/app/v1/diary/entries", json=_entry(), headers=headers)
            assert response.status_code == 201, response.text
        return os.path.getsize(wal)

    with TestClient(app, raise_server_exceptions=False) as client:
        assert capture._checkpointer.running
        start = post(1)
        assert capture._conn.execute("PRAGMA wal_autocheckpoint").fetchall() == [(0,)]
        grown = post(30)
        assert grown > start  # appended, never copied back inside a commit
        capture._checkpointer.restart_wanted = True
        after = post(30)
        assert not capture._checkpointer.restart_wanted
        assert capture._checkpointer.runs == 1
        assert after == grown  # the 30 new entries overwrote the log from its start
    assert not capture._checkpointer.running
    assert capture._conn is None
    assert _stored(scratch_engine, participant)[0] == 61


def test_the_checkpointer_thread_copies_the_log_and_asks_for_a_rewind(
    scratch_engine: Engine, participant: Participant
) -> None:
    if scratch_engine.dialect.name != "sqlite":
        pytest.skip("SQLite's write-ahead log")
    app = _checkpointing_app(scratch_engine, interval=0.01)
    capture = app.state.capture
    capture._checkpointer.restart_frames = 1
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post(
            "/app/v1/diary/entries", json=_entry(), headers=bearer(participant_token(participant))
        )
        assert response.status_code == 201, response.text
        deadline = time.monotonic() + 5
        while not capture._checkpointer.restart_wanted and time.monotonic() < deadline:
            time.sleep(0.01)
        assert capture._checkpointer.restart_wanted
        assert capture._checkpointer.runs > 0
        busy, frames, copied = capture._checkpointer.last
        assert busy == 0
        assert frames >= 1
        assert copied == frames


def test_a_failing_checkpoint_is_logged_and_retried(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from app.diary.capture import WalCheckpointer

    checkpointer = WalCheckpointer(str(tmp_path / "none" / "db.sqlite3"), interval=0.01)
    checkpointer.start()
    time.sleep(0.05)
    checkpointer.stop()
    assert not checkpointer.running
    assert caplog.text.count("SQLite checkpoint failed") >= 2  # retried, thread alive


def _checkpoint_modes(checkpointer: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The modes of the checkpoints ``checkpointer`` runs from now on, in order."""
    modes: list[str] = []
    real = checkpointer.checkpoint

    def spy(conn: sqlite3.Connection, mode: str = "PASSIVE") -> None:
        modes.append(mode)
        real(conn, mode)

    monkeypatch.setattr(checkpointer, "checkpoint", spy)
    return modes


def test_a_log_that_passive_checkpoints_cannot_rewind_gets_a_restart_checkpoint(
    scratch_engine: Engine,
    participant: Participant,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Another process writing the same file can keep a passive checkpoint from ever
    completing; once the log is four times the rewind length the capture path asks for RESTART
    (which waits for the other writers and then rewinds). A failed checkpoint there is logged
    and never fails the request it precedes."""
    if scratch_engine.dialect.name != "sqlite":
        pytest.skip("SQLite's write-ahead log")
    app = _checkpointing_app(scratch_engine, interval=3600)
    checkpointer = app.state.capture._checkpointer
    modes = _checkpoint_modes(checkpointer, monkeypatch)
    headers = bearer(participant_token(participant))
    with TestClient(app, raise_server_exceptions=False) as client:

        def post() -> None:
            response = client.post("/app/v1/diary/entries", json=_entry(), headers=headers)
            assert response.status_code == 201, response.text

        post()
        checkpointer.last = (0, checkpointer.restart_frames, 0)
        checkpointer.restart_wanted = True
        post()
        checkpointer.last = (0, 4 * checkpointer.restart_frames, 0)
        checkpointer.restart_wanted = True
        post()
        assert modes == ["PASSIVE", "RESTART"]
        assert checkpointer.last is not None
        assert checkpointer.last[0] == 0  # not busy: the log is all in the database file

        def broken(conn: sqlite3.Connection, mode: str = "PASSIVE") -> None:
            raise sqlite3.OperationalError("disk I/O error")

        monkeypatch.setattr(checkpointer, "checkpoint", broken)
        checkpointer.restart_wanted = True
        post()
        assert "checkpoint before a capture transaction failed" in caplog.text
    assert _stored(scratch_engine, participant)[0] == 4


def test_a_restart_checkpoint_that_finds_a_reader_waits_briefly_and_once(
    scratch_engine: Engine, participant: Participant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader holding the log keeps RESTART from completing: it gives up after
    RESTART_WAIT_MS (busy) instead of the 15 s busy timeout, and is not tried again before the
    thread's next pass asks for it."""
    if scratch_engine.dialect.name != "sqlite":
        pytest.skip("SQLite's write-ahead log")
    database = scratch_engine.url.database
    assert database
    app = _checkpointing_app(scratch_engine, interval=3600)
    checkpointer = app.state.capture._checkpointer
    modes = _checkpoint_modes(checkpointer, monkeypatch)
    headers = bearer(participant_token(participant))
    reader = sqlite3.connect(database, isolation_level=None)
    with TestClient(app, raise_server_exceptions=False) as client:

        def post() -> float:
            started = time.monotonic()
            response = client.post("/app/v1/diary/entries", json=_entry(), headers=headers)
            assert response.status_code == 201, response.text
            return time.monotonic() - started

        post()
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM diary_entry").fetchall()  # holds a snapshot
        post()  # a frame the reader's snapshot does not have
        checkpointer.last = (0, 4 * checkpointer.restart_frames, 0)
        checkpointer.restart_wanted = True
        waited = post()
        again = post()
        reader.execute("COMMIT")
        reader.close()
    assert modes[:1] == ["RESTART"]
    assert modes.count("RESTART") == 1
    assert checkpointer.last is not None
    assert waited < 5
    assert again < 5


def test_the_capture_connection_checkpoints_itself_when_the_thread_is_gone(
    scratch_engine: Engine, participant: Participant
) -> None:
    if scratch_engine.dialect.name != "sqlite":
        pytest.skip("SQLite's write-ahead log")
    app = _checkpointing_app(scratch_engine, interval=3600)
    capture = app.state.capture
    headers = bearer(participant_token(participant))
    with TestClient(app, raise_server_exceptions=False) as client:

        def post() -> int:
            return client.post("/app/v1/diary/entries", json=_entry(), headers=headers).status_code

        assert post() == 201
        assert capture._conn.execute("PRAGMA wal_autocheckpoint").fetchall() == [(0,)]
        capture._checkpointer.stop()  # as if the thread had died
        assert post() == 201
        assert capture._conn.execute("PRAGMA wal_autocheckpoint").fetchall() == [(1000,)]
