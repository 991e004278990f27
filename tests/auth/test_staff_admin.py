"""Staff administration: deactivating accounts and granting roles with a reason (audited)."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.audit.models import AuditEvent
from app.auth.models import StaffUser
from tests.factories import bearer, create_study, staff_token


def _user(session: Session, subject: str) -> StaffUser:
    user = session.exec(select(StaffUser).where(StaffUser.subject == subject)).one()
    return user


def test_system_admin_deactivates_an_investigator_effective_next_request(
    client: TestClient, session: Session
) -> None:
    study, sites = create_study(session)
    investigator = staff_token(session, role="investigator", study=study, subject="inv-deact")
    admin = staff_token(session, role="admin")
    assert (
        client.get(f"/portal/v1/studies/{study.id}", headers=bearer(investigator)).status_code
        == 200
    )

    user = _user(session, "inv-deact")
    response = client.post(
        f"/portal/v1/staff-users/{user.id}/deactivate",
        json={"reason": "Left the study team"},
        headers=bearer(admin),
    )
    assert response.status_code == 200, response.text
    assert response.json()["active"] is False
    assert response.json()["deactivated_at"] is not None

    refused = client.get(f"/portal/v1/studies/{study.id}", headers=bearer(investigator))
    assert refused.status_code == 401

    event = session.exec(
        select(AuditEvent).where(
            AuditEvent.entity_id == str(user.id), AuditEvent.action == "staff_user.update"
        )
    ).one()
    assert event.reason == "Left the study team"
    assert event.changes == {"active": {"before": True, "after": False}}

    back = client.post(
        f"/portal/v1/staff-users/{user.id}/reactivate",
        json={"reason": "Rejoined"},
        headers=bearer(admin),
    )
    assert back.status_code == 200
    assert (
        client.get(f"/portal/v1/studies/{study.id}", headers=bearer(investigator)).status_code
        == 200
    )


def test_deactivation_needs_a_system_admin_and_a_reason(
    client: TestClient, session: Session
) -> None:
    study, _ = create_study(session)
    staff_token(session, role="investigator", study=study, subject="inv-target")
    study_admin = staff_token(session, role="admin", study=study)
    target = _user(session, "inv-target")

    forbidden = client.post(
        f"/portal/v1/staff-users/{target.id}/deactivate",
        json={"reason": "Left the team"},
        headers=bearer(study_admin),
    )
    assert forbidden.status_code == 403

    admin = staff_token(session, role="admin", subject="sysadmin")
    missing = client.post(
        f"/portal/v1/staff-users/{target.id}/deactivate", json={}, headers=bearer(admin)
    )
    assert missing.status_code == 422
    assert ["body", "reason"] in [e["loc"] for e in missing.json()["errors"]]

    unknown = client.post(
        f"/portal/v1/staff-users/{uuid.uuid4()}/deactivate",
        json={"reason": "Left the team"},
        headers=bearer(admin),
    )
    assert unknown.status_code == 404

    self_user = _user(session, "sysadmin")
    own = client.post(
        f"/portal/v1/staff-users/{self_user.id}/deactivate",
        json={"reason": "Testing"},
        headers=bearer(admin),
    )
    assert own.status_code == 409


def test_grant_records_its_reason_and_names_the_staff_user(
    client: TestClient, session: Session
) -> None:
    study, sites = create_study(session)
    admin = staff_token(session, role="admin", study=study)
    response = client.post(
        f"/portal/v1/studies/{study.id}/staff",
        json={
            "subject": "new-monitor",
            "role": "monitor",
            "reason": "Assigned as study monitor",
        },
        headers=bearer(admin),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["staff_user_id"] == str(_user(session, "new-monitor").id)
    event = session.exec(
        select(AuditEvent).where(
            AuditEvent.entity_id == body["id"], AuditEvent.action == "staff_membership.grant"
        )
    ).one()
    assert event.reason == "Assigned as study monitor"
