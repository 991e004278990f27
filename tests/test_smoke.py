from fastapi.testclient import TestClient
from sqlmodel import Session

from tests.factories import bearer, create_participant, create_study, participant_token, staff_token


def test_health_and_ready(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "database": None, "migrations": None}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["migrations"] == "head"


def test_participant_reads_own_profile(client: TestClient, session: Session) -> None:
    study, sites = create_study(session)
    participant, _ = create_participant(session, study=study, site=sites["X"])
    response = client.get("/app/v1/me", headers=bearer(participant_token(participant)))
    assert response.status_code == 200, response.text
    assert response.json()["subject_code"] == participant.subject_code


def test_investigator_lists_participants(client: TestClient, session: Session) -> None:
    study, sites = create_study(session)
    create_participant(session, study=study, site=sites["X"])
    token = staff_token(session, role="investigator", study=study, site=sites["X"])
    response = client.get(f"/portal/v1/studies/{study.id}/participants", headers=bearer(token))
    assert response.status_code == 200, response.text
    assert len(response.json()["items"]) == 1
