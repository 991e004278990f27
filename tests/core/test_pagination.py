"""Signed keyset cursors and the limit parameter (api-contract.md, checklist item 18)."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, date, datetime

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.core import pagination
from app.core.pagination import InvalidCursor, decode_cursor, encode_cursor
from tests.factories import bearer, create_participant, create_study, staff_token
from tests.problem_helpers import assert_problem

VALUES = [datetime(2026, 11, 21, 7, 30, 15, 123456, tzinfo=UTC), date(2026, 1, 5), "S-001", 7]
DECODERS = [datetime.fromisoformat, date.fromisoformat, str, int]


def test_cursor_round_trip_keeps_every_value() -> None:
    row_id = uuid.uuid4()
    cursor = encode_cursor("things", [*VALUES, row_id])
    assert decode_cursor("things", cursor, [*DECODERS, uuid.UUID]) == [*VALUES, row_id]
    # Opaque and URL-safe: no padding, nothing that needs escaping in a query string.
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _tamper(cursor: str) -> str:
    """Change one value in the payload but keep the signature."""
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    payload, sig = raw[:-12], raw[-12:]
    forged = payload.replace(b"S-001", b"S-999")
    assert forged != payload
    return base64.urlsafe_b64encode(forged + sig).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        _tamper(encode_cursor("things", VALUES)),
        encode_cursor("things", VALUES)[:-2],
        encode_cursor("things", VALUES)[4:],
        "not-a-cursor",
        "",
        "\u00e9t\u00e9",
        base64.urlsafe_b64encode(b'{"s":"things","v":[]}' + b"x" * 12).decode(),
    ],
    ids=["forged-value", "truncated", "cut-start", "garbage", "empty", "non-ascii", "unsigned"],
)
def test_altered_cursor_is_refused(cursor: str) -> None:
    with pytest.raises(InvalidCursor) as excinfo:
        decode_cursor("things", cursor, DECODERS)
    assert excinfo.value.status_code == 400


def test_cursor_from_another_list_is_refused() -> None:
    cursor = encode_cursor("studies", VALUES)
    with pytest.raises(InvalidCursor):
        decode_cursor("participants:x", cursor, DECODERS)


def test_cursor_signed_with_another_secret_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    good = encode_cursor("things", VALUES)
    monkeypatch.setattr(pagination, "_key", lambda: b"another deployment's key")
    foreign = encode_cursor("things", VALUES)
    assert foreign != good
    monkeypatch.undo()
    with pytest.raises(InvalidCursor):
        decode_cursor("things", foreign, DECODERS)


def test_tampered_cursor_over_http_is_a_400_problem(client: TestClient, session: Session) -> None:
    study, sites = create_study(session)
    create_study(session)
    token = staff_token(session, role="admin")
    first = client.get("/portal/v1/studies?limit=1", headers=bearer(token))
    assert first.status_code == 200, first.text
    cursor = first.json()["next_cursor"]
    assert cursor

    assert (
        client.get(f"/portal/v1/studies?cursor={cursor}", headers=bearer(token)).status_code == 200
    )
    raw = bytearray(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    raw[10] ^= 0x01
    forged = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    response = client.get(f"/portal/v1/studies?cursor={forged}", headers=bearer(token))
    body = assert_problem(response, 400, "invalid_cursor")
    assert body["errors"][0]["loc"] == ["query", "cursor"]


def test_cursor_from_another_study_or_list_is_a_400(client: TestClient, session: Session) -> None:
    study_a, sites_a = create_study(session)
    study_b, sites_b = create_study(session)
    for study, sites in ((study_a, sites_a), (study_b, sites_b)):
        for _ in range(2):
            create_participant(session, study=study, site=sites["X"])
    token = staff_token(session, role="admin")
    url_a = f"/portal/v1/studies/{study_a.id}/participants"
    url_b = f"/portal/v1/studies/{study_b.id}/participants"
    cursor_a = client.get(f"{url_a}?limit=1", headers=bearer(token)).json()["next_cursor"]
    assert cursor_a
    assert client.get(f"{url_a}?cursor={cursor_a}", headers=bearer(token)).status_code == 200

    response = client.get(f"{url_b}?cursor={cursor_a}", headers=bearer(token))
    assert_problem(response, 400, "invalid_cursor")

    studies_cursor = client.get("/portal/v1/studies?limit=1", headers=bearer(token))
    response = client.get(
        f"{url_a}?cursor={studies_cursor.json()['next_cursor']}", headers=bearer(token)
    )
    assert_problem(response, 400, "invalid_cursor")


@pytest.mark.parametrize("limit", ["0", "201", "-1", str(10**9), "1.5", "ten", ""])
def test_limit_outside_1_to_200_is_a_422(client: TestClient, session: Session, limit: str) -> None:
    token = staff_token(session, role="admin")
    response = client.get(f"/portal/v1/studies?limit={limit}", headers=bearer(token))
    body = assert_problem(response, 422, "validation_failed")
    assert body["errors"][0]["loc"] == ["query", "limit"]


def test_overlong_cursor_is_refused(client: TestClient, session: Session) -> None:
    token = staff_token(session, role="admin")
    response = client.get(f"/portal/v1/studies?cursor={'a' * 5000}", headers=bearer(token))
    assert response.status_code in (400, 422)
    assert_problem(response, response.status_code)


def test_paging_while_rows_are_inserted_has_no_duplicates_or_gaps(
    client: TestClient, session: Session
) -> None:
    study, sites = create_study(session)
    existing = {
        str(create_participant(session, study=study, site=sites["X"])[0].id) for _ in range(120)
    }
    token = staff_token(session, role="investigator", study=study, site=sites["X"])
    url = f"/portal/v1/studies/{study.id}/participants"

    first = client.get(url, headers=bearer(token))
    assert first.status_code == 200, first.text
    assert len(first.json()["items"]) == 50  # the default limit

    seen: list[str] = []
    added: set[str] = set()
    cursor: str | None = None
    pages = 0
    while True:
        query = f"?limit=17&cursor={cursor}" if cursor else "?limit=17"
        response = client.get(url + query, headers=bearer(token))
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 17
        codes = [row["subject_code"] for row in page["items"]]
        assert codes == sorted(codes)
        seen += [row["id"] for row in page["items"]]
        pages += 1
        # New enrolments land before and after the cursor (random subject codes).
        for _ in range(5):
            added.add(str(create_participant(session, study=study, site=sites["X"])[0].id))
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 50

    assert len(seen) == len(set(seen)), "a row was returned twice"
    assert existing <= set(seen), f"{len(existing - set(seen))} pre-existing rows were skipped"
    assert set(seen) <= existing | added
