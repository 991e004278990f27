"""Adverse events recorded by investigators (issue 6 item 5): versions with a reason, audit,
ASTCT grading through the API, the rules (422 naming field and rule), scoping and alerts."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text, update
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col, select

from app.alerts.models import Alert
from app.alerts.service import CODE
from app.audit.models import AuditEvent
from app.safety.ae_models import AdverseEventVersion
from app.safety.models import SafetySignal
from tests.factories import bearer, create_participant, create_study, staff_token
from tests.safety.factories import ae_body, create_signal, crs_body, record_ae


@pytest.fixture
def world(session: Session) -> dict[str, Any]:
    study, sites = create_study(session)
    participant, _ = create_participant(session, study=study, site=sites["X"])
    other, _ = create_participant(session, study=study, site=sites["X"])
    return {
        "study": study,
        "participant": participant,
        "other_participant": other,
        "pid": participant.id,
        "inv": bearer(staff_token(session, role="investigator", study=study, site=sites["X"])),
        "other_site": bearer(
            staff_token(session, role="investigator", study=study, site=sites["Y"])
        ),
        "monitor": bearer(staff_token(session, role="monitor", study=study)),
        "outsider": bearer(
            staff_token(session, role="investigator", study=create_study(session)[0])
        ),
    }


def _post(client: TestClient, world: dict[str, Any], body: dict[str, Any], who: str = "inv") -> Any:
    return client.post(
        f"/portal/v1/participants/{world['pid']}/adverse-events", json=body, headers=world[who]
    )


def _errors(response: Any) -> list[tuple[list[Any], str]]:
    assert response.status_code == 422, response.text
    return [(e["loc"], e["type"]) for e in response.json()["errors"]]


def test_record_read_list_and_versions(client: TestClient, world: dict[str, Any]) -> None:
    response = _post(client, world, ae_body())
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["term"] == "headache"
    assert (body["ctcae_term"], body["meddra_code"], body["ctcae_version"]) == (
        "Headache",
        "10019211",
        "5.0",
    )
    assert (body["grade"], body["version"], body["recorded_by"]) == (2, 1, "investigator")
    assert body["astct_grade"] is None
    assert body["grading_version"] is None

    listed = client.get(
        f"/portal/v1/participants/{world['pid']}/adverse-events", headers=world["monitor"]
    )
    assert [e["id"] for e in listed.json()] == [body["id"]]
    one = client.get(f"/portal/v1/adverse-events/{body['id']}", headers=world["monitor"])
    assert one.json() == body
    versions = client.get(
        f"/portal/v1/adverse-events/{body['id']}/versions", headers=world["monitor"]
    ).json()
    assert [v["version"] for v in versions] == [1]


@pytest.mark.parametrize(
    ("inputs", "grade"),
    [
        # instruments.md 6.1 [C, S31]: 38.4 C alone -> grade 1
        ({"fever": True}, 1),
        # ... with hypotension requiring one vasopressor -> grade 3
        ({"fever": True, "hypotension": "one_vasopressor"}, 3),
        # rule 2: after tocilizumab, afebrile on low-flow oxygen -> grade 2
        ({"fever": False, "oxygen": "low_flow", "after_antipyretic_or_anticytokine": True}, 2),
        # rule 3: febrile, one vasopressor and low-flow oxygen -> 3 (the worse decides)
        ({"fever": True, "hypotension": "one_vasopressor", "oxygen": "low_flow"}, 3),
    ],
)
def test_crs_is_graded_by_astct_from_the_inputs(
    client: TestClient, world: dict[str, Any], inputs: dict[str, Any], grade: int
) -> None:
    """instruments.md 6.1 [C, S31]: the grade of a CRS event is the ASTCT 2019 grade."""
    response = _post(client, world, crs_body(inputs))
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["grade"], body["astct_grade"], body["grading_version"]) == (
        grade,
        grade,
        "astct-2019.1",
    )
    assert body["crs_inputs"]["fever"] is inputs["fever"]
    # The same grade given explicitly is accepted.
    again = _post(client, world, crs_body(inputs, grade=grade))
    assert again.status_code == 201, again.text


def test_a_crs_grade_that_disagrees_with_the_inputs_is_refused(
    client: TestClient, world: dict[str, Any]
) -> None:
    response = _post(client, world, crs_body({"fever": True}, grade=2))
    assert _errors(response) == [(["body", "grade"], "grade_mismatch")]
    assert "(1)" in response.json()["errors"][0]["msg"]


def test_crs_needs_inputs_that_grade_crs(client: TestClient, world: dict[str, Any]) -> None:
    """instruments.md 6.1: no fever and no prior anti-cytokine therapy is no CRS (grade 0)."""
    assert _errors(_post(client, world, ae_body(term="cytokine_release_syndrome", grade=1))) == [
        (["body", "crs_inputs"], "missing")
    ]
    no_crs = crs_body({"fever": False, "hypotension": "one_vasopressor"})
    assert _errors(_post(client, world, no_crs)) == [(["body", "crs_inputs"], "no_crs")]


def test_crs_death_is_grade_5_and_fatal(client: TestClient, world: dict[str, Any]) -> None:
    """instruments.md 6.1 [C, S33]: grade 5 is death."""
    body = crs_body(
        {"fever": True, "death": True},
        serious=True,
        seriousness_criteria=["death"],
        outcome="fatal",
        resolution_date="2026-01-12",
    )
    response = _post(client, world, body)
    assert response.status_code == 201, response.text
    assert response.json()["grade"] == 5


def test_encephalopathy_takes_the_icans_grade(client: TestClient, world: dict[str, Any]) -> None:
    """instruments.md 6.2 [C, S32]: ICE 4+2+1+0+1 = 8 (G1), awakens to voice (G2): the most
    severe domain (documented assumption) -> 2."""
    icans = {
        "ice_parts": {"orientation": 4, "naming": 2, "commands": 1, "writing": 0, "attention": 1},
        "consciousness": "awakens_to_voice",
    }
    response = _post(client, world, ae_body(term="encephalopathy", grade=None, icans_inputs=icans))
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["grade"], body["icans_grade"]) == (2, 2)
    assert body["icans_inputs"]["ice_score"] == 8
    # Without inputs, Encephalopathy takes the investigator's CTCAE grade.
    plain = _post(client, world, ae_body(term="encephalopathy", grade=3))
    assert (plain.status_code, plain.json()["icans_grade"]) == (201, None)


def test_icans_inputs_are_checked(client: TestClient, world: dict[str, Any]) -> None:
    unarousable_with_score = {"ice_score": 5, "unarousable": True}
    response = _post(
        client,
        world,
        ae_body(term="encephalopathy", grade=None, icans_inputs=unarousable_with_score),
    )
    assert _errors(response) == [(["body", "icans_inputs", "ice_score"], "icans_input")]
    normal = {"ice_score": 10}
    response = _post(client, world, ae_body(term="encephalopathy", grade=None, icans_inputs=normal))
    assert _errors(response) == [(["body", "icans_inputs"], "no_icans")]


@pytest.mark.parametrize(
    ("overrides", "field", "rule"),
    [
        # instruments.md 6.4 [C, S43]: Hypoxia has no grade 1, Headache stops at grade 3.
        ({"term": "hypoxia", "grade": 1}, "grade", "grade_out_of_range"),
        ({"term": "headache", "grade": 4}, "grade", "grade_out_of_range"),
        ({"term": "sinus_tachycardia", "grade": 4}, "grade", "grade_out_of_range"),
        ({"term": "fever", "grade": None}, "grade", "missing"),
        ({"crs_inputs": {"fever": True}}, "crs_inputs", "not_applicable"),
        ({"icans_inputs": {"ice_score": 5}}, "icans_inputs", "not_applicable"),
        (
            {"onset_date": "2026-01-10", "resolution_date": "2026-01-09", "outcome": "recovered"},
            "resolution_date",
            "before_onset",
        ),
        ({"resolution_date": "2026-01-12"}, "resolution_date", "not_resolved"),
        ({"onset_date": "2026-01-04"}, "onset_date", "before_enrolment"),  # enrolled 2026-01-05
        ({"serious": True}, "seriousness_criteria", "criteria_required"),
        (
            {"seriousness_criteria": ["hospitalisation"]},
            "seriousness_criteria",
            "criteria_without_serious",
        ),
        (
            {
                "term": "fever",
                "grade": 4,
                "outcome": "fatal",
                "serious": True,
                "seriousness_criteria": ["death"],
            },
            "outcome",
            "fatal_is_grade_5",
        ),
        (
            {
                "term": "fever",
                "grade": 5,
                "serious": True,
                "seriousness_criteria": ["life_threatening"],
                "outcome": "fatal",
            },
            "seriousness_criteria",
            "fatal_is_death",
        ),
    ],
)
def test_rules_name_the_field(
    client: TestClient, world: dict[str, Any], overrides: dict[str, Any], field: str, rule: str
) -> None:
    response = _post(client, world, ae_body(**overrides))
    assert (["body", field], rule) in _errors(response)
    assert response.json()["code"] == "validation_failed"


def test_grade_5_needs_a_fatal_outcome(client: TestClient, world: dict[str, Any]) -> None:
    response = _post(client, world, ae_body(term="fever", grade=5))
    assert (["body", "outcome"], "fatal_is_grade_5") in _errors(response)


def test_unknown_terms_and_enum_codes_are_422(client: TestClient, world: dict[str, Any]) -> None:
    for bad in ({"term": "migraine"}, {"relatedness": "maybe"}, {"outcome": "dead"}):
        response = _post(client, world, ae_body(**bad))
        assert response.status_code == 422, response.text
        assert ["body", next(iter(bad))] in [e["loc"][:2] for e in response.json()["errors"]]


def test_scoping_404_outside_and_403_without_permission(
    client: TestClient, session: Session, world: dict[str, Any]
) -> None:
    assert _post(client, world, ae_body(), who="other_site").status_code == 404
    assert _post(client, world, ae_body(), who="outsider").status_code == 404
    assert _post(client, world, ae_body(), who="monitor").status_code == 403

    head, _ = record_ae(session, world["participant"])
    url = f"/portal/v1/adverse-events/{head.id}"
    patch = {"grade": 3, "reason": "Reassessed at the visit"}
    for who in ("other_site", "outsider"):
        assert client.get(url, headers=world[who]).status_code == 404
        assert client.get(f"{url}/versions", headers=world[who]).status_code == 404
        assert client.patch(url, json=patch, headers=world[who]).status_code == 404
        listed = client.get(
            f"/portal/v1/participants/{world['pid']}/adverse-events", headers=world[who]
        )
        assert listed.status_code == 404
    assert client.patch(url, json=patch, headers=world["monitor"]).status_code == 403
    assert client.get(url, headers=world["monitor"]).status_code == 200
    missing = client.get(f"/portal/v1/adverse-events/{uuid.uuid4()}", headers=world["inv"])
    assert missing.status_code == 404


def test_update_makes_a_version_with_a_reason_and_audit(
    client: TestClient, session: Session, world: dict[str, Any]
) -> None:
    created = _post(client, world, ae_body()).json()
    url = f"/portal/v1/adverse-events/{created['id']}"

    no_reason = client.patch(url, json={"grade": 3}, headers=world["inv"])
    assert no_reason.status_code == 422
    assert ["body", "reason"] in [e["loc"] for e in no_reason.json()["errors"]]

    patch = {
        "grade": 3,
        "outcome": "recovered",
        "resolution_date": "2026-01-14",
        "reason": "Worse on day 3; resolved",
    }
    response = client.patch(url, json=patch, headers=world["inv"])
    assert response.status_code == 200, response.text
    updated = response.json()
    assert (updated["version"], updated["grade"], updated["outcome"]) == (2, 3, "recovered")
    assert updated["relatedness"] == "possible"  # kept from version 1
    assert updated["reason"] == "Worse on day 3; resolved"

    same = client.patch(url, json={"grade": 3, "reason": "again"}, headers=world["inv"])
    assert same.status_code == 409

    versions = client.get(f"{url}/versions", headers=world["monitor"]).json()
    assert [(v["version"], v["grade"], v["reason"]) for v in versions] == [
        (1, 2, None),
        (2, 3, "Worse on day 3; resolved"),
    ]
    events = session.exec(
        select(AuditEvent)
        .where(AuditEvent.entity_id == created["id"])
        .order_by(col(AuditEvent.occurred_at))
    ).all()
    assert [e.action for e in events] == ["adverse_event.create", "adverse_event.update"]
    assert events[1].reason == "Worse on day 3; resolved"
    assert events[1].changes["grade"] == {"before": 2, "after": 3}
    assert events[1].changes["outcome"] == {"before": "recovering", "after": "recovered"}
    assert events[0].participant_id == world["pid"]


def test_update_recomputes_the_crs_grade(client: TestClient, world: dict[str, Any]) -> None:
    created = _post(client, world, crs_body({"fever": True})).json()
    url = f"/portal/v1/adverse-events/{created['id']}"
    patch = {
        "crs_inputs": {"fever": True, "hypotension": "multiple_vasopressors"},
        "reason": "Second vasopressor started",
    }
    response = client.patch(url, json=patch, headers=world["inv"])
    assert response.status_code == 200, response.text
    assert (response.json()["grade"], response.json()["astct_grade"]) == (4, 4)
    # A grade alone that disagrees with the stored inputs is refused.
    bad = client.patch(url, json={"grade": 2, "reason": "typo"}, headers=world["inv"])
    assert _errors(bad) == [(["body", "grade"], "grade_mismatch")]


def _alerts(session: Session, ae_id: str) -> list[Alert]:
    return list(
        session.exec(
            select(Alert).where(Alert.subject_id == ae_id).order_by(col(Alert.created_at))
        ).all()
    )


def test_alerts_carry_codes_only(
    client: TestClient, session: Session, world: dict[str, Any]
) -> None:
    created = _post(client, world, ae_body()).json()
    client.patch(
        f"/portal/v1/adverse-events/{created['id']}",
        json={
            "grade": 3,
            "serious": True,
            "seriousness_criteria": ["hospitalisation"],
            "reason": "Admitted overnight for headache",
        },
        headers=world["inv"],
    )
    alerts = _alerts(session, created["id"])
    assert [(a.type, a.priority, a.dedup_key) for a in alerts] == [
        ("adverse_event.recorded", "routine", f"adverse_event.recorded:{created['id']}"),
        ("adverse_event.updated", "urgent", f"adverse_event.updated:{created['id']}:2"),
    ]
    first, second = alerts
    assert first.site_id == world["participant"].site_id
    assert first.data["term"] == "headache"
    assert first.data["meddra_code"] == "10019211"
    assert (first.data["grade"], first.data["serious"], first.data["relatedness"]) == (
        2,
        False,
        "possible",
    )
    assert second.data["seriousness_criteria"] == ["hospitalisation"]

    def strings(value: Any) -> list[str]:
        if isinstance(value, dict):
            return [s for v in value.values() for s in strings(v)]
        if isinstance(value, list):
            return [s for v in value for s in strings(v)]
        return [value] if isinstance(value, str) else []

    for alert in alerts:
        assert all(CODE.fullmatch(s) for s in strings(alert.data))
        assert "Admitted" not in str(alert.data)
        assert "reason" not in alert.data


@pytest.mark.parametrize(
    ("overrides", "priority"),
    [
        ({"term": "fever", "grade": 1}, "routine"),
        ({"term": "fever", "grade": 3}, "high"),
        ({"term": "fever", "grade": 4}, "urgent"),
        (
            {
                "term": "fever",
                "grade": 2,
                "serious": True,
                "seriousness_criteria": ["important_medical_event"],
            },
            "urgent",
        ),
    ],
)
def test_alert_priority(
    client: TestClient,
    session: Session,
    world: dict[str, Any],
    overrides: dict[str, Any],
    priority: str,
) -> None:
    created = _post(client, world, ae_body(**overrides)).json()
    assert [a.priority for a in _alerts(session, created["id"])] == [priority]


def test_a_signal_is_converted_into_the_event(
    client: TestClient, session: Session, world: dict[str, Any]
) -> None:
    signal = create_signal(session, world["participant"])
    response = _post(client, world, crs_body({"fever": True}, signal_id=str(signal.id)))
    assert response.status_code == 201, response.text
    assert response.json()["signal_id"] == str(signal.id)
    session.expire_all()
    converted = session.get(SafetySignal, signal.id)
    assert converted is not None
    assert (converted.status, converted.adverse_event_id) == (
        "converted",
        uuid.UUID(response.json()["id"]),
    )
    # A converted signal cannot be converted again.
    again = _post(client, world, crs_body({"fever": True}, signal_id=str(signal.id)))
    assert again.status_code == 409


def test_a_signal_must_belong_to_the_participant(
    client: TestClient, session: Session, world: dict[str, Any]
) -> None:
    theirs = create_signal(session, world["other_participant"])
    for signal_id in (theirs.id, uuid.uuid4()):
        response = _post(client, world, ae_body(signal_id=str(signal_id)))
        assert _errors(response) == [(["body", "signal_id"], "unknown_signal")]


def test_versions_are_append_only(session: Session, world: dict[str, Any]) -> None:
    """Migration 0402: triggers refuse UPDATE and DELETE (checklist G42)."""
    record_ae(session, world["participant"])
    with pytest.raises(DBAPIError) as info, session.begin_nested():
        session.execute(update(AdverseEventVersion).values(grade=3))
    assert "append-only" in str(info.value)
    with pytest.raises(DBAPIError) as info, session.begin_nested():
        session.execute(text("DELETE FROM adverse_event_version"))
    assert "append-only" in str(info.value)


def test_ctcae_vocabulary_route(client: TestClient, world: dict[str, Any]) -> None:
    response = client.get("/portal/v1/vocabularies/ctcae-terms", headers=world["monitor"])
    assert response.status_code == 200
    body = response.json()
    assert body["ctcae_version"] == "5.0"
    hypoxia = next(t for t in body["terms"] if t["code"] == "hypoxia")
    assert (hypoxia["meddra_code"], hypoxia["grades"], hypoxia["grades_source"]) == (
        "10021143",
        [2, 3, 4, 5],
        "C",
    )
