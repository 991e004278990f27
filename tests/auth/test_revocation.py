"""Checklist A7: a still-valid token stops working on the very next request after revocation."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.auth import service as auth_service
from app.auth.models import StaffMembership, StaffUser
from tests.auth.conftest import World
from tests.auth.helpers import APP_ME, PORTAL_STUDIES, PROBLEM, assert_unauthorized
from tests.factories import (
    TEST_ACTOR,
    bearer,
    create_participant,
    participant_token,
    staff_token,
)


def _withdraw(client: TestClient, world: World) -> None:
    response = client.post(
        f"/portal/v1/participants/{world.participant.id}/withdraw",
        headers=bearer(world.investigator_token),
        json={"reason": "Withdrew consent at visit 4"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "withdrawn"


def _study_ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [s["id"] for s in response.json()["items"]]


def test_withdrawn_participant_token_is_refused_on_the_next_request(
    client: TestClient, world: World
) -> None:
    token = participant_token(world.participant, ttl=3600)
    assert client.get(APP_ME, headers=bearer(token)).status_code == 200
    _withdraw(client, world)
    response = client.get(APP_ME, headers=bearer(token))
    assert response.status_code == 403, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["code"] == "participant_withdrawn"
    assert {"type", "title", "status", "code"} <= set(body)


def test_withdrawn_participant_session_from_activation_is_refused(
    client: TestClient, world: World
) -> None:
    """The app's real tokens carry a session family, which withdrawal revokes too.

    The app still learns *why* (403 participant_withdrawn), so it can say that participation
    ended instead of asking for a new activation code.
    """
    pair = client.post("/auth/v1/activate", json={"activation_code": world.activation_code})
    access = pair.json()["access_token"]
    assert client.get(APP_ME, headers=bearer(access)).status_code == 200
    _withdraw(client, world)
    response = client.get(APP_ME, headers=bearer(access))
    assert response.status_code == 403, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["code"] == "participant_withdrawn"


def test_other_participants_are_not_affected_by_a_withdrawal(
    client: TestClient, world: World, session: Session
) -> None:
    other, _ = create_participant(session, study=world.study, site=world.sites["X"])
    token = participant_token(other)
    _withdraw(client, world)
    assert client.get(APP_ME, headers=bearer(token)).status_code == 200


def test_deactivated_staff_token_is_refused_on_the_next_request(
    client: TestClient, world: World, session: Session
) -> None:
    assert _study_ids(client.get(PORTAL_STUDIES, headers=bearer(world.investigator_token))) == [
        str(world.study.id)
    ]
    user = session.exec(
        select(StaffUser).where(StaffUser.subject == world.investigator_subject)
    ).one()
    auth_service.set_staff_active(
        session, user=user, active=False, actor=TEST_ACTOR, reason="Left the site"
    )
    assert_unauthorized(client.get(PORTAL_STUDIES, headers=bearer(world.investigator_token)))
    assert_unauthorized(
        client.get(f"/portal/v1/studies/{world.study.id}", headers=bearer(world.investigator_token))
    )
    # Reactivation restores access with the same (unexpired) token.
    auth_service.set_staff_active(
        session, user=user, active=True, actor=TEST_ACTOR, reason="Returned to the site"
    )
    assert client.get(PORTAL_STUDIES, headers=bearer(world.investigator_token)).status_code == 200


def test_revoked_membership_hides_the_study_on_the_next_request(
    client: TestClient, world: World, session: Session
) -> None:
    admin = staff_token(session, role="admin", study=world.study)
    investigator = bearer(world.investigator_token)
    study_url = f"/portal/v1/studies/{world.study.id}"
    assert client.get(study_url, headers=investigator).status_code == 200
    participant_url = f"/portal/v1/participants/{world.participant.id}"
    assert client.get(participant_url, headers=investigator).status_code == 200

    user = session.exec(
        select(StaffUser).where(StaffUser.subject == world.investigator_subject)
    ).one()
    membership = session.exec(
        select(StaffMembership).where(StaffMembership.staff_user_id == user.id)
    ).one()
    revoked = client.post(
        f"/portal/v1/staff-memberships/{membership.id}/revoke",
        headers=bearer(admin),
        json={"reason": "Moved to another hospital"},
    )
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None

    # The token is still valid (the user exists and is active), but the study is gone.
    assert _study_ids(client.get(PORTAL_STUDIES, headers=investigator)) == []
    for url in (study_url, participant_url, f"{study_url}/participants"):
        response = client.get(url, headers=investigator)
        assert response.status_code == 404, (url, response.text)
        assert response.headers["content-type"].startswith(PROBLEM)
    enrol = client.post(
        f"{study_url}/participants",
        headers=investigator,
        json={
            "subject_code": "MG-LATE-1",
            "site_id": str(world.sites["X"].id),
            "time_zone": "Europe/Berlin",
        },
    )
    assert enrol.status_code == 404, enrol.text


def test_revoking_one_site_keeps_the_other(
    client: TestClient, world: World, session: Session
) -> None:
    """An investigator at sites X and Y loses X only: X's participant is 404, Y's stays."""
    user = session.exec(
        select(StaffUser).where(StaffUser.subject == world.investigator_subject)
    ).one()
    auth_service.grant_membership(
        session,
        user=user,
        role="investigator",
        study_id=world.study.id,
        site_id=world.sites["Y"].id,
        actor=TEST_ACTOR,
    )
    at_y, _ = create_participant(session, study=world.study, site=world.sites["Y"])
    x_membership = session.exec(
        select(StaffMembership).where(
            StaffMembership.staff_user_id == user.id,
            StaffMembership.site_id == world.sites["X"].id,
        )
    ).one()
    investigator = bearer(world.investigator_token)
    x_url = f"/portal/v1/participants/{world.participant.id}"
    y_url = f"/portal/v1/participants/{at_y.id}"
    assert client.get(x_url, headers=investigator).status_code == 200

    auth_service.revoke_membership(
        session, membership=x_membership, actor=TEST_ACTOR, reason="No longer at site X"
    )
    assert client.get(x_url, headers=investigator).status_code == 404
    assert client.get(y_url, headers=investigator).status_code == 200
