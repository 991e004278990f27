"""Participant list rows carry the latest MG-ADL, its change from baseline and diary adherence
(api-contract.md "Participant list rows")."""

from __future__ import annotations

from datetime import date

from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlmodel import Session

from tests.clinic.test_trends_api import diary
from tests.factories import bearer, create_participant, create_study, participant_token, staff_token


def test_rows_with_latest_value_change_and_adherence(
    client: TestClient, session: Session, connection: Connection
) -> None:
    study, sites = create_study(session)
    with_data, _ = create_participant(
        session,
        study=study,
        site=sites["X"],
        subject_code="A-1",
        enrolled_on=date(2026, 1, 1),
        day0_date=date(2026, 1, 5),
    )
    without, _ = create_participant(session, study=study, site=sites["X"], subject_code="A-2")
    entries = [diary("2026-01-04", 9), diary("2026-01-20", 6)]
    client.post(
        "/app/v1/diary/sync",
        json={"entries": entries},
        headers=bearer(participant_token(with_data)),
    )
    investigator = bearer(staff_token(session, role="investigator", study=study, site=sites["X"]))

    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(connection, "before_cursor_execute", count)
    try:
        response = client.get(f"/portal/v1/studies/{study.id}/participants", headers=investigator)
    finally:
        event.remove(connection, "before_cursor_execute", count)
    assert response.status_code == 200, response.text
    rows = {r["subject_code"]: r for r in response.json()["items"]}
    assert rows["A-1"]["latest_mg_adl"] == 6
    assert rows["A-1"]["latest_mg_adl_date"] == "2026-01-20"
    assert rows["A-1"]["mg_adl_baseline"] == 9
    assert rows["A-1"]["mg_adl_change_from_baseline"] == -3
    assert 0 < rows["A-1"]["diary_adherence"] < 1
    assert rows["A-2"]["latest_mg_adl"] is None
    assert rows["A-2"]["mg_adl_change_from_baseline"] is None
    assert rows["A-2"]["diary_adherence"] == 0

    # A fixed number of queries for the page, whatever its size (no query per row).
    per_page = len(statements)
    for i in range(5):
        create_participant(session, study=study, site=sites["X"], subject_code=f"B-{i}")
    statements.clear()
    event.listen(connection, "before_cursor_execute", count)
    try:
        client.get(f"/portal/v1/studies/{study.id}/participants", headers=investigator)
    finally:
        event.remove(connection, "before_cursor_execute", count)
    assert len(statements) == per_page
