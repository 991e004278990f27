"""Portal study routes: create, read (scoped), protocol versions, templates, staff memberships."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.studies.builtin import BUILTIN_PROTOCOLS, CAR_T_CD19_BCMA_NCT06371040
from tests.domain_helpers import (
    PORTAL,
    definition_body,
    error_locs,
    portal_token_for,
)
from tests.factories import bearer, create_participant, create_study, staff_token


def test_system_admin_creates_a_study_with_sites_and_version_1(
    client: TestClient, session: Session
) -> None:
    token = staff_token(session, role="admin")
    body = definition_body()
    response = client.post(f"{PORTAL}/studies", json=body, headers=bearer(token))
    assert response.status_code == 201, response.text
    study = response.json()
    assert study["registry_id"] == body["registry_id"]
    assert study["protocol_version"] == 1
    assert sorted((s["code"], s["name"]) for s in study["sites"]) == [
        ("X", "Site X"),
        ("Y", "Site Y"),
    ]
    assert all(uuid.UUID(s["id"]) for s in study["sites"])
    assert study["protocol"]["visits"]["count"] == 7

    detail = client.get(f"{PORTAL}/studies/{study['id']}", headers=bearer(token))
    assert detail.status_code == 200
    assert detail.json()["sites"] == study["sites"]
    assert detail.json()["protocol_version"] == 1


@pytest.mark.parametrize("role", ["admin", "investigator", "monitor"])
def test_only_a_system_admin_creates_studies(
    client: TestClient, session: Session, role: str
) -> None:
    study, _ = create_study(session)
    token = staff_token(session, role=role, study=study)  # a role inside one study
    response = client.post(f"{PORTAL}/studies", json=definition_body(), headers=bearer(token))
    assert response.status_code == 403, response.text


def test_duplicate_registry_id_is_a_conflict(client: TestClient, session: Session) -> None:
    token = staff_token(session, role="admin")
    body = definition_body()
    assert client.post(f"{PORTAL}/studies", json=body, headers=bearer(token)).status_code == 201
    again = client.post(f"{PORTAL}/studies", json=body, headers=bearer(token))
    assert again.status_code == 409, again.text
    assert body["registry_id"] in again.json()["detail"]


@pytest.mark.parametrize("registry_id", ["", " "])
def test_blank_registry_id_is_a_validation_error_not_a_crash(
    client: TestClient, session: Session, registry_id: str
) -> None:
    token = staff_token(session, role="admin")
    for _ in range(2):
        response = client.post(
            f"{PORTAL}/studies",
            json=definition_body(registry_id=registry_id),
            headers=bearer(token),
        )
        assert response.status_code == 422, response.text
        assert "body.registry_id" in error_locs(response)


def test_studies_without_registry_id_can_coexist(client: TestClient, session: Session) -> None:
    token = staff_token(session, role="admin")
    for _ in range(2):
        response = client.post(
            f"{PORTAL}/studies", json=definition_body(registry_id=None), headers=bearer(token)
        )
        assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("extra", "loc"),
    [
        ({"status": "closed"}, "body.status"),
        ({"id": str(uuid.uuid4())}, "body.id"),
        ({"created_by": "mallory"}, "body.created_by"),
    ],
)
def test_unknown_field_in_a_study_body_is_refused_by_name(
    client: TestClient, session: Session, extra: dict[str, str], loc: str
) -> None:
    token = staff_token(session, role="admin")
    response = client.post(
        f"{PORTAL}/studies", json={**definition_body(), **extra}, headers=bearer(token)
    )
    assert response.status_code == 422, response.text
    assert loc in error_locs(response)
    assert loc in response.json()["detail"]


def test_invalid_definition_is_422_naming_the_rule(client: TestClient, session: Session) -> None:
    token = staff_token(session, role="admin")
    body = definition_body(time_zone="UTC+1")
    response = client.post(f"{PORTAL}/studies", json=body, headers=bearer(token))
    assert response.status_code == 422
    assert "body.time_zone" in error_locs(response)


def test_reads_are_scoped_to_the_callers_studies(client: TestClient, session: Session) -> None:
    study_a, sites_a = create_study(session)
    study_b, _ = create_study(session)
    token = staff_token(session, role="investigator", study=study_a, site=sites_a["X"])

    listed = client.get(f"{PORTAL}/studies", headers=bearer(token))
    assert listed.status_code == 200
    assert [s["id"] for s in listed.json()["items"]] == [str(study_a.id)]

    assert client.get(f"{PORTAL}/studies/{study_a.id}", headers=bearer(token)).status_code == 200
    other = client.get(f"{PORTAL}/studies/{study_b.id}", headers=bearer(token))
    unknown = client.get(f"{PORTAL}/studies/{uuid.uuid4()}", headers=bearer(token))
    assert other.status_code == unknown.status_code == 404
    assert other.json()["detail"] == unknown.json()["detail"]
    versions = client.get(f"{PORTAL}/studies/{study_b.id}/protocol-versions", headers=bearer(token))
    assert versions.status_code == 404


def test_system_admin_lists_every_study(client: TestClient, session: Session) -> None:
    study_a, _ = create_study(session)
    study_b, _ = create_study(session)
    token = staff_token(session, role="admin")
    ids = {s["id"] for s in client.get(f"{PORTAL}/studies", headers=bearer(token)).json()["items"]}
    assert {str(study_a.id), str(study_b.id)} <= ids


def _amended(study_registry_id: str | None) -> dict[str, object]:
    body = definition_body(registry_id=study_registry_id)
    body["visits"] = {**body["visits"], "window": {"before_days": 5, "after_days": 5}}
    return body


def test_protocol_amendment_adds_version_2_and_keeps_enrolled_participants_on_1(
    client: TestClient, session: Session
) -> None:
    study, sites = create_study(session)
    earlier, _ = create_participant(session, study=study, site=sites["X"])
    admin = staff_token(session, role="admin", study=study)
    investigator = staff_token(session, role="investigator", study=study, site=sites["X"])

    response = client.post(
        f"{PORTAL}/studies/{study.id}/protocol-versions",
        json={"definition": _amended(study.registry_id), "reason": "Amendment 1: wider windows"},
        headers=bearer(admin),
    )
    assert response.status_code == 201, response.text
    assert response.json()["version"] == 2
    assert response.json()["reason"] == "Amendment 1: wider windows"

    detail = client.get(f"{PORTAL}/studies/{study.id}", headers=bearer(admin)).json()
    assert detail["protocol_version"] == 2
    assert detail["protocol"]["visits"]["window"] == {"before_days": 5, "after_days": 5}
    versions = client.get(f"{PORTAL}/studies/{study.id}/protocol-versions", headers=bearer(admin))
    assert [v["version"] for v in versions.json()] == [1, 2]
    assert versions.json()[0]["definition"]["visits"]["window"]["before_days"] == 3

    kept = client.get(f"{PORTAL}/participants/{earlier.id}", headers=bearer(investigator))
    assert kept.json()["protocol_version"] == 1
    new = client.post(
        f"{PORTAL}/studies/{study.id}/participants",
        json={"subject_code": "NEW-001", "site_id": str(sites["X"].id), "time_zone": "UTC"},
        headers=bearer(investigator),
    )
    assert new.status_code == 201, new.text
    assert new.json()["protocol_version"] == 2


def test_protocol_amendment_needs_a_reason(client: TestClient, session: Session) -> None:
    study, _ = create_study(session)
    admin = staff_token(session, role="admin", study=study)
    url = f"{PORTAL}/studies/{study.id}/protocol-versions"
    missing = client.post(
        url, json={"definition": _amended(study.registry_id)}, headers=bearer(admin)
    )
    assert missing.status_code == 422
    assert "body.reason" in error_locs(missing)
    blank = client.post(
        url, json={"definition": _amended(study.registry_id), "reason": "  "}, headers=bearer(admin)
    )
    assert blank.status_code == 422
    detail = client.get(f"{PORTAL}/studies/{study.id}", headers=bearer(admin))
    assert detail.json()["protocol_version"] == 1


def test_protocol_amendment_rules(client: TestClient, session: Session) -> None:
    study, sites = create_study(session)
    admin = staff_token(session, role="admin", study=study)
    investigator = staff_token(session, role="investigator", study=study, site=sites["X"])
    url = f"{PORTAL}/studies/{study.id}/protocol-versions"
    body = {"definition": _amended(study.registry_id), "reason": "Amendment 1"}
    # Investigators cannot amend the protocol.
    assert client.post(url, json=body, headers=bearer(investigator)).status_code == 403
    # An amendment cannot change the registry id.
    other = {"definition": _amended("NCT00000000"), "reason": "Amendment 1"}
    assert client.post(url, json=other, headers=bearer(admin)).status_code == 409
    # An identical definition is not a new version.
    current = client.get(f"{PORTAL}/studies/{study.id}", headers=bearer(admin)).json()["protocol"]
    same = client.post(url, json={"definition": current, "reason": "no-op"}, headers=bearer(admin))
    assert same.status_code == 409


def test_protocol_templates_list_the_five_builtins(client: TestClient, session: Session) -> None:
    token = staff_token(session, role="monitor", study=create_study(session)[0])
    response = client.get(f"{PORTAL}/protocol-templates", headers=bearer(token))
    assert response.status_code == 200
    templates = response.json()
    assert len(templates) == 5
    assert {t["key"] for t in templates} == set(BUILTIN_PROTOCOLS)
    car_t = next(t for t in templates if t["key"] == "car-t-cd19-bcma-nct06371040")
    assert car_t["definition"]["registry_id"] == CAR_T_CD19_BCMA_NCT06371040["registry_id"]


def test_a_template_posts_as_a_study(client: TestClient, session: Session) -> None:
    token = staff_token(session, role="admin")
    templates = client.get(f"{PORTAL}/protocol-templates", headers=bearer(token)).json()
    hn2301 = next(t for t in templates if t["key"] == "hn2301")
    response = client.post(f"{PORTAL}/studies", json=hn2301["definition"], headers=bearer(token))
    assert response.status_code == 201, response.text
    assert response.json()["sites"][0]["code"] == "SITE-01"


def test_staff_grant_and_revoke_take_effect_on_the_next_request(
    client: TestClient, session: Session
) -> None:
    study, sites = create_study(session)
    participant, _ = create_participant(session, study=study, site=sites["X"])
    admin = staff_token(session, role="admin", study=study)
    subject = f"idp|{uuid.uuid4().hex[:8]}"
    newcomer = portal_token_for(subject)

    # Unknown to the service before the grant.
    assert client.get(f"{PORTAL}/studies", headers=bearer(newcomer)).status_code == 401

    granted = client.post(
        f"{PORTAL}/studies/{study.id}/staff",
        json={"subject": subject, "role": "investigator", "site_id": str(sites["X"].id)},
        headers=bearer(admin),
    )
    assert granted.status_code == 201, granted.text
    membership = granted.json()
    assert (membership["role"], membership["site_id"]) == ("investigator", str(sites["X"].id))
    assert membership["revoked_at"] is None

    assert client.get(f"{PORTAL}/studies/{study.id}", headers=bearer(newcomer)).status_code == 200
    read = client.get(f"{PORTAL}/participants/{participant.id}", headers=bearer(newcomer))
    assert read.status_code == 200

    staff_list = client.get(f"{PORTAL}/studies/{study.id}/staff", headers=bearer(admin)).json()
    assert membership["id"] in {m["id"] for m in staff_list}

    revoked = client.post(
        f"{PORTAL}/staff-memberships/{membership['id']}/revoke",
        json={"reason": "Left the site"},
        headers=bearer(admin),
    )
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None

    assert client.get(f"{PORTAL}/studies/{study.id}", headers=bearer(newcomer)).status_code == 404
    gone = client.get(f"{PORTAL}/participants/{participant.id}", headers=bearer(newcomer))
    assert gone.status_code == 404
    listed = client.get(f"{PORTAL}/studies", headers=bearer(newcomer))
    assert listed.json()["items"] == []


def test_staff_management_rules(client: TestClient, session: Session) -> None:
    study, sites = create_study(session)
    other_study, other_sites = create_study(session)
    admin = staff_token(session, role="admin", study=study)
    investigator = staff_token(session, role="investigator", study=study, site=sites["X"])
    grant = {"subject": "idp|someone", "role": "monitor"}
    url = f"{PORTAL}/studies/{study.id}/staff"
    # Investigators cannot grant roles; admins of another study do not see this one.
    assert client.post(url, json=grant, headers=bearer(investigator)).status_code == 403
    other_admin = staff_token(session, role="admin", study=other_study)
    assert client.post(url, json=grant, headers=bearer(other_admin)).status_code == 404
    # A site of another study is not a site of this one.
    foreign_site = {**grant, "site_id": str(other_sites["X"].id)}
    assert client.post(url, json=foreign_site, headers=bearer(admin)).status_code == 404
    # Roles are a closed list.
    bad_role = client.post(url, json={**grant, "role": "owner"}, headers=bearer(admin))
    assert bad_role.status_code == 422
    assert "body.role" in error_locs(bad_role)

    membership = client.post(url, json=grant, headers=bearer(admin)).json()
    revoke_url = f"{PORTAL}/staff-memberships/{membership['id']}/revoke"
    assert client.post(revoke_url, json={}, headers=bearer(admin)).status_code == 422
    outsider = client.post(revoke_url, json={"reason": "because"}, headers=bearer(other_admin))
    assert outsider.status_code == 404
    assert (
        client.post(
            revoke_url, json={"reason": "because"}, headers=bearer(investigator)
        ).status_code
        == 403
    )
