"""The changes feed: every created or corrected entry exactly once, while entries keep coming."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.diary.conftest import World
from tests.diary.diary_helpers import CHANGES, ENTRIES, entry, sync
from tests.problem_helpers import assert_problem


def _notes(n: int, prefix: str) -> list[dict[str, Any]]:
    return [entry("note", {"text": f"{prefix} {i}"}) for i in range(n)]


def _page(
    client: TestClient, headers: dict[str, str], cursor: str | None, limit: int = 7
) -> dict[str, Any]:
    params: dict[str, Any] = {"limit": limit}
    if cursor:
        params["cursor"] = cursor
    response = client.get(CHANGES, params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert len(body["items"]) <= limit
    return body


def test_paging_while_entries_are_written_never_skips_or_repeats(
    client: TestClient, world: World
) -> None:
    alice = world.alice
    initial = _notes(30, "before")
    assert {r["status"] for r in sync(client, alice.headers, initial)} == {"created"}
    # Bob writes too; none of his changes may show up in Alice's feed.
    sync(client, world.bob.headers, _notes(5, "bob"))

    seen: list[tuple[str, str, int]] = []
    written = list(initial)
    corrected: list[str] = []
    cursor = None
    for page_number in range(100):
        body = _page(client, alice.headers, cursor)
        for item in body["items"]:
            seen.append((item["entry"]["id"], item["change"], item["entry"]["version"]))
            assert item["entry"]["participant_id"] == alice.id
        cursor = body["next_cursor"]
        if cursor is None:
            break
        # Between pages the phone syncs more entries and corrects one already read.
        more = _notes(2, f"during {page_number}")
        assert {r["status"] for r in sync(client, alice.headers, more)} == {"created"}
        written += more
        if page_number in (1, 3):
            target = seen[0 if page_number == 1 else 8][0]
            response = client.post(
                f"{ENTRIES}/{target}/corrections",
                json={"data": {"text": f"fixed {page_number}"}, "reason": "typo in my note"},
                headers=alice.headers,
            )
            assert response.status_code == 201, response.text
            corrected.append(target)
    else:  # pragma: no cover
        pytest.fail("the feed never ended")

    created = [entry_id for entry_id, change, _ in seen if change == "created"]
    assert Counter(created) == Counter(e["id"] for e in written)  # each exactly once
    assert [entry_id for entry_id, _, _ in seen[:30]] == [e["id"] for e in initial]
    corrections = [
        (entry_id, version) for entry_id, change, version in seen if change == "corrected"
    ]
    assert corrections == [(target, 2) for target in corrected]
    assert all(version == 1 for _, change, version in seen if change == "created")
    assert len(seen) == len(set(seen))


def test_the_feed_shows_a_correction_with_its_new_data(client: TestClient, world: World) -> None:
    alice = world.alice
    note = entry("note", {"text": "original"})
    sync(client, alice.headers, [note])
    response = client.post(
        f"{ENTRIES}/{note['id']}/corrections",
        json={"data": {"text": "corrected"}, "reason": "wrong word"},
        headers=alice.headers,
    )
    assert response.status_code == 201
    items = _page(client, alice.headers, None, limit=50)["items"]
    assert [(i["change"], i["entry"]["version"], i["entry"]["data"]["text"]) for i in items] == [
        ("created", 1, "original"),
        ("corrected", 2, "corrected"),
    ]


def test_a_device_that_read_everything_can_resume_later_with_only_new_changes(
    client: TestClient, world: World
) -> None:
    alice = world.alice
    sync(client, alice.headers, _notes(3, "old"))
    body = _page(client, alice.headers, None, limit=50)
    assert len(body["items"]) == 3
    assert body["next_cursor"] is None  # the last page, as for every list
    resume = body["resume_cursor"]
    assert resume is not None, "no cursor to resume from after the last change"
    later = _notes(2, "new")
    sync(client, alice.headers, later)
    page = _page(client, alice.headers, resume, limit=50)
    assert [i["entry"]["id"] for i in page["items"]] == [e["id"] for e in later]
    # Nothing new: the resume cursor stays where it was.
    quiet = _page(client, alice.headers, page["resume_cursor"], limit=50)
    assert quiet["items"] == []
    assert quiet["resume_cursor"] == page["resume_cursor"]


def test_a_tampered_or_foreign_cursor_is_400(client: TestClient, world: World) -> None:
    alice = world.alice
    sync(client, alice.headers, _notes(5, "n"))
    sync(client, world.bob.headers, _notes(5, "b"))
    cursor = _page(client, alice.headers, None, limit=2)["next_cursor"]
    assert cursor

    flipped = cursor[:-3] + ("A" if cursor[-3] != "A" else "B") + cursor[-2:]
    entries_cursor = client.get(ENTRIES, params={"limit": 2}, headers=alice.headers).json()[
        "next_cursor"
    ]
    bobs_cursor = _page(client, world.bob.headers, None, limit=2)["next_cursor"]
    for bad in (flipped, "not-a-cursor", entries_cursor, bobs_cursor):
        response = client.get(CHANGES, params={"cursor": bad}, headers=alice.headers)
        body = assert_problem(response, 400, "invalid_cursor")
        assert body["errors"][0]["loc"] == ["query", "cursor"]
    # The genuine cursor still works.
    assert client.get(CHANGES, params={"cursor": cursor}, headers=alice.headers).status_code == 200
