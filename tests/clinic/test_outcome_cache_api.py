"""The study outcomes keep each participant's summary between requests
(app/scores/outcome_summaries.py): every change to a summary's inputs must show in the next
answer, and a cached answer must equal a fresh computation."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
import sqlalchemy as sa
import time_machine
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from app.auth.principal import Membership, StaffPrincipal
from app.diary.models import MgAdlResponse
from app.scores import outcomes
from app.scores.outcome_summaries import SummaryCache
from app.studies import service as studies_service
from app.studies.models import Study
from tests.clinic.test_clinic_api import QMG_GRADES
from tests.clinic.test_trends_api import diary
from tests.domain_helpers import definition_body
from tests.factories import bearer, create_participant, create_study, participant_token, staff_token

REASON = {"reason": "Source document verification"}


@dataclass
class Cohort:
    study: Study
    pids: dict[str, uuid.UUID]
    apps: dict[str, dict[str, str]]
    entries: dict[str, list[dict[str, Any]]]
    inv: dict[str, str]
    admin: dict[str, str]
    site: Any


@pytest.fixture
def cohort(client: TestClient, session: Session) -> Cohort:
    """A: baseline 8, day 28 value 4; B: baseline 6, day 28 value 5 (day 0 2026-01-05)."""
    study, sites = create_study(session)
    pids, apps, entries = {}, {}, {}
    for code, series in {
        "A": [("2026-01-04", 8), ("2026-02-02", 4)],
        "B": [("2026-01-05", 6), ("2026-02-02", 5)],
    }.items():
        participant, _ = create_participant(
            session,
            study=study,
            site=sites["X"],
            subject_code=code,
            enrolled_on=date(2026, 1, 1),
            day0_date=date(2026, 1, 5),
        )
        pids[code], apps[code] = participant.id, bearer(participant_token(participant))
        entries[code] = [diary(day, total) for day, total in series]
        _sync(client, apps[code], entries[code])
    return Cohort(
        study=study,
        pids=pids,
        apps=apps,
        entries=entries,
        inv=bearer(staff_token(session, role="investigator", study=study, site=sites["X"])),
        admin=bearer(staff_token(session, role="admin", study=study)),
        site=sites["X"],
    )


def _sync(client: TestClient, headers: dict[str, str], entries: list[dict[str, Any]]) -> None:
    response = client.post("/app/v1/diary/sync", json={"entries": entries}, headers=headers)
    assert response.status_code == 200, response.text
    assert {r["status"] for r in response.json()["results"]} == {"created"}


def _get(client: TestClient, cohort: Cohort) -> dict[str, Any]:
    response = client.get(f"/portal/v1/studies/{cohort.study.id}/outcomes", headers=cohort.inv)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _visit(body: dict[str, Any], instrument: str, day: int) -> dict[str, Any]:
    row: dict[str, Any] = next(
        r for r in body["instruments"][instrument]["time_points"] if r["visit_day"] == day
    )
    return row


def _without_time(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k != "generated_at"}


def test_a_repeat_is_served_from_the_cache_and_equals_a_fresh_computation(
    client: TestClient, session: Session, app: FastAPI, cohort: Cohort
) -> None:
    cache: SummaryCache = app.state.outcome_cache
    first = _get(client, cohort)
    hits = cache.hits
    second = _get(client, cohort)
    assert cache.hits == hits + 2  # both participants' summaries were reused
    session.expire_all()
    protocol = studies_service.protocol_definition(
        studies_service.current_protocol(session, study=cohort.study)
    )
    admin = StaffPrincipal(uuid.uuid4(), "t", (Membership("admin", None, None),))
    fresh = outcomes.study_outcomes(session, study=cohort.study, protocol=protocol, principal=admin)
    assert _without_time(first) == _without_time(second) == _without_time(fresh)


def test_a_new_diary_entry_shows_in_the_next_answer(client: TestClient, cohort: Cohort) -> None:
    assert _get(client, cohort)["time_to_mse"]["events"] == 0
    _sync(client, cohort.apps["A"], [diary("2026-03-02", 1)])  # MSE on day 56
    body = _get(client, cohort)
    assert body["time_to_mse"]["events"] == 1
    assert _visit(body, "mg_adl", 56)["n"] == 1


def test_a_diary_correction_shows_in_the_next_answer(client: TestClient, cohort: Cohort) -> None:
    assert _visit(_get(client, cohort), "mg_adl", 28)["mean_change"] == pytest.approx(-2.5)
    day28 = cohort.entries["A"][1]
    response = client.post(
        f"/portal/v1/participants/{cohort.pids['A']}/diary/entries/{day28['id']}/corrections",
        json={"data": diary("2026-02-02", 7)["data"], **REASON},
        headers=cohort.inv,
    )
    assert response.status_code == 201, response.text
    # A: 7 - 8 = -1, B: 5 - 6 = -1
    assert _visit(_get(client, cohort), "mg_adl", 28)["mean_change"] == pytest.approx(-1)


def test_a_clinic_assessment_and_its_correction_show_in_the_next_answer(
    client: TestClient, cohort: Cohort
) -> None:
    assert _get(client, cohort)["instruments"]["qmg"]["participants_with_baseline"] == 0
    path = f"/portal/v1/participants/{cohort.pids['A']}/assessments"
    body = {"instrument": "qmg", "assessed_at": "2026-01-05T10:00:00Z", "items": QMG_GRADES}
    created = client.post(path, json=body, headers=cohort.inv)
    assert created.status_code == 201, created.text
    later = {**body, "assessed_at": "2026-02-02T10:00:00Z"}
    assert client.post(path, json=later, headers=cohort.inv).status_code == 201
    answer = _get(client, cohort)
    assert answer["instruments"]["qmg"]["participants_with_baseline"] == 1
    assert _visit(answer, "qmg", 28)["mean_change"] == 0

    fixed = {
        "assessed_at": body["assessed_at"],
        "items": {**QMG_GRADES, "diplopia": 3},
        **REASON,
    }
    corrected = client.post(
        f"/portal/v1/assessments/{created.json()['id']}/corrections", json=fixed, headers=cohort.inv
    )
    assert corrected.status_code == 201, corrected.text
    assert _visit(_get(client, cohort), "qmg", 28)["mean_change"] == -1  # the baseline rose by 1


def test_a_new_day0_shows_in_the_next_answer(client: TestClient, cohort: Cohort) -> None:
    assert _visit(_get(client, cohort), "mg_adl", 28)["n"] == 2
    response = client.patch(
        f"/portal/v1/participants/{cohort.pids['B']}",
        json={"day0_date": "2026-01-20", **REASON},
        headers=cohort.inv,
    )
    assert response.status_code == 200, response.text
    # B's day 28 is now 2026-02-17: no value within 3 days of it.
    assert _visit(_get(client, cohort), "mg_adl", 28)["n"] == 1


def test_a_protocol_amendment_shows_in_the_next_answer(client: TestClient, cohort: Cohort) -> None:
    assert _visit(_get(client, cohort), "mg_adl", 28)["responders"] == 1  # A: -4
    amended = definition_body(registry_id=cohort.study.registry_id)
    amended["efficacy"] = {**amended["efficacy"], "mg_adl_improvement_delta": 5}
    response = client.post(
        f"/portal/v1/studies/{cohort.study.id}/protocol-versions",
        json={"definition": amended, "reason": "Amendment: responder delta 5"},
        headers=cohort.admin,
    )
    assert response.status_code == 201, response.text
    body = _get(client, cohort)
    assert _visit(body, "mg_adl", 28)["responders"] == 0
    assert body["instruments"]["mg_adl"]["improvement_delta"] == 5
    assert body["time_to_first_mg_adl_improvement"]["events"] == 0


def test_a_withdrawal_moves_the_censoring_day(
    client: TestClient, session: Session, cohort: Cohort
) -> None:
    _sync(client, cohort.apps["B"], [diary("2026-03-02", 5)])
    curve = _get(client, cohort)["time_to_mse"]["curve"]
    assert [p["day"] for p in curve] == [28, 56]  # A's last value day 28, B's day 56
    with time_machine.travel("2026-02-10T12:00:00Z", tick=False):
        then = staff_token(session, role="investigator", study=cohort.study, site=cohort.site)
        response = client.post(
            f"/portal/v1/participants/{cohort.pids['B']}/withdraw",
            json=REASON,
            headers=bearer(then),
        )
    assert response.status_code == 200, response.text
    # Withdrawn on day 36, before B's last value: censored there (no diary input changed).
    assert [p["day"] for p in _get(client, cohort)["time_to_mse"]["curve"]] == [28, 36]


@pytest.mark.parametrize("change", ["update", "delete"])
def test_mg_adl_rows_are_append_only(session: Session, cohort: Cohort, change: str) -> None:
    """The cache's row counts identify the rows only while none is changed or deleted
    (migration 0404)."""
    mine = MgAdlResponse.participant_id == cohort.pids["A"]
    statement = (
        sa.update(MgAdlResponse).where(mine).values(total=0)
        if change == "update"
        else sa.delete(MgAdlResponse).where(mine)
    )
    with pytest.raises(DBAPIError) as info, session.begin_nested():
        session.execute(statement)
    assert "append-only" in str(info.value)
