"""The audit trail: every write leaves who/what/why rows; reading is scoped; rows are append-only.

Checklist G-41 (completeness) and G-42 (immutability at the database).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, text, update
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col, select

from app.audit.models import AuditEvent
from app.studies.models import Study
from tests.domain_helpers import PORTAL, audit_rows, definition_body
from tests.factories import bearer, create_participant, create_study, staff_token

ANY = object()


@dataclass
class Expected:
    action: str
    entity_type: str
    entity_id: Any = ANY
    actor_type: str = "staff"
    actor_role: str = "investigator"
    actor_id: Any = ANY
    reason: Any = None
    #: Field -> (before, after); ANY matches any value. Only the listed fields are checked.
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)


@dataclass
class Done:
    response: Any
    expected: list[Expected]


def _matches(value: Any, wanted: Any) -> bool:
    return wanted is ANY or value == wanted


def _study_with_investigator(session: Session) -> tuple[Study, Any, str, str]:
    study, sites = create_study(session)
    subject = f"inv-{uuid.uuid4().hex[:6]}"
    token = staff_token(session, role="investigator", study=study, site=sites["X"], subject=subject)
    return study, sites, token, subject


def case_create_study(client: TestClient, session: Session) -> Done:
    subject = f"sysadmin-{uuid.uuid4().hex[:6]}"
    token = staff_token(session, role="admin", subject=subject)
    body = definition_body()
    response = client.post(f"{PORTAL}/studies", json=body, headers=bearer(token))
    study_id = response.json()["id"]
    admin = {"actor_role": "admin", "actor_id": subject}
    return Done(
        response,
        [
            Expected(
                "study.create",
                "study",
                study_id,
                changes={"registry_id": (None, body["registry_id"]), "protocol_version": (None, 1)},
                **admin,
            ),
            Expected(
                "protocol_version.create",
                "protocol_version",
                changes={"version": (None, 1)},
                **admin,
            ),
            Expected("site.create", "site", changes={"code": (None, "X")}, **admin),
            Expected("site.create", "site", changes={"code": (None, "Y")}, **admin),
        ],
    )


def case_amend_protocol(client: TestClient, session: Session) -> Done:
    study, _ = create_study(session)
    subject = f"admin-{uuid.uuid4().hex[:6]}"
    token = staff_token(session, role="admin", study=study, subject=subject)
    amended = definition_body(registry_id=study.registry_id, follow_up_end_day=196)
    reason = "Amendment 2: follow-up to week 28"
    response = client.post(
        f"{PORTAL}/studies/{study.id}/protocol-versions",
        json={"definition": amended, "reason": reason},
        headers=bearer(token),
    )
    admin = {"actor_role": "admin", "actor_id": subject, "reason": reason}
    return Done(
        response,
        [
            Expected(
                "protocol_version.create",
                "protocol_version",
                response.json()["id"],
                changes={"version": (None, 2), "definition": (ANY, ANY)},
                **admin,
            ),
            Expected(
                "study.update",
                "study",
                str(study.id),
                changes={"protocol_version": (1, 2)},
                **admin,
            ),
        ],
    )


def case_grant_staff(client: TestClient, session: Session) -> Done:
    study, sites = create_study(session)
    subject = f"admin-{uuid.uuid4().hex[:6]}"
    token = staff_token(session, role="admin", study=study, subject=subject)
    response = client.post(
        f"{PORTAL}/studies/{study.id}/staff",
        json={"subject": "idp|new-monitor", "role": "monitor", "site_id": str(sites["Y"].id)},
        headers=bearer(token),
    )
    return Done(
        response,
        [
            Expected("staff_user.create", "staff_user", actor_role="admin", actor_id=subject),
            Expected(
                "staff_membership.grant",
                "staff_membership",
                response.json()["id"],
                actor_role="admin",
                actor_id=subject,
                changes={"role": (None, "monitor"), "site_id": (None, str(sites["Y"].id))},
            ),
        ],
    )


def case_revoke_staff(client: TestClient, session: Session) -> Done:
    study, sites = create_study(session)
    subject = f"admin-{uuid.uuid4().hex[:6]}"
    token = staff_token(session, role="admin", study=study, subject=subject)
    granted = client.post(
        f"{PORTAL}/studies/{study.id}/staff",
        json={"subject": "idp|leaver", "role": "investigator"},
        headers=bearer(token),
    ).json()
    response = client.post(
        f"{PORTAL}/staff-memberships/{granted['id']}/revoke",
        json={"reason": "Left the trial team"},
        headers=bearer(token),
    )
    return Done(
        response,
        [
            Expected(
                "staff_membership.revoke",
                "staff_membership",
                granted["id"],
                actor_role="admin",
                actor_id=subject,
                reason="Left the trial team",
                changes={"revoked_at": (None, ANY)},
            )
        ],
    )


def case_enrol(client: TestClient, session: Session) -> Done:
    study, sites, token, subject = _study_with_investigator(session)
    response = client.post(
        f"{PORTAL}/studies/{study.id}/participants",
        json={"subject_code": "AUD-001", "site_id": str(sites["X"].id), "time_zone": "UTC"},
        headers=bearer(token),
    )
    pid = response.json()["id"]
    return Done(
        response,
        [
            Expected(
                "participant.enrol",
                "participant",
                pid,
                actor_id=subject,
                changes={
                    "subject_code": (None, "AUD-001"),
                    "site_id": (None, str(sites["X"].id)),
                    "status": (None, "enrolled"),
                    "time_zone": (None, "UTC"),
                },
            ),
            Expected(
                "activation_code.issue",
                "activation_code",
                actor_id=subject,
                changes={"expires_at": (None, ANY)},
            ),
        ],
    )


def case_patch(client: TestClient, session: Session) -> Done:
    study, sites, token, subject = _study_with_investigator(session)
    participant, _ = create_participant(session, study=study, site=sites["X"])
    response = client.patch(
        f"{PORTAL}/participants/{participant.id}",
        json={"status": "screening", "reason": "Entered in error as enrolled"},
        headers=bearer(token),
    )
    return Done(
        response,
        [
            Expected(
                "participant.update",
                "participant",
                str(participant.id),
                actor_id=subject,
                reason="Entered in error as enrolled",
                changes={"status": ("enrolled", "screening")},
            )
        ],
    )


def case_withdraw(client: TestClient, session: Session) -> Done:
    study, sites, token, subject = _study_with_investigator(session)
    participant, _ = create_participant(session, study=study, site=sites["X"])
    response = client.post(
        f"{PORTAL}/participants/{participant.id}/withdraw",
        json={"reason": "Consent withdrawn"},
        headers=bearer(token),
    )
    return Done(
        response,
        [
            Expected(
                "participant.withdraw",
                "participant",
                str(participant.id),
                actor_id=subject,
                reason="Consent withdrawn",
                changes={
                    "status": ("enrolled", "withdrawn"),
                    "withdrawal_reason": (None, "Consent withdrawn"),
                    "withdrawn_at": (None, ANY),
                },
            )
        ],
    )


def case_reissue_code(client: TestClient, session: Session) -> Done:
    study, sites, token, subject = _study_with_investigator(session)
    participant, _ = create_participant(session, study=study, site=sites["X"])
    response = client.post(
        f"{PORTAL}/participants/{participant.id}/activation-code", headers=bearer(token)
    )
    return Done(
        response,
        [
            Expected(
                "activation_code.issue",
                "activation_code",
                actor_id=subject,
                changes={"expires_at": (None, ANY)},
            )
        ],
    )


def case_activate(client: TestClient, session: Session) -> Done:
    study, sites, token, _ = _study_with_investigator(session)
    enrolled = client.post(
        f"{PORTAL}/studies/{study.id}/participants",
        json={"subject_code": "AUD-002", "site_id": str(sites["X"].id), "time_zone": "UTC"},
        headers=bearer(token),
    ).json()
    response = client.post(
        "/auth/v1/activate", json={"activation_code": enrolled["activation_code"]}
    )
    # Patient-originated actions are attributed to the participant.
    return Done(
        response,
        [
            Expected(
                "participant.activate",
                "activation_code",
                actor_type="participant",
                actor_role="participant",
                actor_id=enrolled["id"],
                changes={"used_at": (None, ANY)},
            )
        ],
    )


CASES: dict[str, Callable[[TestClient, Session], Done]] = {
    "POST /studies": case_create_study,
    "POST /studies/{id}/protocol-versions": case_amend_protocol,
    "POST /studies/{id}/staff": case_grant_staff,
    "POST /staff-memberships/{id}/revoke": case_revoke_staff,
    "POST /studies/{id}/participants": case_enrol,
    "PATCH /participants/{id}": case_patch,
    "POST /participants/{id}/withdraw": case_withdraw,
    "POST /participants/{id}/activation-code": case_reissue_code,
    "POST /auth/v1/activate": case_activate,
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_every_write_route_leaves_who_what_why(
    client: TestClient, session: Session, case: Callable[[TestClient, Session], Done]
) -> None:
    start = datetime.now(UTC)
    seen = {e.id for e in audit_rows(session)}
    done = case(client, session)
    assert done.response.status_code in (200, 201), done.response.text
    request_id = done.response.headers["X-Request-ID"]
    # The rows written by the action's request (setup requests have other request ids).
    new = [e for e in audit_rows(session) if e.id not in seen and e.request_id == request_id]
    assert len(new) == len(done.expected), [(e.action, e.changes) for e in new]
    unmatched = list(new)
    for wanted in done.expected:
        row = next(
            (
                e
                for e in unmatched
                if e.action == wanted.action
                and all(
                    k in e.changes
                    and _matches(e.changes[k]["before"], b)
                    and _matches(e.changes[k]["after"], a)
                    for k, (b, a) in wanted.changes.items()
                )
            ),
            None,
        )
        assert row is not None, (wanted, [(e.action, e.changes) for e in unmatched])
        unmatched.remove(row)
        assert row.entity_type == wanted.entity_type
        assert _matches(row.entity_id, wanted.entity_id)
        assert row.actor_type == wanted.actor_type
        assert row.actor_role == wanted.actor_role
        assert _matches(row.actor_id, wanted.actor_id)
        assert row.reason == wanted.reason
        assert start - timedelta(seconds=1) <= row.occurred_at <= datetime.now(UTC)
        assert row.occurred_at.utcoffset() == timedelta(0)
        # Field-level: only changed fields, each with before and after.
        for change in row.changes.values():
            assert set(change) == {"before", "after"}
            assert change["before"] != change["after"]


def test_refused_writes_leave_no_audit_rows(client: TestClient, session: Session) -> None:
    study, sites, token, _ = _study_with_investigator(session)
    participant, _ = create_participant(session, study=study, site=sites["X"])
    seen = {e.id for e in audit_rows(session)}
    attempts = [
        client.patch(
            f"{PORTAL}/participants/{participant.id}",
            json={"time_zone": "UTC"},  # no reason
            headers=bearer(token),
        ),
        client.post(
            f"{PORTAL}/participants/{participant.id}/withdraw", json={}, headers=bearer(token)
        ),
        client.post(
            f"{PORTAL}/studies/{study.id}/participants",
            json={
                "subject_code": participant.subject_code,  # duplicate: refused after checks
                "site_id": str(sites["X"].id),
                "time_zone": "UTC",
            },
            headers=bearer(token),
        ),
    ]
    assert [r.status_code for r in attempts] == [422, 422, 409]
    assert [e for e in audit_rows(session) if e.id not in seen] == []


# --- reading the trail ----------------------------------------------------------------------


@pytest.fixture
def trail(session: Session) -> dict[str, Any]:
    """Two studies; in A a participant at X (updated once) and one at Y; in B one participant."""
    study_a, sites_a = create_study(session)
    study_b, sites_b = create_study(session)
    at_x, _ = create_participant(session, study=study_a, site=sites_a["X"])
    at_y, _ = create_participant(session, study=study_a, site=sites_a["Y"])
    in_b, _ = create_participant(session, study=study_b, site=sites_b["X"])
    return {
        "a": study_a,
        "b": study_b,
        "sites_a": sites_a,
        "at_x": at_x,
        "at_y": at_y,
        "in_b": in_b,
    }


def _events(client: TestClient, token: str, **params: Any) -> list[dict[str, Any]]:
    response = client.get(f"{PORTAL}/audit-events", params=params, headers=bearer(token))
    assert response.status_code == 200, response.text
    return response.json()["items"]


@pytest.mark.parametrize("role", ["admin", "monitor"])
def test_admin_and_monitor_read_their_studies_trail(
    client: TestClient, session: Session, trail: dict[str, Any], role: str
) -> None:
    token = staff_token(session, role=role, study=trail["a"])
    items = _events(client, token, limit=200)
    assert items
    assert {e["study_id"] for e in items} == {str(trail["a"].id)}
    participants = {e["participant_id"] for e in items if e["participant_id"]}
    assert participants == {str(trail["at_x"].id), str(trail["at_y"].id)}
    # Oldest first.
    assert [e["occurred_at"] for e in items] == sorted(e["occurred_at"] for e in items)

    # Study B's events are invisible, even when asked for by id.
    assert _events(client, token, participant_id=str(trail["in_b"].id)) == []
    assert _events(client, token, entity_id=str(trail["b"].id)) == []


def test_filters_entity_type_entity_id_participant_id(
    client: TestClient, session: Session, trail: dict[str, Any]
) -> None:
    token = staff_token(session, role="monitor", study=trail["a"])
    at_x = trail["at_x"]
    by_participant = _events(client, token, participant_id=str(at_x.id))
    assert {e["action"] for e in by_participant} == {"participant.enrol", "activation_code.issue"}
    assert {e["participant_id"] for e in by_participant} == {str(at_x.id)}

    by_entity = _events(client, token, entity_type="participant", entity_id=str(at_x.id))
    assert [e["action"] for e in by_entity] == ["participant.enrol"]
    assert by_entity[0]["changes"]["subject_code"] == {"before": None, "after": at_x.subject_code}

    sites = _events(client, token, entity_type="site")
    assert sorted(e["changes"]["code"]["after"] for e in sites) == ["X", "Y"]
    assert _events(client, token, entity_type="no-such-type") == []


def test_from_to_are_inclusive_days_or_instants(
    client: TestClient, session: Session, trail: dict[str, Any]
) -> None:
    study = trail["a"]
    tag = f"probe-{uuid.uuid4().hex[:8]}"
    # Fixed instants: late on 4 January (UTC), which is already 5 January in Berlin.
    for at in (
        "2026-01-04T22:30:00+00:00",
        "2026-01-04T23:30:00+00:00",
        "2026-01-05T12:00:00+00:00",
    ):
        session.add(
            AuditEvent(
                occurred_at=datetime.fromisoformat(at),
                actor_type="system",
                actor_id="tests",
                actor_role="system",
                action="probe",
                entity_type="probe",
                entity_id=tag,
                study_id=study.id,
                changes={},
            )
        )
    session.flush()
    token = staff_token(session, role="admin", study=study)

    def hours(**params: str) -> list[str]:
        items = _events(client, token, entity_id=tag, **params)
        return [e["occurred_at"][11:16] for e in items]

    # Dates are whole UTC days, both ends inclusive.
    assert hours(**{"from": "2026-01-05"}) == ["12:00"]
    assert hours(to="2026-01-04") == ["22:30", "23:30"]
    assert hours(**{"from": "2026-01-04", "to": "2026-01-04"}) == ["22:30", "23:30"]
    # Instants are exact and inclusive, whatever their offset - also at local midnight.
    assert hours(**{"from": "2026-01-05T00:00:00+01:00"}) == ["23:30", "12:00"]
    assert hours(to="2026-01-05T00:00:00+01:00") == ["22:30"]
    assert hours(to="2026-01-04T23:30:00Z") == ["22:30", "23:30"]
    assert hours(**{"from": "2026-01-04T23:30:00Z", "to": "2026-01-04T23:30:00Z"}) == ["23:30"]
    # An instant without an offset is ambiguous.
    naive = client.get(
        f"{PORTAL}/audit-events", params={"from": "2026-01-05T00:00:00"}, headers=bearer(token)
    )
    assert naive.status_code == 422
    garbage = client.get(f"{PORTAL}/audit-events", params={"to": "soon"}, headers=bearer(token))
    assert garbage.status_code == 422


def test_audit_list_pages(client: TestClient, session: Session, trail: dict[str, Any]) -> None:
    token = staff_token(session, role="monitor", study=trail["a"])
    everything = [e["id"] for e in _events(client, token, limit=200)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = client.get(f"{PORTAL}/audit-events", params=params, headers=bearer(token))
        seen += [e["id"] for e in response.json()["items"]]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == everything


def test_investigators_and_participants_cannot_read_the_trail(
    client: TestClient, session: Session, trail: dict[str, Any]
) -> None:
    investigator = staff_token(session, role="investigator", study=trail["a"])
    response = client.get(f"{PORTAL}/audit-events", headers=bearer(investigator))
    assert response.status_code == 403


def test_site_scoped_monitor_sees_only_their_sites_participants(
    client: TestClient, session: Session, trail: dict[str, Any]
) -> None:
    token = staff_token(session, role="monitor", study=trail["a"], site=trail["sites_a"]["X"])
    items = _events(client, token, limit=200)
    assert {e["participant_id"] for e in items} == {str(trail["at_x"].id)}
    assert _events(client, token, participant_id=str(trail["at_y"].id)) == []


def test_system_admin_reads_everything(
    client: TestClient, session: Session, trail: dict[str, Any]
) -> None:
    token = staff_token(session, role="admin")
    for study in (trail["a"], trail["b"]):
        assert _events(client, token, entity_type="study", entity_id=str(study.id))


# --- append-only at the database ------------------------------------------------------------


def _some_event(session: Session) -> AuditEvent:
    create_study(session)
    event = session.exec(select(AuditEvent).order_by(col(AuditEvent.occurred_at))).first()
    assert event is not None
    return event


@pytest.mark.parametrize(
    "make_statement",
    [
        lambda event_id: (
            update(AuditEvent).where(col(AuditEvent.id) == event_id).values(reason="rewritten")
        ),
        lambda event_id: (
            update(AuditEvent).where(col(AuditEvent.id) == event_id).values(actor_id="someone-else")
        ),
        lambda event_id: delete(AuditEvent).where(col(AuditEvent.id) == event_id),
    ],
    ids=["update-reason", "update-actor", "delete"],
)
def test_audit_rows_cannot_be_changed_or_deleted(
    session: Session, make_statement: Callable[[uuid.UUID], Any]
) -> None:
    """The trigger exists on SQLite and PostgreSQL alike (migration 'foundation')."""
    event = _some_event(session)
    event_id = event.id
    with pytest.raises(DBAPIError) as info, session.begin_nested():
        session.execute(make_statement(event_id))
    assert "append-only" in str(info.value)
    session.expire_all()
    survivor = session.get(AuditEvent, event_id)
    assert survivor is not None
    assert survivor.reason is None


def test_orm_changes_to_audit_rows_are_refused(session: Session) -> None:
    event = _some_event(session)
    event_id = event.id
    savepoint = session.begin_nested()
    event.reason = "tampered"
    session.add(event)
    with pytest.raises(DBAPIError, match="append-only"):
        session.flush()
    savepoint.rollback()
    session.expire_all()
    survivor = session.get(AuditEvent, event_id)
    assert survivor is not None
    assert survivor.reason is None


@pytest.mark.postgres_only
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_event SET reason = 'rewritten'",
        "DELETE FROM audit_event",
        "TRUNCATE audit_event",
    ],
)
def test_postgres_refuses_with_insufficient_privilege(session: Session, statement: str) -> None:
    _some_event(session)
    with pytest.raises(DBAPIError) as info, session.begin_nested():
        session.execute(text(statement))
    assert "append-only" in str(info.value)
    assert getattr(info.value.orig, "sqlstate", None) == "42501"  # insufficient_privilege
    assert session.exec(select(AuditEvent)).first() is not None
