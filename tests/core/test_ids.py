"""Row keys are time-ordered UUIDv7 (RFC 9562), not random UUIDv4: each insert lands at the
right edge of its primary-key index instead of on a random page (app/core/models.py new_id)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

from app.alerts.models import Alert
from app.audit.models import AuditEvent
from app.core.models import new_id
from app.core.rows import new_row
from app.diary.models import DiaryEntry, DiaryEntryVersion


def _millis(key: uuid.UUID) -> int:
    return key.int >> 80  # RFC 9562 5.7: unix_ts_ms is the first 48 bits


def test_new_ids_are_uuid7_with_the_time_in_front() -> None:
    before = int(time.time() * 1000)
    key = new_id()
    after = int(time.time() * 1000)
    assert type(key) is uuid.UUID  # the stdlib type, whatever makes it
    assert key.version == 7
    assert key.variant == uuid.RFC_4122
    assert before <= _millis(key) <= after


def test_new_ids_increase_within_one_millisecond_without_running_ahead_of_the_clock() -> None:
    """A 500-entry sync makes some 2,000 keys in a few milliseconds: they stay in order and
    unique, and their time stays the clock's (a generator that adds a millisecond per key
    would put these 50,000 ~50 s in the future)."""
    keys = [new_id() for _ in range(50_000)]
    after = int(time.time() * 1000)
    assert keys == sorted(keys, key=lambda k: k.int)
    assert len(set(keys)) == len(keys)
    assert _millis(keys[-1]) <= after


def test_table_rows_get_time_ordered_keys() -> None:
    """The models' default keys (uuid_pk, the version id) and the rows built from them."""
    rows = [
        DiaryEntry(
            participant_id=uuid.uuid4(),
            study_id=uuid.uuid4(),
            client_entry_id=uuid.uuid4(),
            kind="note",
            recorded_at=datetime.now(UTC),
            recorded_offset_minutes=0,
            time_zone="UTC",
            diary_date=datetime.now(UTC).date(),
            content_hash="x" * 64,
        ).id,
        new_row(DiaryEntryVersion, version=1).id,
        new_row(AuditEvent).id,
        new_row(Alert).id,
    ]
    assert [k.version for k in rows] == [7, 7, 7, 7]
    now = datetime.now(UTC)
    for key in rows:
        made = datetime.fromtimestamp(_millis(key) / 1000, UTC)
        assert now - timedelta(seconds=5) <= made <= now
