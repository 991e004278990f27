"""Study outcomes (issue 4, item 6) over HTTP, on a small cohort computed by hand."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from tests.clinic.test_trends_api import diary
from tests.factories import bearer, create_participant, create_study, participant_token, staff_token


@pytest.fixture
def cohort(client: TestClient, session: Session) -> dict[str, object]:
    """Three participants, day 0 on 2026-01-05, visits every 28 days (+/- 3).

    A: baseline 8, day 28 value 4 (change -4), MSE (1) on day 56.
    B: baseline 6, day 28 value 5 (change -1), no MSE, last value day 56 (censored at 56).
    C: baseline 10, day 27 value 7 (change -3), withdrawn later: censored at its last value.
    """
    study, sites = create_study(session)
    values = {
        "A": [("2026-01-04", 8), ("2026-02-02", 4), ("2026-03-02", 1)],
        "B": [("2026-01-05", 6), ("2026-02-02", 5), ("2026-03-02", 5)],
        "C": [("2026-01-03", 10), ("2026-02-01", 7)],
    }
    for code, series in values.items():
        participant, _ = create_participant(
            session,
            study=study,
            site=sites["X"],
            subject_code=code,
            enrolled_on=date(2026, 1, 1),
            day0_date=date(2026, 1, 5),
        )
        entries = [diary(day, total) for day, total in series]
        response = client.post(
            "/app/v1/diary/sync",
            json={"entries": entries},
            headers=bearer(participant_token(participant)),
        )
        assert {r["status"] for r in response.json()["results"]} == {"created"}
    return {
        "study": study,
        "inv": bearer(staff_token(session, role="monitor", study=study)),
        "other": bearer(staff_token(session, role="investigator", study=study, site=sites["Y"])),
    }


def test_outcome_table_and_kaplan_meier(client: TestClient, cohort: dict[str, object]) -> None:
    study = cohort["study"]
    response = client.get(
        f"/portal/v1/studies/{study.id}/outcomes",  # type: ignore[attr-defined]
        headers=cohort["inv"],
    )  # type: ignore[arg-type]
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["participants_with_day0"] == 3
    mg_adl = body["instruments"]["mg_adl"]
    day28 = next(row for row in mg_adl["time_points"] if row["visit_day"] == 28)
    assert day28["n"] == 3
    assert day28["mean_change"] == pytest.approx((-4 - 1 - 3) / 3, abs=1e-4)
    assert day28["median_change"] == -3
    assert day28["responders"] == 2  # -4 and -3 are at least 2 below baseline
    assert day28["responder_proportion"] == pytest.approx(0.6667, abs=1e-4)

    mse = body["time_to_mse"]
    # A reaches MSE on day 56; B is censored at 56 (its last value), C at 27.
    assert [(p["day"], p["at_risk"], p["events"], p["censored"]) for p in mse["curve"]] == [
        (27, 3, 0, 1),
        (56, 2, 1, 1),
    ]
    assert mse["curve"][-1]["cumulative_incidence"] == 0.5
    improvement = body["time_to_first_mg_adl_improvement"]
    assert improvement["events"] == 2  # A (day 28) and C (day 27)
    assert improvement["median_days"] == 28
    assert body["without_worsening"] == {"n": 3, "count": 3, "proportion": 1.0}

    csv_response = client.get(
        f"/portal/v1/studies/{study.id}/outcomes.csv",  # type: ignore[attr-defined]
        headers=cohort["inv"],
    )  # type: ignore[arg-type]
    assert csv_response.status_code == 200
    assert csv_response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(csv_response.text)))
    row = next(
        r
        for r in rows
        if r["instrument"] == "mg_adl"
        and r["measure"] == "change_from_baseline"
        and r["visit_day"] == "28"
    )
    assert row["n"] == "3"
    assert row["responders"] == "2"


def test_outcomes_are_limited_to_the_callers_sites(
    client: TestClient, cohort: dict[str, object]
) -> None:
    study = cohort["study"]
    body = client.get(
        f"/portal/v1/studies/{study.id}/outcomes",  # type: ignore[attr-defined]
        headers=cohort["other"],
    ).json()  # type: ignore[arg-type]
    assert body["participants"] == 0
    assert (
        client.get(f"/portal/v1/studies/{uuid.uuid4()}/outcomes", headers=cohort["inv"]).status_code
        == 404
    )  # type: ignore[arg-type]


def _medication(
    client: TestClient,
    headers: dict[str, str],
    pid: uuid.UUID,
    name: str,
    dose: float,
    start: str,
    stop: str | None = None,
) -> None:
    response = client.post(
        f"/portal/v1/participants/{pid}/medications",
        json={
            "medication": name,
            "dose": dose,
            "unit": "mg",
            "route": "PO",
            "frequency": "once_daily",
            "start_date": start,
            "stop_date": stop,
        },
        headers=headers,
    )
    assert response.status_code == 201, response.text


def test_without_relapse_and_corticosteroid_reduction(client: TestClient, session: Session) -> None:
    """Hand-computed cohort, day 0 on 2026-01-05, visits every 28 days (+/- 3), protocol
    defaults: relapse = the >= 2-point response (instruments.md 1.5) lost on two consecutive
    values; reduction = >= 50 % below the baseline prednisone-equivalent dose, baseline taken
    before day 0 (RelapseRule / CorticosteroidReductionRule; trials.md 3 registers both
    proportions without defining them).

    D: baseline 8, 5 on day 14 (response), 7 on day 28 and 8 on day 35 - relapse on day 28;
       prednisone 20 mg/day, 10 mg/day from day 27 (reduced by 50 %).
    E: baseline 9, 4 on day 28 (response), 3 on day 56 - no relapse; prednisone 20 mg/day and
       dexamethasone premedication on day 0 only (not part of the baseline: not reduced).
    F: baseline 6, 5 on day 28 - no response; no corticosteroid (excluded).
    """
    study, sites = create_study(session)
    inv = bearer(staff_token(session, role="investigator", study=study, site=sites["X"]))
    values = {
        "D": [("2026-01-04", 8), ("2026-01-19", 5), ("2026-02-02", 7), ("2026-02-09", 8)],
        "E": [("2026-01-04", 9), ("2026-02-02", 4), ("2026-03-02", 3)],
        "F": [("2026-01-04", 6), ("2026-02-02", 5)],
    }
    ids = {}
    for code, series in values.items():
        participant, _ = create_participant(
            session,
            study=study,
            site=sites["X"],
            subject_code=code,
            enrolled_on=date(2026, 1, 1),
            day0_date=date(2026, 1, 5),
        )
        ids[code] = participant.id
        client.post(
            "/app/v1/diary/sync",
            json={"entries": [diary(day, total) for day, total in series]},
            headers=bearer(participant_token(participant)),
        )
    _medication(client, inv, ids["D"], "prednisone", 20, "2025-12-01", "2026-01-31")
    _medication(client, inv, ids["D"], "prednisone", 10, "2026-02-01")
    _medication(client, inv, ids["E"], "prednisone", 20, "2025-12-01")
    _medication(client, inv, ids["E"], "dexamethasone", 8, "2026-01-05", "2026-01-05")

    body = client.get(f"/portal/v1/studies/{study.id}/outcomes", headers=inv).json()

    relapse = body["without_relapse"]
    assert {k: relapse[k] for k in ("n", "count", "proportion")} == {
        "n": 2,  # responders D and E
        "count": 1,  # E
        "proportion": 0.5,
    }
    by_day = {row["visit_day"]: row for row in relapse["time_points"]}
    assert by_day[0] == {"visit_day": 0, "week": 0, "n": 0, "count": 0, "proportion": None}
    assert (by_day[28]["n"], by_day[28]["count"]) == (2, 1)  # D relapsed on day 28
    assert (by_day[56]["n"], by_day[56]["count"]) == (1, 1)  # only E has a day-56 value
    assert relapse["rule"]["kind"] == "loss_of_improvement"

    steroid = body["corticosteroid_reduction"]
    assert steroid["min_reduction_percent"] == 50
    assert steroid["on_corticosteroids_at_baseline"] == 2
    assert steroid["excluded_not_on_corticosteroids_at_baseline"] == 1  # F
    assert {k: steroid[k] for k in ("n", "count", "proportion")} == {
        "n": 2,
        "count": 1,
        "proportion": 0.5,
    }
    by_day = {row["visit_day"]: row for row in steroid["time_points"]}
    assert (by_day[0]["n"], by_day[0]["count"]) == (2, 0)  # E's premedication is no reduction
    assert (by_day[28]["n"], by_day[28]["count"], by_day[28]["proportion"]) == (2, 1, 0.5)

    rows = list(
        csv.DictReader(
            io.StringIO(client.get(f"/portal/v1/studies/{study.id}/outcomes.csv", headers=inv).text)
        )
    )
    relapse_28 = next(
        r for r in rows if r["measure"] == "without_relapse" and r["visit_day"] == "28"
    )
    assert (relapse_28["instrument"], relapse_28["n"], relapse_28["count"]) == ("mg_adl", "2", "1")
    assert relapse_28["proportion"] == "0.5"
    steroid_28 = next(
        r
        for r in rows
        if r["measure"] == "corticosteroid_dose_reduction" and r["visit_day"] == "28"
    )
    assert (steroid_28["instrument"], steroid_28["n"], steroid_28["count"]) == (
        "corticosteroid",
        "2",
        "1",
    )
    change_28 = next(
        r for r in rows if r["measure"] == "change_from_baseline" and r["visit_day"] == "28"
    )
    assert change_28["instrument"] == "mg_adl"
    assert change_28["count"] == ""
