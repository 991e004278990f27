"""Adverse-event reporting (issue 6 item 6): the study listing, the incidence summary and the
``adverse_events`` section of the study outcomes, hand-computed for a small cohort."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlmodel import Session

from app.auth.principal import Membership, StaffPrincipal
from app.safety import adverse_events, ae_reporting
from app.safety.ae_schemas import AdverseEventUpdate
from tests.factories import TEST_ACTOR, bearer, create_participant, create_study, staff_token
from tests.safety.factories import record_ae

SERIOUS = {"serious": True, "seriousness_criteria": ["hospitalisation"]}


@pytest.fixture
def cohort(session: Session) -> dict[str, Any]:
    """Site X: A, B, C, D; site Y: E.

    A: headache g1 (not related), headache g2 (possible), CRS g3 (probable, serious).
    B: headache g3 (unlikely), fever g1 (definite).
    C: fever g1 (not related), corrected to g2: only the current version counts.
    D: none. E (site Y): headache g2 (possible, serious).
    """
    study, sites = create_study(session)
    people = {
        name: create_participant(session, study=study, site=sites["Y" if name == "E" else "X"])[0]
        for name in "ABCDE"
    }
    record_ae(session, people["A"], grade=1, relatedness="not_related", onset_date="2026-01-10")
    record_ae(session, people["A"], grade=2, relatedness="possible", onset_date="2026-01-12")
    record_ae(
        session,
        people["A"],
        term="cytokine_release_syndrome",
        grade=None,
        crs_inputs={"fever": True, "hypotension": "one_vasopressor"},
        relatedness="probable",
        onset_date="2026-01-08",
        **SERIOUS,
    )
    record_ae(session, people["B"], grade=3, relatedness="unlikely", onset_date="2026-01-15")
    record_ae(session, people["B"], term="fever", grade=1, relatedness="definite")
    c_fever, _ = record_ae(session, people["C"], term="fever", grade=1, relatedness="not_related")
    adverse_events.update(
        session,
        head=c_fever,
        participant=people["C"],
        patch=AdverseEventUpdate(grade=2, reason="Peak 39.5 C"),
        actor=TEST_ACTOR,
    )
    record_ae(
        session,
        people["E"],
        grade=2,
        relatedness="possible",
        serious=True,
        seriousness_criteria=["important_medical_event"],
    )
    session.flush()
    return {
        "study": study,
        "people": people,
        "inv": bearer(staff_token(session, role="investigator", study=study, site=sites["X"])),
        "inv_y": bearer(staff_token(session, role="investigator", study=study, site=sites["Y"])),
        "monitor": bearer(staff_token(session, role="monitor", study=study)),
        "outsider": bearer(staff_token(session, role="monitor", study=create_study(session)[0])),
    }


def _grades(row: dict[str, Any]) -> dict[int, tuple[int, int]]:
    return {g["grade"]: (g["participants"], g["events"]) for g in row["by_max_grade"]}


def _summary(client: TestClient, cohort: dict[str, Any], who: str) -> Any:
    return client.get(
        f"/portal/v1/studies/{cohort['study'].id}/adverse-events/summary", headers=cohort[who]
    )


def test_summary_for_site_x(client: TestClient, cohort: dict[str, Any]) -> None:
    response = _summary(client, cohort, "inv")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["participants"], body["ctcae_version"]) == (4, "5.0")  # A-D

    overall = body["any_event"]
    # A, B, C of 4; events 3 + 2 + 1; related: A headache g2 + A CRS + B fever.
    assert (overall["participants"], overall["incidence"], overall["events"]) == (3, 0.75, 6)
    assert (overall["related_participants"], overall["related_events"]) == (2, 3)
    assert (overall["serious_participants"], overall["serious_events"]) == (1, 1)
    # Maximum grade: A 3, B 3, C 2; events by grade: g1 A+B, g2 A+C, g3 A+B.
    assert _grades(overall) == {1: (0, 2), 2: (1, 2), 3: (2, 2), 4: (0, 0), 5: (0, 0)}
    assert [g["incidence"] for g in overall["by_max_grade"]][:3] == [0.0, 0.25, 0.5]

    terms = {t["term"]: t for t in body["terms"]}
    assert list(terms) == ["fever", "cytokine_release_syndrome", "headache"]  # vocabulary order

    fever = terms["fever"]  # B g1 (definite), C g2 (current version)
    assert (fever["participants"], fever["incidence"], fever["events"]) == (2, 0.5, 2)
    assert (fever["related_participants"], fever["related_events"]) == (1, 1)
    assert fever["serious_events"] == 0
    assert _grades(fever) == {1: (1, 1), 2: (1, 1), 3: (0, 0), 4: (0, 0), 5: (0, 0)}

    crs = terms["cytokine_release_syndrome"]
    assert (crs["meddra_code"], crs["participants"], crs["incidence"]) == ("10052015", 1, 0.25)
    assert (crs["related_events"], crs["serious_participants"]) == (1, 1)
    assert _grades(crs)[3] == (1, 1)

    headache = terms["headache"]  # A g1, A g2, B g3; only A's g2 related
    assert (headache["participants"], headache["incidence"], headache["events"]) == (2, 0.5, 3)
    assert (headache["related_participants"], headache["related_events"]) == (1, 1)
    # Grades 1-3 only (instruments.md 6.4: Headache has no grade 4 or 5).
    assert _grades(headache) == {1: (0, 1), 2: (1, 1), 3: (1, 1)}


def test_summary_for_the_whole_study_and_other_sites(
    client: TestClient, cohort: dict[str, Any]
) -> None:
    body = _summary(client, cohort, "monitor").json()
    assert body["participants"] == 5
    headache = next(t for t in body["terms"] if t["term"] == "headache")
    assert (headache["participants"], headache["incidence"], headache["serious_events"]) == (
        3,
        0.6,
        1,
    )
    site_y = _summary(client, cohort, "inv_y").json()
    assert (site_y["participants"], site_y["any_event"]["events"]) == (1, 1)
    assert _summary(client, cohort, "outsider").status_code == 404


def test_summary_runs_a_fixed_number_of_queries(
    session: Session, connection: Connection, cohort: dict[str, Any]
) -> None:
    """Aggregates in SQL: the same statements whatever the number of events."""
    principal = StaffPrincipal(
        staff_user_id=uuid.uuid4(),
        subject="counter",
        memberships=(Membership(role="monitor", study_id=cohort["study"].id, site_id=None),),
    )
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(connection, "before_cursor_execute", count)
    try:
        ae_reporting.summary(session, principal=principal, study_id=cohort["study"].id)
        first = len(statements)
        for _ in range(3):
            record_ae(session, cohort["people"]["D"], term="nausea", grade=1)
        statements.clear()
        ae_reporting.summary(session, principal=principal, study_id=cohort["study"].id)
    finally:
        event.remove(connection, "before_cursor_execute", count)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 3  # denominator, per participant and term, per term and grade
    assert len(statements) <= first


def _list(client: TestClient, cohort: dict[str, Any], who: str = "inv", **params: Any) -> Any:
    response = client.get(
        f"/portal/v1/studies/{cohort['study'].id}/adverse-events",
        params=params,
        headers=cohort[who],
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_listing_with_filters_and_pages(client: TestClient, cohort: dict[str, Any]) -> None:
    page = _list(client, cohort)
    rows = page["items"]
    assert page["next_cursor"] is None
    assert len(rows) == 6
    codes = {p.id: p.subject_code for p in cohort["people"].values()}
    assert {r["subject_code"] for r in rows} == {codes[cohort["people"][n].id] for n in "ABC"}
    onsets = [r["onset_date"] for r in rows]
    assert onsets == sorted(onsets, reverse=True)  # newest onset first
    crs = next(r for r in rows if r["term"] == "cytokine_release_syndrome")
    assert (crs["grade"], crs["related"], crs["serious"], crs["seriousness_criteria"]) == (
        3,
        True,
        True,
        ["hospitalisation"],
    )
    assert crs["site_id"] == str(cohort["people"]["A"].site_id)
    c_fever = next(r for r in rows if r["participant_id"] == str(cohort["people"]["C"].id))
    assert (c_fever["grade"], c_fever["version"]) == (2, 2)

    assert {r["term"] for r in _list(client, cohort, grade=3)["items"]} == {
        "cytokine_release_syndrome",
        "headache",
    }
    assert [r["term"] for r in _list(client, cohort, serious=True)["items"]] == [
        "cytokine_release_syndrome"
    ]
    related = _list(client, cohort, related=True)["items"]
    assert sorted(r["relatedness"] for r in related) == ["definite", "possible", "probable"]
    assert len(_list(client, cohort, related=False)["items"]) == 3

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 4}
        if cursor:
            params["cursor"] = cursor
        page = _list(client, cohort, **params)
        seen += [r["id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(r["id"] for r in rows)

    assert [r["subject_code"] for r in _list(client, cohort, who="inv_y")["items"]] == [
        cohort["people"]["E"].subject_code
    ]
    outsider = client.get(
        f"/portal/v1/studies/{cohort['study'].id}/adverse-events", headers=cohort["outsider"]
    )
    assert outsider.status_code == 404


def test_outcomes_include_the_adverse_event_summary(
    client: TestClient, cohort: dict[str, Any]
) -> None:
    study_id = cohort["study"].id
    outcomes = client.get(f"/portal/v1/studies/{study_id}/outcomes", headers=cohort["inv"])
    assert outcomes.status_code == 200, outcomes.text
    section = outcomes.json()["adverse_events"]
    assert section == _summary(client, cohort, "inv").json()

    text = client.get(f"/portal/v1/studies/{study_id}/outcomes.csv", headers=cohort["inv"]).text
    rows = [r for r in csv.DictReader(io.StringIO(text)) if r["instrument"] == "adverse_events"]
    by_key = {(r["term"], r["measure"], r["grade"]): r for r in rows}
    headache = by_key[("headache", "participants_with_event", "")]
    assert (headache["n"], headache["count"], headache["proportion"]) == ("4", "2", "0.5")
    assert by_key[("any", "events", "")]["count"] == "6"
    assert by_key[("any", "participants_with_related_event", "")]["count"] == "2"
    grade_3 = by_key[("any", "participants_by_max_grade", "3")]
    assert (grade_3["count"], grade_3["proportion"]) == ("2", "0.5")
