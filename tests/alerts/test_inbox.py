"""The alert table and the investigators' inbox (GET /portal/v1/studies/{id}/alerts)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.alerts import service as alerts_service
from app.alerts.models import Alert
from app.participants import service as participants_service
from app.participants.models import Participant
from app.participants.schemas import ParticipantUpdate
from app.studies.models import Site, Study
from tests.factories import (
    TEST_ACTOR,
    bearer,
    create_participant,
    create_study,
    participant_token,
    staff_token,
)
from tests.problem_helpers import assert_problem
from tests.scratch_database import scratch_engines

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@dataclass
class World:
    study: Study
    sites: dict[str, Site]
    at_x: Participant
    at_y: Participant
    headers: dict[str, dict[str, str]]

    @property
    def path(self) -> str:
        return f"/portal/v1/studies/{self.study.id}/alerts"


def _raise(
    session: Session,
    study: Study,
    participant: Participant | None,
    *,
    type: str = "visit.missed",
    priority: str = "routine",
    at: datetime = T0,
    site: Site | None = None,
) -> Alert:
    subject = uuid.uuid4()
    alert, new = alerts_service.raise_alert(
        session,
        type=type,
        priority=priority,
        study_id=study.id,
        site_id=participant.site_id if participant else (site.id if site else None),
        participant_id=participant.id if participant else None,
        subject_type="visit" if participant else "webhook_endpoint",
        subject_id=subject,
        dedup_key=f"{type}:{subject}",
        data={"subject_id": subject},
        now=at,
    )
    assert new
    assert alert is not None
    return alert


@pytest.fixture
def world(session: Session) -> World:
    study, sites = create_study(session)
    other_study, other_sites = create_study(session)
    at_x, _ = create_participant(session, study=study, site=sites["X"])
    at_y, _ = create_participant(session, study=study, site=sites["Y"])
    headers = {
        "inv_x": bearer(staff_token(session, role="investigator", study=study, site=sites["X"])),
        "inv_y": bearer(staff_token(session, role="investigator", study=study, site=sites["Y"])),
        "monitor": bearer(staff_token(session, role="monitor", study=study)),
        "admin": bearer(staff_token(session, role="admin")),
        "elsewhere": bearer(
            staff_token(session, role="investigator", study=other_study, site=other_sites["X"])
        ),
        "participant": bearer(participant_token(at_x)),
    }
    return World(study=study, sites=sites, at_x=at_x, at_y=at_y, headers=headers)


def _items(client: TestClient, world: World, who: str, **params: Any) -> list[dict[str, Any]]:
    response = client.get(world.path, params=params, headers=world.headers[who])
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"items", "next_cursor"}
    return list(body["items"])


def _ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["id"] for item in items]


# --- raise_alert -----------------------------------------------------------------------------


@pytest.fixture
def listener_calls() -> Iterator[list[Alert]]:
    calls: list[Alert] = []

    def listener(session: Session, alert: Alert) -> None:
        assert session.get(Alert, alert.id) is alert  # in the same transaction
        calls.append(alert)

    alerts_service.ALERT_LISTENERS.append(listener)
    yield calls
    alerts_service.ALERT_LISTENERS.remove(listener)


def test_the_same_alert_is_recorded_once_and_listeners_hear_it_once(
    session: Session, world: World, listener_calls: list[Alert]
) -> None:
    kwargs: dict[str, Any] = {
        "type": "visit.missed",
        "priority": "routine",
        "study_id": world.study.id,
        "site_id": world.at_x.site_id,
        "participant_id": world.at_x.id,
        "subject_type": "visit",
        "subject_id": "11111111-2222-3333-4444-555555555555",
        "dedup_key": "visit.missed:11111111-2222-3333-4444-555555555555",
        "data": {"target_date": date(2026, 2, 2), "visit_day": 28},
    }
    first, new = alerts_service.raise_alert(session, **kwargs)
    assert new
    assert first is not None
    assert first.data == {"target_date": "2026-02-02", "visit_day": 28}
    again, new_again = alerts_service.raise_alert(session, **{**kwargs, "priority": "urgent"})
    assert (again, new_again) == (None, False)
    assert listener_calls == [first]
    stored = session.exec(select(Alert).where(Alert.dedup_key == kwargs["dedup_key"])).all()
    assert [a.priority for a in stored] == ["routine"]


@pytest.mark.parametrize(
    "data",
    [
        {"note": "Patient said she felt too weak to come in and will call back"},
        {"note": "short\nbut multi-line"},
        {"nested": [{"blob": b"bytes"}]},
        {"naive": datetime(2026, 1, 1, 8, 0)},
    ],
    ids=["long-text", "newline", "bytes", "naive-datetime"],
)
def test_alert_data_refuses_free_text(session: Session, world: World, data: dict[str, Any]) -> None:
    with pytest.raises(alerts_service.AlertDataError):
        alerts_service.raise_alert(
            session,
            type="visit.missed",
            priority="routine",
            study_id=world.study.id,
            site_id=None,
            participant_id=None,
            subject_type="visit",
            subject_id=str(uuid.uuid4()),
            dedup_key=f"x:{uuid.uuid4()}",
            data=data,
        )


def test_unknown_priority_is_refused(session: Session, world: World) -> None:
    with pytest.raises(ValueError, match="priority"):
        _raise(session, world.study, world.at_x, priority="critical")


# --- the inbox: who sees what ------------------------------------------------------------------


def test_site_staff_see_their_sites_alerts_and_whole_study_staff_all(
    client: TestClient, session: Session, world: World
) -> None:
    x = _raise(session, world.study, world.at_x)
    y = _raise(session, world.study, world.at_y, at=T0 + timedelta(minutes=1))
    ops = _raise(
        session, world.study, None, type="webhook.endpoint.disabled", at=T0 + timedelta(minutes=2)
    )
    ops_at_x = _raise(
        session,
        world.study,
        None,
        type="webhook.endpoint.disabled",
        site=world.sites["X"],
        at=T0 + timedelta(minutes=3),
    )
    assert _ids(_items(client, world, "inv_x")) == [str(ops_at_x.id), str(x.id)]
    assert _ids(_items(client, world, "inv_y")) == [str(y.id)]
    everything = [str(a.id) for a in (ops_at_x, ops, y, x)]  # newest first
    assert _ids(_items(client, world, "monitor")) == everything
    assert _ids(_items(client, world, "admin")) == everything
    row = _items(client, world, "inv_x")[1]
    assert row == {
        "id": str(x.id),
        "study_id": str(world.study.id),
        "site_id": str(world.sites["X"].id),
        "participant_id": str(world.at_x.id),
        "type": "visit.missed",
        "priority": "routine",
        "subject_type": "visit",
        "subject_id": x.subject_id,
        "data": {"subject_id": x.subject_id},
        "created_at": "2026-03-01T09:00:00Z",
        "acknowledged_at": None,
        "acknowledged_by": None,
    }


def test_alerts_follow_the_participant_to_a_new_site(
    client: TestClient, session: Session, world: World
) -> None:
    alert = _raise(session, world.study, world.at_x)
    participants_service.update(
        session,
        participant=world.at_x,
        body=ParticipantUpdate(site_id=world.sites["Y"].id, reason="Moved to the Y clinic"),
        actor=TEST_ACTOR,
    )
    session.flush()
    assert _items(client, world, "inv_x") == []
    assert _ids(_items(client, world, "inv_y")) == [str(alert.id)]


def test_outside_the_callers_studies_is_404_and_participants_cannot_read_it(
    client: TestClient, session: Session, world: World
) -> None:
    _raise(session, world.study, world.at_x)
    for who in ("elsewhere",):
        assert_problem(client.get(world.path, headers=world.headers[who]), 404)
    unknown = f"/portal/v1/studies/{uuid.uuid4()}/alerts"
    assert_problem(client.get(unknown, headers=world.headers["monitor"]), 404)
    assert_problem(client.get(world.path, headers=world.headers["participant"]), 401)
    assert_problem(client.get(world.path), 401)


# --- filters and pages -------------------------------------------------------------------------


def test_filters_type_priority_acknowledged_and_inclusive_utc_days(
    client: TestClient, session: Session, world: World
) -> None:
    missed = _raise(session, world.study, world.at_x, at=datetime(2026, 3, 1, 0, 0, tzinfo=UTC))
    signal = _raise(
        session,
        world.study,
        world.at_x,
        type="safety.signal.raised",
        priority="urgent",
        at=datetime(2026, 3, 2, 23, 59, 59, tzinfo=UTC),
    )
    later = _raise(session, world.study, world.at_x, at=datetime(2026, 3, 3, 0, 0, tzinfo=UTC))
    signal.acknowledged_at = datetime(2026, 3, 3, 8, 0, tzinfo=UTC)
    signal.acknowledged_by = "investigator-x"
    session.add(signal)
    session.flush()

    def ids(**params: Any) -> list[str]:
        return _ids(_items(client, world, "inv_x", **params))

    assert ids(type="visit.missed") == [str(later.id), str(missed.id)]
    assert ids(type="adverse_event.recorded") == []
    assert ids(priority="urgent") == [str(signal.id)]
    assert ids(acknowledged="true") == [str(signal.id)]
    assert ids(acknowledged="false") == [str(later.id), str(missed.id)]
    assert ids(**{"from": "2026-03-01", "to": "2026-03-02"}) == [str(signal.id), str(missed.id)]
    assert ids(**{"from": "2026-03-02", "to": "2026-03-02"}) == [str(signal.id)]
    assert ids(**{"from": "2026-03-03"}) == [str(later.id)]
    assert ids(to="2026-02-28") == []
    assert ids(to="9999-12-31") == [str(later.id), str(signal.id), str(missed.id)]
    acked = _items(client, world, "inv_x", acknowledged="true")[0]
    assert acked["acknowledged_at"] == "2026-03-03T08:00:00Z"
    assert acked["acknowledged_by"] == "investigator-x"

    headers = world.headers["inv_x"]
    backwards = client.get(
        world.path, params={"from": "2026-03-02", "to": "2026-03-01"}, headers=headers
    )
    assert_problem(backwards, 422)
    assert_problem(client.get(world.path, params={"priority": "critical"}, headers=headers), 422)
    assert_problem(client.get(world.path, params={"acknowledged": "maybe"}, headers=headers), 422)


def test_pages_newest_first_without_repeats_and_signed_cursors(
    client: TestClient, session: Session, world: World
) -> None:
    # Two alerts share an instant: the id breaks the tie, so none is lost between pages.
    created = [
        _raise(session, world.study, world.at_x, at=T0 + timedelta(minutes=min(i, 3)))
        for i in range(5)
    ]
    expected = [
        str(a.id) for a in sorted(created, key=lambda a: (a.created_at, a.id), reverse=True)
    ]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        response = client.get(world.path, params=params, headers=world.headers["inv_x"])
        assert response.status_code == 200, response.text
        body = response.json()
        seen.extend(_ids(body["items"]))
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == expected
    assert pages == 3

    first = client.get(world.path, params={"limit": 2}, headers=world.headers["inv_x"]).json()
    tampered = first["next_cursor"][:-3] + ("AAA" if first["next_cursor"][-3:] != "AAA" else "BBB")
    assert_problem(
        client.get(world.path, params={"cursor": tampered}, headers=world.headers["inv_x"]), 400
    )
    other_study = client.get(
        f"/portal/v1/studies/{world.study.id}/participants",
        params={"cursor": first["next_cursor"]},
        headers=world.headers["inv_x"],
    )
    assert_problem(other_study, 400)


# --- PostgreSQL: a concurrent duplicate is not an error -----------------------------------------


@pytest.mark.postgres_only
def test_a_concurrent_duplicate_waits_and_then_records_nothing() -> None:
    """Two transactions raise the same alert at once: the second waits on the first's
    uncommitted row (ON CONFLICT DO NOTHING), then returns "not new" instead of failing."""
    with scratch_engines(2) as (first, second):
        with Session(first, expire_on_commit=False) as setup:
            study, sites = create_study(setup)
            participant, _ = create_participant(setup, study=study, site=sites["X"])
            setup.commit()
        kwargs: dict[str, Any] = {
            "type": "visit.missed",
            "priority": "routine",
            "study_id": study.id,
            "site_id": participant.site_id,
            "participant_id": participant.id,
            "subject_type": "visit",
            "subject_id": uuid.uuid4(),
            "dedup_key": f"visit.missed:{uuid.uuid4()}",
            "data": {"visit_day": 28},
        }
        results: list[tuple[Alert | None, bool]] = []
        failures: list[BaseException] = []

        def duplicate() -> None:
            try:
                with Session(second) as s:
                    results.append(alerts_service.raise_alert(s, **kwargs))
                    s.commit()
            except BaseException as exc:  # surfaced below
                failures.append(exc)

        with Session(first) as holder:
            created, new = alerts_service.raise_alert(holder, **kwargs)
            assert new
            thread = threading.Thread(target=duplicate)
            thread.start()
            time.sleep(0.3)
            assert thread.is_alive()  # waiting on the uncommitted row
            holder.commit()
        thread.join(timeout=30)
        assert not failures, failures
        assert results == [(None, False)]
        with Session(first) as check:
            stored = check.exec(select(Alert).where(Alert.dedup_key == kwargs["dedup_key"])).all()
            assert len(stored) == 1
