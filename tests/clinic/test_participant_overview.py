"""Participant list rows carry the latest MG-ADL, its change from baseline and diary adherence
(api-contract.md "Participant list rows")."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlmodel import Session

from tests.clinic.test_trends_api import diary, mg_adl
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


@pytest.mark.parametrize("baseline_kind", ["last_on_or_before_day0", "mean_of_screening"])
def test_rows_agree_with_the_whole_series(
    client: TestClient, session: Session, baseline_kind: str
) -> None:
    """A row reads only the baseline window (for the default rule only its last diary date) and
    the newest date (docs/performance.md, issue 4); its latest value and baseline must be what
    the participant's whole trend gives, under either baseline rule: diary and clinic values,
    same-date values (the clinic one last; two diary values on the window's last date),
    values outside the window, and series that end before or inside the window."""
    study, sites = create_study(session, baseline={"kind": baseline_kind})
    investigator = bearer(staff_token(session, role="investigator", study=study, site=sites["X"]))
    cases = {
        # subject: (diary (date, total), clinic (date, total))
        "C-1": (
            [("2025-12-01", 12), ("2026-01-04", 9), ("2026-01-05", 8), ("2026-02-01", 4)],
            [("2026-01-05", 7), ("2026-02-01", 5)],
        ),
        "C-2": ([("2025-11-01", 10), ("2025-11-02", 11)], []),  # ends before the window
        "C-3": ([("2025-12-20", 6), ("2026-01-02", 5)], [("2025-12-30", 9)]),  # ends inside it
        "C-4": ([], [("2026-01-03", 14), ("2026-03-01", 10)]),  # clinic only
        # Two diary values on the window's last date (morning, then evening): the later counts.
        "C-5": ([("2025-12-28", 12), ("2026-01-03", 9), ("2026-01-03T18", 7)], []),
    }
    ids = {}
    for subject, (entries, visits) in cases.items():
        participant, _ = create_participant(
            session,
            study=study,
            site=sites["X"],
            subject_code=subject,
            enrolled_on=date(2025, 10, 1),
            day0_date=date(2026, 1, 5),
        )
        ids[subject] = participant.id
        if entries:
            response = client.post(
                "/app/v1/diary/sync",
                json={"entries": [_at(day, total) for day, total in entries]},
                headers=bearer(participant_token(participant)),
            )
            assert response.status_code == 200, response.text
        for day, total in visits:
            response = client.post(
                f"/portal/v1/participants/{participant.id}/assessments",
                json={
                    "instrument": "mg_adl",
                    "assessed_at": f"{day}T10:00:00+01:00",
                    "items": mg_adl(total),
                },
                headers=investigator,
            )
            assert response.status_code == 201, response.text
    response = client.get(f"/portal/v1/studies/{study.id}/participants", headers=investigator)
    assert response.status_code == 200, response.text
    rows = {r["subject_code"]: r for r in response.json()["items"]}
    for subject, pid in ids.items():
        trend = client.get(f"/portal/v1/participants/{pid}/trends/mg_adl", headers=investigator)
        assert trend.status_code == 200, trend.text
        body = trend.json()
        last = body["points"][-1]
        row = rows[subject]
        assert (row["latest_mg_adl"], row["latest_mg_adl_date"]) == (last["value"], last["date"])
        base = body["baseline_value"]
        # The row shows whole numbers (a mean baseline is rounded).
        assert row["mg_adl_baseline"] == (None if base is None else round(base)), subject
        expected_change = None if base is None else round(last["value"] - base)
        assert row["mg_adl_change_from_baseline"] == expected_change, subject
    last = baseline_kind == "last_on_or_before_day0"
    # C-1's window holds 9, 8 and 7 (clinic, last on day 0): the last is 7, the mean 8.
    assert (rows["C-1"]["latest_mg_adl"], rows["C-1"]["mg_adl_baseline"]) == (5, 7 if last else 8)
    assert rows["C-2"]["mg_adl_baseline"] is None
    # C-3's window holds 6, 9 (clinic) and 5: the last is 5, the mean 6.67.
    assert (rows["C-3"]["latest_mg_adl"], rows["C-3"]["mg_adl_baseline"]) == (5, 5 if last else 7)
    assert (rows["C-4"]["latest_mg_adl"], rows["C-4"]["mg_adl_baseline"]) == (10, 14)
    assert rows["C-5"]["mg_adl_baseline"] == (7 if last else round((12 + 9 + 7) / 3))


def _at(day: str, total: int) -> dict[str, Any]:
    """A diary MG-ADL on ``day`` (``YYYY-MM-DD``, 09:00) or at ``YYYY-MM-DDTHH``."""
    if "T" not in day:
        return diary(day, total)
    return {**diary(day[:10], total), "recorded_at": f"{day}:00:00+01:00"}
