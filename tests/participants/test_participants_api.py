"""Portal participant routes: enrolment, listing, changes with reasons, withdrawal, BOLA."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import inspect
from sqlmodel import Session, SQLModel, select

import app.models  # noqa: F401  (registers every table on SQLModel.metadata)
from app.participants.models import Participant
from app.studies.builtin import CAR_T_CD19_BCMA_NCT06371040
from app.studies.models import Site, Study
from tests.domain_helpers import PORTAL, audit_rows, comparable_problem, error_locs
from tests.factories import bearer, create_participant, create_study, participant_token, staff_token

CODE_SHAPE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{2}$")


def _enrol_body(site: Site, **overrides: Any) -> dict[str, Any]:
    return {
        "subject_code": f"S-{uuid.uuid4().hex[:6]}",
        "site_id": str(site.id),
        "time_zone": "Europe/Berlin",
        **overrides,
    }


def _enrol(client: TestClient, study: Study, token: str, body: dict[str, Any]) -> Any:
    return client.post(
        f"{PORTAL}/studies/{study.id}/participants", json=body, headers=bearer(token)
    )


@pytest.fixture
def two_sites(session: Session) -> tuple[Study, dict[str, Site], str]:
    """A study with sites X and Y, and a token of an investigator at site X."""
    study, sites = create_study(session)
    token = staff_token(session, role="investigator", study=study, site=sites["X"])
    return study, sites, token


# --- enrolment -------------------------------------------------------------------------------


def test_enrol_returns_a_one_time_activation_code(
    client: TestClient, session: Session, two_sites: tuple[Study, dict[str, Site], str]
) -> None:
    study, sites, token = two_sites
    before = datetime.now(UTC)
    response = _enrol(client, study, token, _enrol_body(sites["X"], subject_code="MG-001"))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["subject_code"] == "MG-001"
    assert body["site_id"] == str(sites["X"].id)
    assert body["study_id"] == str(study.id)
    assert body["status"] == "enrolled"
    assert body["protocol_version"] == 1
    assert body["activated"] is False
    assert CODE_SHAPE.match(body["activation_code"]), body["activation_code"]
    expires = datetime.fromisoformat(body["activation_expires_at"])
    assert before + timedelta(days=7) - timedelta(minutes=1) < expires
    assert expires < datetime.now(UTC) + timedelta(days=7, minutes=1)

    # Shown once: a later read carries no code.
    read = client.get(f"{PORTAL}/participants/{body['id']}", headers=bearer(token)).json()
    assert "activation_code" not in read
    assert read["enrolled_on"] == body["enrolled_on"]

    # The code works in the app exactly once.
    activated = client.post("/auth/v1/activate", json={"activation_code": body["activation_code"]})
    assert activated.status_code == 200, activated.text
    again = client.post("/auth/v1/activate", json={"activation_code": body["activation_code"]})
    assert again.status_code == 401


def test_duplicate_subject_code_is_a_conflict(
    client: TestClient, two_sites: tuple[Study, dict[str, Site], str]
) -> None:
    study, sites, token = two_sites
    body = _enrol_body(sites["X"], subject_code="MG-002")
    assert _enrol(client, study, token, body).status_code == 201
    again = _enrol(client, study, token, body)
    assert again.status_code == 409
    assert "MG-002" in again.json()["detail"]


def test_same_subject_code_in_another_study_is_fine(client: TestClient, session: Session) -> None:
    for _ in range(2):
        study, sites = create_study(session)
        token = staff_token(session, role="investigator", study=study)
        body = _enrol_body(sites["X"], subject_code="MG-001")
        assert _enrol(client, study, token, body).status_code == 201


@pytest.mark.parametrize("zone", ["CEST", "UTC+02:00", "Europe/Atlantis", "+01:00"])
def test_enrol_refuses_a_non_iana_time_zone(
    client: TestClient, two_sites: tuple[Study, dict[str, Site], str], zone: str
) -> None:
    study, sites, token = two_sites
    response = _enrol(client, study, token, _enrol_body(sites["X"], time_zone=zone))
    assert response.status_code == 422
    assert "body.time_zone" in error_locs(response)


def test_enrol_at_an_unknown_site_is_404(
    client: TestClient, session: Session, two_sites: tuple[Study, dict[str, Site], str]
) -> None:
    study, _, _ = two_sites
    other_study, other_sites = create_study(session)
    whole_study = staff_token(session, role="investigator", study=study)
    for site_id in (uuid.uuid4(), other_sites["X"].id):
        body = {"subject_code": "MG-003", "site_id": str(site_id), "time_zone": "UTC"}
        response = _enrol(client, study, whole_study, body)
        assert response.status_code == 404, response.text


def test_enrol_at_a_site_outside_the_investigators_sites_is_404(
    client: TestClient, two_sites: tuple[Study, dict[str, Site], str]
) -> None:
    study, sites, token = two_sites
    response = _enrol(client, study, token, _enrol_body(sites["Y"]))
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("extra", "loc"),
    [
        ({"id": "00000000-0000-0000-0000-000000000001"}, "body.id"),
        ({"status": "withdrawn"}, "body.status"),
        ({"activated": True}, "body.activated"),
        ({"study_id": "00000000-0000-0000-0000-000000000001"}, "body.study_id"),
        ({"protocol_version": 7}, "body.protocol_version"),
        ({"activation_code": "AAAA-BBBB-CC"}, "body.activation_code"),
        ({"name": "Jane Doe"}, "body.name"),
    ],
)
def test_enrol_refuses_server_owned_and_unknown_fields(
    client: TestClient,
    session: Session,
    two_sites: tuple[Study, dict[str, Site], str],
    extra: dict[str, Any],
    loc: str,
) -> None:
    study, sites, token = two_sites
    response = _enrol(client, study, token, {**_enrol_body(sites["X"]), **extra})
    assert response.status_code == 422, response.text
    assert loc in error_locs(response)
    assert session.exec(select(Participant).where(Participant.study_id == study.id)).all() == []


def test_enrol_validates_dose_level_against_the_protocol(
    client: TestClient, session: Session
) -> None:
    # trials.md section 2: the CAR-T protocol has dose levels DL1..DL3.
    study, sites = create_study(
        session, **{**CAR_T_CD19_BCMA_NCT06371040, "registry_id": f"T-{uuid.uuid4().hex[:6]}"}
    )
    token = staff_token(session, role="investigator", study=study)
    ok = _enrol(client, study, token, _enrol_body(sites["SITE-01"], dose_level="DL2"))
    assert ok.status_code == 201, ok.text
    assert ok.json()["dose_level"] == "DL2"
    bad = _enrol(client, study, token, _enrol_body(sites["SITE-01"], dose_level="DL4"))
    assert bad.status_code == 422
    assert "body.dose_level" in error_locs(bad)
    assert "DL1, DL2, DL3" in bad.json()["detail"]


def test_dose_level_refused_when_the_protocol_has_none(
    client: TestClient, two_sites: tuple[Study, dict[str, Site], str]
) -> None:
    study, sites, token = two_sites  # blinatumomab: no dose levels
    bad = _enrol(client, study, token, _enrol_body(sites["X"], dose_level="DL1"))
    assert bad.status_code == 422
    assert "body.dose_level" in error_locs(bad)


def test_enrol_refuses_a_future_enrolment_date(
    client: TestClient, two_sites: tuple[Study, dict[str, Site], str]
) -> None:
    study, sites, token = two_sites
    later = (date.today() + timedelta(days=10)).isoformat()
    response = _enrol(client, study, token, _enrol_body(sites["X"], enrolled_on=later))
    assert response.status_code == 422
    assert "body.enrolled_on" in error_locs(response)


# --- listing ---------------------------------------------------------------------------------


def test_list_pages_without_duplicates_or_gaps(
    client: TestClient, session: Session, two_sites: tuple[Study, dict[str, Site], str]
) -> None:
    study, sites, _ = two_sites
    created = {
        str(create_participant(session, study=study, site=sites["X"])[0].id) for _ in range(7)
    }
    token = staff_token(session, role="monitor", study=study)
    url = f"{PORTAL}/studies/{study.id}/participants"
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get(url, params=params, headers=bearer(token))
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["items"]) <= 3
        seen += [row["id"] for row in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert len(seen) == len(set(seen)) == 7
    assert set(seen) == created
    codes = [p["subject_code"] for p in client.get(url, headers=bearer(token)).json()["items"]]
    assert codes == sorted(codes)


@pytest.mark.parametrize("limit", [0, 201, -1])
def test_list_limit_out_of_range_is_422(
    client: TestClient, two_sites: tuple[Study, dict[str, Site], str], limit: int
) -> None:
    study, _, token = two_sites
    response = client.get(
        f"{PORTAL}/studies/{study.id}/participants", params={"limit": limit}, headers=bearer(token)
    )
    assert response.status_code == 422
    assert "query.limit" in error_locs(response)


def test_list_tampered_or_foreign_cursor_is_400(
    client: TestClient, session: Session, two_sites: tuple[Study, dict[str, Site], str]
) -> None:
    study, sites, token = two_sites
    for _ in range(3):
        create_participant(session, study=study, site=sites["X"])
    url = f"{PORTAL}/studies/{study.id}/participants"
    cursor = client.get(url, params={"limit": 1}, headers=bearer(token)).json()["next_cursor"]
    assert cursor
    flipped = cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1]
    for bad in (flipped, "not-a-cursor", cursor[:-4]):
        response = client.get(url, params={"cursor": bad}, headers=bearer(token))
        assert response.status_code == 400, (bad, response.text)
        assert response.json()["code"] == "invalid_cursor"
    # A cursor from the study list is not a participant-list cursor.
    admin = staff_token(session, role="admin")
    create_study(session)
    studies_cursor = client.get(
        f"{PORTAL}/studies", params={"limit": 1}, headers=bearer(admin)
    ).json()["next_cursor"]
    assert studies_cursor
    foreign = client.get(url, params={"cursor": studies_cursor}, headers=bearer(token))
    assert foreign.status_code == 400


def test_list_filters_by_site_and_status(
    client: TestClient, session: Session, two_sites: tuple[Study, dict[str, Site], str]
) -> None:
    study, sites, _ = two_sites
    at_x, _ = create_participant(session, study=study, site=sites["X"])
    screening_x, _ = create_participant(session, study=study, site=sites["X"], status="screening")
    at_y, _ = create_participant(session, study=study, site=sites["Y"])
    monitor = staff_token(session, role="monitor", study=study)
    url = f"{PORTAL}/studies/{study.id}/participants"

    def ids(**params: str) -> set[str]:
        response = client.get(url, params=params, headers=bearer(monitor))
        assert response.status_code == 200, response.text
        return {row["id"] for row in response.json()["items"]}

    assert ids() == {str(at_x.id), str(screening_x.id), str(at_y.id)}
    assert ids(site_id=str(sites["Y"].id)) == {str(at_y.id)}
    assert ids(status="screening") == {str(screening_x.id)}
    assert ids(site_id=str(sites["X"].id), status="enrolled") == {str(at_x.id)}
    assert ids(status="withdrawn") == set()
    bad = client.get(url, params={"status": "deleted"}, headers=bearer(monitor))
    assert bad.status_code == 422


# --- changes, withdrawal, activation codes ----------------------------------------------------


def test_patch_with_reason_changes_and_audits_before_after(
    client: TestClient, session: Session, two_sites: tuple[Study, dict[str, Site], str]
) -> None:
    study, sites, token = two_sites
    participant, _ = create_participant(session, study=study, site=sites["X"])
    response = client.patch(
        f"{PORTAL}/participants/{participant.id}",
        json={"time_zone": "America/New_York", "day0_date": "2026-01-12", "reason": "Moved"},
        headers=bearer(token),
    )
    assert response.status_code == 200, response.text
    assert response.json()["time_zone"] == "America/New_York"
    assert response.json()["day0_date"] == "2026-01-12"
    rows = audit_rows(session, entity_id=str(participant.id), action="participant.update")
    assert len(rows) == 1
    assert rows[0].reason == "Moved"
    assert rows[0].changes == {
        "time_zone": {"before": "Europe/Berlin", "after": "America/New_York"},
        "day0_date": {"before": None, "after": "2026-01-12"},
    }


def test_patch_without_reason_is_422_and_changes_nothing(
    client: TestClient, session: Session, two_sites: tuple[Study, dict[str, Site], str]
) -> None:
    study, sites, token = two_sites
    participant, _ = create_participant(session, study=study, site=sites["X"])
    url = f"{PORTAL}/participants/{participant.id}"
    for body in ({"time_zone": "UTC"}, {"time_zone": "UTC", "reason": ""}):
        response = client.patch(url, json=body, headers=bearer(token))
        assert response.status_code == 422
        assert "body.reason" in error_locs(response)
    assert client.get(url, headers=bearer(token)).json()["time_zone"] == "Europe/Berlin"


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"status": "withdrawn", "reason": "skip the withdraw route"}, "body.status"),
        ({"subject_code": "NEW", "reason": "rename"}, "body.subject_code"),
        ({"activated": True, "reason": "force"}, "body.activated"),
        ({"study_id": str(uuid.uuid4()), "reason": "move"}, "body.study_id"),
        ({"time_zone": None, "reason": "clear"}, "body.time_zone"),
        ({"dose_level": "DL9", "reason": "cohort"}, "body.dose_level"),
    ],
)
def test_patch_refuses_fields_it_does_not_own(
    client: TestClient,
    session: Session,
    two_sites: tuple[Study, dict[str, Site], str],
    body: dict[str, Any],
    loc: str,
) -> None:
    study, sites, token = two_sites
    participant, _ = create_participant(session, study=study, site=sites["X"])
    response = client.patch(
        f"{PORTAL}/participants/{participant.id}", json=body, headers=bearer(token)
    )
    assert response.status_code == 422, response.text
    assert loc in error_locs(response)


def test_patch_cannot_move_a_participant_to_a_site_outside_the_callers_sites(
    client: TestClient, session: Session, two_sites: tuple[Study, dict[str, Site], str]
) -> None:
    study, sites, token = two_sites
    participant, _ = create_participant(session, study=study, site=sites["X"])
    url = f"{PORTAL}/participants/{participant.id}"
    moved = client.patch(
        url, json={"site_id": str(sites["Y"].id), "reason": "transfer"}, headers=bearer(token)
    )
    assert moved.status_code == 404, moved.text
    assert client.get(url, headers=bearer(token)).json()["site_id"] == str(sites["X"].id)
    # An investigator of both sites may transfer.
    both = staff_token(session, role="investigator", study=study)
    moved = client.patch(
        url, json={"site_id": str(sites["Y"].id), "reason": "transfer"}, headers=bearer(both)
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["site_id"] == str(sites["Y"].id)


def test_withdraw_needs_a_reason_and_happens_once(
    client: TestClient, session: Session, two_sites: tuple[Study, dict[str, Site], str]
) -> None:
    study, sites, token = two_sites
    participant, _ = create_participant(session, study=study, site=sites["X"])
    url = f"{PORTAL}/participants/{participant.id}/withdraw"
    for body in ({}, {"reason": " "}):
        missing = client.post(url, json=body, headers=bearer(token))
        assert missing.status_code == 422
        assert "body.reason" in error_locs(missing)

    response = client.post(url, json={"reason": "Consent withdrawn"}, headers=bearer(token))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "withdrawn"
    assert body["withdrawal_reason"] == "Consent withdrawn"
    assert body["withdrawn_at"] is not None

    again = client.post(url, json={"reason": "Consent withdrawn"}, headers=bearer(token))
    assert again.status_code == 409
    # The record is frozen, and no new activation code is issued.
    patch = client.patch(
        f"{PORTAL}/participants/{participant.id}",
        json={"time_zone": "UTC", "reason": "late fix"},
        headers=bearer(token),
    )
    assert patch.status_code == 409
    code = client.post(
        f"{PORTAL}/participants/{participant.id}/activation-code", headers=bearer(token)
    )
    assert code.status_code == 409


def test_withdrawal_locks_the_app_out(
    client: TestClient, session: Session, two_sites: tuple[Study, dict[str, Site], str]
) -> None:
    study, sites, token = two_sites
    enrolled = _enrol(client, study, token, _enrol_body(sites["X"])).json()
    tokens = client.post("/auth/v1/activate", json={"activation_code": enrolled["activation_code"]})
    app_token = tokens.json()["access_token"]
    assert client.get("/app/v1/me", headers=bearer(app_token)).status_code == 200
    client.post(
        f"{PORTAL}/participants/{enrolled['id']}/withdraw",
        json={"reason": "Consent withdrawn"},
        headers=bearer(token),
    )
    assert client.get("/app/v1/me", headers=bearer(app_token)).status_code in (401, 403)
    refreshed = client.post(
        "/auth/v1/refresh", json={"refresh_token": tokens.json()["refresh_token"]}
    )
    assert refreshed.status_code == 401


def test_activation_code_reissue_replaces_the_old_code(
    client: TestClient, session: Session, two_sites: tuple[Study, dict[str, Site], str]
) -> None:
    study, sites, token = two_sites
    enrolled = _enrol(client, study, token, _enrol_body(sites["X"])).json()
    response = client.post(
        f"{PORTAL}/participants/{enrolled['id']}/activation-code", headers=bearer(token)
    )
    assert response.status_code == 201, response.text
    new_code = response.json()["activation_code"]
    assert CODE_SHAPE.match(new_code)
    assert new_code != enrolled["activation_code"]
    assert response.json()["participant_id"] == enrolled["id"]
    old = client.post("/auth/v1/activate", json={"activation_code": enrolled["activation_code"]})
    assert old.status_code == 401
    assert client.post("/auth/v1/activate", json={"activation_code": new_code}).status_code == 200


def test_monitor_reads_but_cannot_write(client: TestClient, session: Session) -> None:
    study, sites = create_study(session)
    participant, _ = create_participant(session, study=study, site=sites["X"])
    monitor = staff_token(session, role="monitor", study=study)
    headers = bearer(monitor)
    assert client.get(f"{PORTAL}/participants/{participant.id}", headers=headers).status_code == 200
    listed = client.get(f"{PORTAL}/studies/{study.id}/participants", headers=headers)
    assert [p["id"] for p in listed.json()["items"]] == [str(participant.id)]

    assert _enrol(client, study, monitor, _enrol_body(sites["X"])).status_code == 403
    p_url = f"{PORTAL}/participants/{participant.id}"
    assert (
        client.patch(
            p_url, json={"time_zone": "UTC", "reason": "x" * 5}, headers=headers
        ).status_code
        == 403
    )
    assert (
        client.post(f"{p_url}/withdraw", json={"reason": "why not"}, headers=headers).status_code
        == 403
    )
    assert client.post(f"{p_url}/activation-code", headers=headers).status_code == 403
    session.expire_all()
    assert session.get(Participant, participant.id).status == "enrolled"  # type: ignore[union-attr]


# --- BOLA: site-to-site and audience -----------------------------------------------------------

OBJECT_ROUTES = [
    ("GET", "/participants/{id}", None),
    ("PATCH", "/participants/{id}", {"time_zone": "UTC", "reason": "probe"}),
    ("POST", "/participants/{id}/withdraw", {"reason": "probe"}),
    ("POST", "/participants/{id}/activation-code", None),
]


@pytest.mark.parametrize(("method", "path", "body"), OBJECT_ROUTES)
def test_site_x_investigator_cannot_tell_site_y_participants_from_unknown_ids(
    client: TestClient,
    session: Session,
    two_sites: tuple[Study, dict[str, Site], str],
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    study, sites, token = two_sites
    at_y, _ = create_participant(session, study=study, site=sites["Y"])
    # Participants of another study as well, even one the caller has a role in.
    other_study, other_sites = create_study(session)
    in_other, _ = create_participant(session, study=other_study, site=other_sites["X"])

    def call(target: uuid.UUID) -> Any:
        return client.request(
            method, PORTAL + path.format(id=target), json=body, headers=bearer(token)
        )

    unknown = comparable_problem(call(uuid.uuid4()))
    assert unknown["status"] == 404
    assert comparable_problem(call(at_y.id)) == unknown
    assert comparable_problem(call(in_other.id)) == unknown

    session.expire_all()
    untouched = session.get(Participant, at_y.id)
    assert untouched is not None
    assert untouched.status == "enrolled"
    assert untouched.time_zone == "Europe/Berlin"
    assert audit_rows(session, participant_id=at_y.id, actor_role="investigator") == []


def test_site_y_participants_never_appear_in_site_x_lists(
    client: TestClient, session: Session, two_sites: tuple[Study, dict[str, Site], str]
) -> None:
    study, sites, token = two_sites
    at_x, _ = create_participant(session, study=study, site=sites["X"])
    for _ in range(3):
        create_participant(session, study=study, site=sites["Y"])
    url = f"{PORTAL}/studies/{study.id}/participants"
    for params in ({}, {"site_id": str(sites["Y"].id)}, {"status": "enrolled"}, {"limit": 1}):
        response = client.get(url, params=params, headers=bearer(token))
        assert response.status_code == 200
        assert {row["site_id"] for row in response.json()["items"]} <= {str(sites["X"].id)}
    whole = client.get(url, headers=bearer(token)).json()
    assert [row["id"] for row in whole["items"]] == [str(at_x.id)]
    assert whole["next_cursor"] is None


def test_study_lists_of_another_study_are_404(
    client: TestClient, session: Session, two_sites: tuple[Study, dict[str, Site], str]
) -> None:
    _, _, token = two_sites
    other_study, other_sites = create_study(session)
    create_participant(session, study=other_study, site=other_sites["X"])
    url = f"{PORTAL}/studies/{other_study.id}/participants"
    assert client.get(url, headers=bearer(token)).status_code == 404
    enrol = _enrol(client, other_study, token, _enrol_body(other_sites["X"]))
    assert enrol.status_code == 404


def test_participant_token_cannot_reach_portal_routes(
    client: TestClient, session: Session, two_sites: tuple[Study, dict[str, Site], str]
) -> None:
    study, sites, _ = two_sites
    participant, _ = create_participant(session, study=study, site=sites["X"])
    headers = bearer(participant_token(participant))
    for method, path, body in [
        *OBJECT_ROUTES,
        ("GET", f"/studies/{study.id}/participants", None),
        ("POST", f"/studies/{study.id}/participants", _enrol_body(sites["X"])),
        ("GET", "/studies", None),
        ("GET", "/audit-events", None),
    ]:
        response = client.request(
            method, PORTAL + path.format(id=participant.id), json=body, headers=headers
        )
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


# --- pseudonymisation ----------------------------------------------------------------------

FORBIDDEN_COLUMN = re.compile(r"name|email|e_mail|phone|mobile|address|dob|birth|surname")
#: Columns that match a pattern but hold no personal data: a clinic's own name, and the worker's
#: "host:pid:thread" label.
ALLOWED_COLUMNS = {("site", "name"), ("worker_heartbeat", "name")}


def test_schema_has_no_direct_identifier_columns(session: Session) -> None:
    offenders = [
        (table.name, column.name)
        for table in SQLModel.metadata.sorted_tables
        for column in table.columns
        if FORBIDDEN_COLUMN.search(column.name.lower())
        and (table.name, column.name) not in ALLOWED_COLUMNS
    ]
    assert offenders == []
    # The migrated database agrees with the models (no identifier columns added by hand).
    inspector = inspect(session.connection())
    live = {
        (table, column["name"])
        for table in inspector.get_table_names()
        for column in inspector.get_columns(table)
        if FORBIDDEN_COLUMN.search(column["name"].lower())
    }
    assert live <= ALLOWED_COLUMNS
    assert "participant" in {t.name for t in SQLModel.metadata.sorted_tables}
