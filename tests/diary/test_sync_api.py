"""Offline sync: a batch of up to 500 mixed entries, per-item results, each entry exactly once."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func
from sqlalchemy.engine import Connection
from sqlmodel import Session, col, select

from app.audit.models import AuditEvent
from app.diary.models import DiaryConflict, DiaryEntry
from app.diary.schemas import MAX_SYNC_ENTRIES
from tests.diary.conftest import World
from tests.diary.diary_helpers import (
    ENTRIES,
    SYNC,
    audit_events,
    conflicts,
    count_entries,
    count_versions,
    entry,
    mg_adl,
    sync,
)
from tests.problem_helpers import assert_problem

KINDS = ("mg_adl", "vitals", "symptoms", "medication_dose", "steps", "note")


def _new(i: int) -> dict[str, Any]:
    kind = KINDS[i % len(KINDS)]
    if kind == "note":
        return entry("note", {"text": f"note {i}"})
    if kind == "steps":
        return entry("steps", {"date": "2026-11-21", "count": 1000 + i, "source": f"src{i}"})
    return entry(kind)


def _invalid(i: int) -> Any:
    variants: list[Any] = [
        entry("mg_adl", mg_adl(talking=4)),
        entry("note", {"text": "hi"}, recorded_at="2026-11-30T08:00:00+01:00"),  # future
        entry("note", {"text": "hi"}, recorded_at="2025-12-24T08:00:00+01:00"),  # pre-enrolment
        {**entry("note"), "kind": "diet"},
        {**entry("note"), "id": "not-a-uuid"},
        {k: v for k, v in entry("note").items() if k != "id"},
        entry("vitals", {}),
        entry("note", time_zone="Europe/Atlantis"),
    ]
    return variants[i % len(variants)]


def _expected(batch: list[Any], stored: dict[str, dict[str, Any]]) -> list[str]:
    """What the server must answer per item, walking the batch in order."""
    known = dict(stored)
    statuses = []
    for item in batch:
        if item.get("_invalid"):
            statuses.append("invalid")
            continue
        previous = known.get(item["id"])
        if previous is None:
            known[item["id"]] = item
            statuses.append("created")
        elif previous == item:
            statuses.append("duplicate")
        else:
            statuses.append("conflict")
    return statuses


def test_a_500_entry_batch_gives_per_item_results_in_order_and_stores_each_entry_once(
    client: TestClient, session: Session, world: World
) -> None:
    alice = world.alice
    pid = alice.participant.id
    already = [_new(i) for i in range(22)]
    assert {r["status"] for r in sync(client, alice.headers, already)} == {"created"}
    stored = {e["id"]: e for e in already}

    rng = random.Random(20261122)
    new = [_new(i) for i in range(1000, 1400)]  # 400 new entries of all kinds
    items: list[Any] = list(new)
    items += [dict(e) for e in already[:20]]  # 20 re-sent, already stored
    items += [{**e, "recorded_at": "2026-11-22T09:45:00+01:00"} for e in already[20:22]]
    invalid = [{**_invalid(i), "_invalid": True} for i in range(37)]
    items += invalid
    rng.shuffle(items)
    # 40 repeats inside the batch and one changed copy, each after its original.
    repeats = rng.sample(new, 40)
    for original in repeats:
        position = items.index(original)
        items.insert(rng.randint(position + 1, len(items)), dict(original))
    changed = {**new[0], "recorded_at": "2026-11-22T09:15:00+01:00"}
    items.insert(items.index(new[0]) + 1, changed)
    assert len(items) == MAX_SYNC_ENTRIES

    expected = _expected(items, stored)
    assert expected.count("created") == 400
    assert expected.count("duplicate") == 60
    assert expected.count("conflict") == 3
    assert expected.count("invalid") == 37

    payload = [{k: v for k, v in item.items() if k != "_invalid"} for item in items]
    started = time.perf_counter()
    response = client.post(SYNC, json={"entries": payload}, headers=alice.headers)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == expected
    for sent, result in zip(payload, results, strict=True):
        assert result["id"] == (str(sent["id"]) if "id" in sent else None)
        if result["status"] == "invalid":
            assert result["errors"], result
        if result["status"] in ("created", "duplicate"):
            assert result["entry"]["id"] == sent["id"]
            assert result["entry"]["kind"] == sent["kind"]
    # A duplicate answers with the stored entry, identical to the answer that created it.
    first_answer = {}
    for result in results:
        if result["status"] == "created":
            first_answer[result["id"]] = result["entry"]
        elif result["status"] == "duplicate" and result["id"] in first_answer:
            assert result["entry"] == first_answer[result["id"]]

    assert count_entries(session, pid) == 22 + 400
    assert count_versions(session, pid) == 22 + 400
    assert len(conflicts(session, pid)) == 3
    assert len(audit_events(session, pid, "diary_entry.create")) == 22 + 400
    assert elapsed < 5, f"a full batch took {elapsed:.1f} s"


def test_501_entries_are_refused_as_a_whole_naming_the_limit(
    client: TestClient, session: Session, world: World
) -> None:
    batch = [entry("note", {"text": f"n{i}"}) for i in range(MAX_SYNC_ENTRIES + 1)]
    response = client.post(SYNC, json={"entries": batch}, headers=world.alice.headers)
    body = assert_problem(response, 422)
    texts = [body.get("detail") or ""] + [e["msg"] for e in body.get("errors") or []]
    assert any(str(MAX_SYNC_ENTRIES) in t for t in texts), body
    assert count_entries(session, world.alice.participant.id) == 0


def test_one_bad_entry_never_rejects_the_others(
    client: TestClient, session: Session, world: World
) -> None:
    batch = [
        entry("note", {"text": "ok 1"}),
        entry("mg_adl", mg_adl(eyelid_droop=-1)),
        entry("note", {"text": "ok 2"}),
    ]
    results = sync(client, world.alice.headers, batch)
    assert [r["status"] for r in results] == ["created", "invalid", "created"]
    assert results[1]["errors"][0]["loc"] == ["data", "eyelid_droop"]
    assert count_entries(session, world.alice.participant.id) == 2


@pytest.mark.parametrize("bad", [None, 42, "entry", ["a"]])
def test_an_item_that_is_not_an_object_is_invalid_alone(
    client: TestClient, session: Session, world: World, bad: Any
) -> None:
    response = client.post(
        SYNC,
        json={"entries": [entry("note", {"text": "a"}), bad, entry("note", {"text": "b"})]},
        headers=world.alice.headers,
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["created", "invalid", "created"]
    assert results[1]["id"] is None
    assert results[1]["errors"], results[1]
    assert count_entries(session, world.alice.participant.id) == 2


def test_an_empty_batch_is_fine(client: TestClient, world: World) -> None:
    response = client.post(SYNC, json={"entries": []}, headers=world.alice.headers)
    assert response.status_code == 200
    assert response.json() == {"results": []}


@pytest.mark.parametrize(
    "body",
    [{}, {"entries": {}}, {"entries": [], "device": "x"}, []],
)
def test_a_malformed_sync_body_is_422(client: TestClient, world: World, body: Any) -> None:
    response = client.post(SYNC, json=body, headers=world.alice.headers)
    assert_problem(response, 422)


def test_same_id_twice_in_one_batch_with_other_content_is_a_conflict(
    client: TestClient, session: Session, world: World
) -> None:
    first = entry("note", {"text": "first"})
    second = {**first, "data": {"text": "second"}}
    results = sync(client, world.alice.headers, [first, second])
    assert [r["status"] for r in results] == ["created", "conflict"]
    assert results[1]["entry"] is None
    (conflict,) = conflicts(session, world.alice.participant.id)
    assert conflict.payload["data"] == {"text": "second"}
    read = client.get(f"{ENTRIES}/{first['id']}", headers=world.alice.headers)
    assert read.json()["data"] == {"text": "first"}


# --- replays after a crash -------------------------------------------------------------------


def _batch(n: int) -> list[dict[str, Any]]:
    return [_new(i) for i in range(n)]


def test_the_same_batch_sent_again_is_all_duplicate_with_one_audit_row_per_entry(
    client: TestClient, session: Session, world: World
) -> None:
    """The phone lost the answer (app killed, network dropped) and sends the batch again."""
    alice = world.alice
    pid = alice.participant.id
    batch = _batch(30)
    first = sync(client, alice.headers, batch)
    assert {r["status"] for r in first} == {"created"}
    counts = (count_entries(session, pid), count_versions(session, pid))

    second = sync(client, alice.headers, batch)
    assert [r["status"] for r in second] == ["duplicate"] * 30
    assert [r["entry"] for r in second] == [r["entry"] for r in first]
    assert (count_entries(session, pid), count_versions(session, pid)) == counts == (30, 30)

    creates = audit_events(session, pid, "diary_entry.create")
    assert sorted(e.entity_id for e in creates) == sorted(e["id"] for e in batch)
    assert {e.actor_type for e in creates} == {"participant"}
    assert {e.actor_id for e in creates} == {alice.id}


@pytest.fixture
def crash_on_nth_audit_insert(connection: Connection) -> Iterator[dict[str, int]]:
    """Make the database fail at the n-th audit insert (``state["at"]``), like a crash mid-batch."""
    state = {"at": 0, "seen": 0}

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if state["at"] and statement.lstrip().upper().startswith("INSERT INTO AUDIT_EVENT"):
            state["seen"] += 1
            if state["seen"] == state["at"]:
                raise RuntimeError("simulated crash")

    event.listen(connection, "before_cursor_execute", before)
    yield state
    event.remove(connection, "before_cursor_execute", before)


def test_a_batch_that_crashes_midway_stores_nothing_and_its_resend_stores_everything_once(
    client: TestClient,
    session: Session,
    world: World,
    crash_on_nth_audit_insert: dict[str, int],
) -> None:
    alice = world.alice
    pid = alice.participant.id
    batch = _batch(12)
    # The batch's audit rows are written in one statement after its entries and versions:
    # failing it crashes the request with every entry row already sent to the database.
    crash_on_nth_audit_insert["at"] = 1
    crashed = client.post(SYNC, json={"entries": batch}, headers=alice.headers)
    assert_problem(crashed, 500)
    assert crash_on_nth_audit_insert["seen"] == 1
    # Nothing of the half-done batch is visible: no entry, version or audit row.
    assert count_entries(session, pid) == 0
    assert count_versions(session, pid) == 0
    assert audit_events(session, pid, "diary_entry.create") == []

    crash_on_nth_audit_insert["at"] = 0
    results = sync(client, alice.headers, batch)
    assert [r["status"] for r in results] == ["created"] * 12
    again = sync(client, alice.headers, batch)
    assert [r["status"] for r in again] == ["duplicate"] * 12
    assert count_entries(session, pid) == 12
    assert len(audit_events(session, pid, "diary_entry.create")) == 12


def test_the_same_batch_from_two_participants_is_stored_for_each(
    client: TestClient, session: Session, world: World
) -> None:
    """Entry ids are unique per participant: the same UUIDs from another phone are not dups."""
    batch = _batch(6)
    assert {r["status"] for r in sync(client, world.alice.headers, batch)} == {"created"}
    assert {r["status"] for r in sync(client, world.bob.headers, batch)} == {"created"}
    session.expire_all()
    total = session.exec(
        select(func.count())
        .select_from(DiaryEntry)
        .where(col(DiaryEntry.client_entry_id).in_([uuid.UUID(e["id"]) for e in batch]))
    ).one()
    assert total == 12
    assert session.exec(select(func.count()).select_from(DiaryConflict)).one() == 0
    assert (
        session.exec(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "diary_entry.conflict")
        ).one()
        == 0
    )


def test_the_capture_responses_equal_the_validated_entry_model(
    client: TestClient, world: World, session: Session
) -> None:
    """The capture paths build their response entries with ``queries.entry_values`` (plain
    values, no model) written by ``ValuesResponse``; that JSON must be what ``to_out``
    (validated) gives, for every kind, every zone offset and both stored and just-created
    rows."""
    from app.core.responses import ValuesResponse
    from app.diary import queries
    from app.diary.models import DiaryEntryVersion

    batch = [_new(i) for i in range(len(KINDS))]
    batch.append(entry("vitals", time_zone="Pacific/Chatham"))
    batch.append(entry("note", {"text": "x"}, time_zone="America/St_Johns"))
    results = sync(client, world.alice.headers, batch)
    assert [r["status"] for r in results] == ["created"] * len(batch)
    single = client.post(ENTRIES, json=entry("mg_adl"), headers=world.alice.headers)
    assert single.status_code == 201, single.text
    results.append({"id": single.json()["id"], "entry": single.json()})
    batch.append(None)
    stored = session.exec(
        select(DiaryEntry).where(DiaryEntry.participant_id == world.alice.participant.id)
    ).all()
    assert len(stored) == len(batch)
    by_id = {str(e.client_entry_id): e for e in stored}
    for result in results:
        row = by_id[result["id"]]
        version = session.exec(
            select(DiaryEntryVersion).where(DiaryEntryVersion.entry_id == row.id)
        ).one()
        expected = queries.to_out(row, version).model_dump(mode="json")
        values = queries.entry_values(row, version)
        assert json.loads(ValuesResponse(values).body) == expected
        assert result["entry"] == expected
