"""Idempotency-Key on single entries (checklist F36-F40) and offline replays after key expiry."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from fastapi.testclient import TestClient
from sqlmodel import Session

from tests.diary.conftest import World
from tests.diary.diary_helpers import (
    ENTRIES,
    NOW,
    conflicts,
    count_entries,
    entry,
    mg_adl,
    post,
    sync,
)
from tests.factories import bearer, participant_token
from tests.problem_helpers import assert_problem

REPLAYED = "Idempotent-Replayed"


def _key(headers: dict[str, str], key: str) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


def test_a_replay_with_the_same_key_and_body_returns_the_first_response(
    client: TestClient, session: Session, world: World
) -> None:
    alice = world.alice
    sent = entry("mg_adl")
    first = post(client, _key(alice.headers, "sync-7f3a"), sent)
    assert first.status_code == 201, first.text
    assert REPLAYED not in first.headers

    replay = post(client, _key(alice.headers, "sync-7f3a"), sent)
    assert replay.status_code == 201
    assert replay.headers[REPLAYED] == "true"
    assert replay.json() == first.json()
    assert count_entries(session, alice.participant.id) == 1

    # Without the key the entry id alone still deduplicates (200, same body, not a replay).
    again = post(client, alice.headers, sent)
    assert again.status_code == 200
    assert REPLAYED not in again.headers
    assert again.json() == first.json()


def test_a_replayed_error_keeps_its_status_and_problem_body(
    client: TestClient, session: Session, world: World
) -> None:
    alice = world.alice
    original = entry("note", {"text": "first"})
    assert post(client, alice.headers, original).status_code == 201
    changed = {**original, "data": {"text": "second"}}
    first = post(client, _key(alice.headers, "k-conflict"), changed)
    assert_problem(first, 409)
    replay = post(client, _key(alice.headers, "k-conflict"), changed)
    assert replay.status_code == 409
    assert replay.headers[REPLAYED] == "true"
    assert replay.headers["content-type"].startswith("application/problem+json")
    assert replay.json() == first.json()
    assert len(conflicts(session, alice.participant.id)) == 1  # the replay recorded nothing


def test_the_same_key_with_another_body_is_422_key_reused(
    client: TestClient, session: Session, world: World
) -> None:
    alice = world.alice
    first = post(client, _key(alice.headers, "k-1"), entry("note", {"text": "one"}))
    assert first.status_code == 201
    other = post(client, _key(alice.headers, "k-1"), entry("note", {"text": "two"}))
    body = assert_problem(other, 422, "idempotency_key_reused")
    assert ["header", "Idempotency-Key"] in [e["loc"] for e in body["errors"]]
    assert REPLAYED not in other.headers
    assert count_entries(session, alice.participant.id) == 1
    # The key still answers its own request.
    assert (
        post(client, _key(alice.headers, "k-1"), entry("note", {"text": "two"})).status_code == 422
    )


def test_keys_are_scoped_per_participant(
    client: TestClient, session: Session, world: World
) -> None:
    alice, bob = world.alice, world.bob
    alices = entry("note", {"text": "alice"})
    first = post(client, _key(alice.headers, "shared-key"), alices)
    assert first.status_code == 201

    # Bob's phone sends the very same key and body (a copied backup, a shared tablet):
    # processed as Bob's own request, never answered with Alice's cached response.
    copy = post(client, _key(bob.headers, "shared-key"), alices)
    assert copy.status_code == 201, copy.text
    assert REPLAYED not in copy.headers
    assert copy.json()["participant_id"] == bob.id
    assert copy.json() != first.json()

    # The same key value with Bob's own entry is a key reuse for Bob only.
    bobs = post(client, _key(bob.headers, "bob-key"), entry("note", {"text": "bob"}))
    assert bobs.status_code == 201, bobs.text
    assert bobs.json()["data"] == {"text": "bob"}
    alice_again = post(client, _key(alice.headers, "bob-key"), entry("note", {"text": "a2"}))
    assert alice_again.status_code == 201, alice_again.text
    assert alice_again.json()["participant_id"] == alice.id

    # Alice's replay still answers Alice's first response.
    replay = post(client, _key(alice.headers, "shared-key"), alices)
    assert replay.headers[REPLAYED] == "true"
    assert replay.json() == first.json()
    assert count_entries(session, alice.participant.id) == 2
    assert count_entries(session, bob.participant.id) == 2


@pytest.mark.parametrize("key", [b"x" * 256, b"has space", "n\u00f6n-ascii".encode(), b""])
def test_a_malformed_key_is_refused(
    client: TestClient, session: Session, world: World, key: bytes
) -> None:
    headers: dict[str, Any] = {**world.alice.headers, "Idempotency-Key": key}
    response = client.post(ENTRIES, json=entry("note"), headers=headers)
    assert_problem(response, 422)
    assert count_entries(session, world.alice.participant.id) == 0


def test_after_the_key_expires_the_entry_id_still_deduplicates_and_detects_conflicts(
    client: TestClient, session: Session, world: World, clock: time_machine.Coordinates
) -> None:
    alice = world.alice
    sent = entry("mg_adl", recorded_at="2026-11-22T08:30:00+01:00")
    first = post(client, _key(alice.headers, "k-offline"), sent)
    assert first.status_code == 201

    clock.move_to(NOW + timedelta(hours=25))
    headers = bearer(participant_token(alice.participant))
    resent = post(client, _key(headers, "k-offline"), sent)
    assert resent.status_code == 200, resent.text
    assert REPLAYED not in resent.headers
    assert resent.json() == first.json()

    changed = {**sent, "data": mg_adl(swallowing=3)}
    conflict = post(client, _key(headers, "k-offline-2"), changed)
    assert_problem(conflict, 409)
    (kept,) = conflicts(session, alice.participant.id)
    assert kept.payload["data"] == mg_adl(swallowing=3)
    assert str(kept.client_entry_id) == sent["id"]
    assert count_entries(session, alice.participant.id) == 1
    read = client.get(f"{ENTRIES}/{sent['id']}", headers=headers).json()
    assert read["data"] == first.json()["data"]


def test_a_14_day_old_batch_resent_gives_duplicates_and_one_conflict_never_a_second_row(
    client: TestClient, session: Session, world: World, clock: time_machine.Coordinates
) -> None:
    alice = world.alice
    batch = [entry("note", {"text": f"day note {i}"}) for i in range(5)]
    assert {r["status"] for r in sync(client, alice.headers, batch)} == {"created"}

    clock.move_to(NOW + timedelta(days=14))
    headers = bearer(participant_token(alice.participant))
    resend = [*batch[:4], {**batch[4], "data": {"text": "edited while offline"}}]
    results = sync(client, headers, resend)
    assert [r["status"] for r in results] == ["duplicate"] * 4 + ["conflict"]
    assert count_entries(session, alice.participant.id) == 5
    (kept,) = conflicts(session, alice.participant.id)
    assert kept.payload["data"] == {"text": "edited while offline"}


def test_a_nul_in_a_data_key_with_an_idempotency_key_is_422(
    client: TestClient, session: Session, world: World
) -> None:
    response = post(
        client, _key(world.alice.headers, "k-nul"), entry("note", {"te\x00xt": "hello"})
    )
    assert_problem(response, 422)
    assert count_entries(session, world.alice.participant.id) == 0
