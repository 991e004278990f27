"""The missed-visit sweep (issue 5 item 6): window edges in the participant's own day, exactly
once, audited, one ``visit.missed`` alert per visit, and late completion afterwards."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app.alerts.models import Alert
from app.audit.models import AuditEvent
from app.participants import service as participants_service
from app.participants.models import Participant
from app.participants.schemas import ParticipantUpdate
from app.studies.models import Site, Study
from app.visits import service as visits_service
from app.visits import sweep
from app.visits.models import Visit
from app.worker import JOBS
from tests.factories import TEST_ACTOR, bearer, create_participant, create_study, staff_token
from tests.scratch_database import scratch_engines

DAY0 = date(2026, 1, 5)
#: NCT06836973 week-4 visit: day 28 +/- 3 from DAY0, so its window's last day is 2026-02-05.
WEEK4 = "clinic-d028"
WEEK4_END = date(2026, 2, 5)


@dataclass
class World:
    study: Study
    sites: dict[str, Site]


@pytest.fixture
def world(session: Session) -> World:
    study, sites = create_study(session)
    return World(study=study, sites=sites)


def _enrol(session: Session, world: World, time_zone: str, site: str = "X") -> Participant:
    participant, _ = create_participant(
        session,
        study=world.study,
        site=world.sites[site],
        time_zone=time_zone,
        enrolled_on=DAY0 - timedelta(days=10),
        day0_date=DAY0,
    )
    return participant


def _visit(session: Session, participant: Participant, key: str = WEEK4) -> Visit:
    session.expire_all()
    return session.exec(
        select(Visit).where(Visit.participant_id == participant.id, Visit.key == key)
    ).one()


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def _alerts(session: Session, visit: Visit) -> list[Alert]:
    return list(session.exec(select(Alert).where(Alert.subject_id == str(visit.id))).all())


def _missed_events(session: Session, visit: Visit) -> list[AuditEvent]:
    return list(
        session.exec(
            select(AuditEvent).where(
                AuditEvent.action == "visit.missed", AuditEvent.entity_id == str(visit.id)
            )
        ).all()
    )


# --- when a visit is missed: the participant's local calendar day ---------------------------


@pytest.mark.parametrize(
    ("time_zone", "last_moment", "first_missed_moment"),
    [
        # UTC: the window's last day ends at midnight UTC.
        ("UTC", _at(WEEK4_END, 23, 59), _at(WEEK4_END + timedelta(days=1), 0, 0)),
        # UTC+14: local midnight is 10:00 UTC of the window's last day.
        ("Pacific/Kiritimati", _at(WEEK4_END, 9, 59), _at(WEEK4_END, 10, 0)),
        # UTC-11: local midnight is 11:00 UTC of the day after.
        (
            "Pacific/Pago_Pago",
            _at(WEEK4_END + timedelta(days=1), 10, 59),
            _at(WEEK4_END + timedelta(days=1), 11, 0),
        ),
    ],
    ids=["utc", "utc+14", "utc-11"],
)
def test_last_day_of_the_window_is_not_missed_the_next_local_day_is(
    session: Session,
    world: World,
    time_zone: str,
    last_moment: datetime,
    first_missed_moment: datetime,
) -> None:
    participant = _enrol(session, world, time_zone)
    sweep.sweep_missed(session, now=last_moment)
    assert _visit(session, participant).status == "scheduled"
    assert visits_service.state_of(_visit(session, participant), WEEK4_END) == "overdue"

    assert sweep.sweep_missed(session, now=first_missed_moment) == 1
    visit = _visit(session, participant)
    assert visit.status == "missed"
    assert visit.missed_at == first_missed_moment
    assert visits_service.state_of(visit, WEEK4_END) == "missed"  # stored, whatever the day


def test_each_visit_is_marked_once_with_one_alert_and_one_audit_event(
    session: Session, world: World
) -> None:
    participant = _enrol(session, world, "Europe/Berlin")
    before = _visit(session, participant)
    sequence = before.sequence
    now = _at(WEEK4_END + timedelta(days=1), 12)
    # Screening, both cycle starts, the week-0 and the week-4 visit have closed windows.
    assert sweep.sweep_missed(session, now=now) == 5
    assert sweep.sweep_missed(session, now=now) == 0
    assert sweep.sweep_missed(session, now=now + timedelta(hours=1)) == 0

    visit = _visit(session, participant)
    assert visit.status == "missed"
    assert visit.sequence == sequence + 1  # calendar apps see the change once
    (event,) = _missed_events(session, visit)
    assert (event.actor_type, event.actor_id, event.actor_role) == (
        "system",
        "visit-sweep",
        "system",
    )
    assert event.changes["status"] == {"before": "scheduled", "after": "missed"}
    assert event.changes["sequence"] == {"before": sequence, "after": sequence + 1}
    assert event.participant_id == participant.id
    assert event.study_id == world.study.id
    assert event.reason is not None
    assert "2026-02-05" in event.reason

    (alert,) = _alerts(session, visit)
    assert alert.type == "visit.missed"
    assert alert.priority == "routine"
    assert (alert.study_id, alert.site_id, alert.participant_id) == (
        world.study.id,
        world.sites["X"].id,
        participant.id,
    )
    assert (alert.subject_type, alert.dedup_key) == ("visit", f"visit.missed:{visit.id}")
    assert alert.data == {
        "visit_id": str(visit.id),
        "participant_id": str(participant.id),
        "visit_key": WEEK4,
        "visit_kind": "clinic",
        "visit_day": 28,
        "target_date": "2026-02-02",
        "window_end": "2026-02-05",
    }
    assert alert.created_at == now
    assert alert.acknowledged_at is None
    total = session.exec(
        select(func.count()).select_from(Alert).where(col(Alert.participant_id) == participant.id)
    ).one()
    assert total == 5


def test_withdrawn_participants_visits_are_not_marked(session: Session, world: World) -> None:
    stays = _enrol(session, world, "Europe/Berlin")
    leaves = _enrol(session, world, "Europe/Berlin")
    participants_service.withdraw(
        session, participant=leaves, reason="Withdrew consent", actor=TEST_ACTOR
    )
    session.flush()
    assert sweep.sweep_missed(session, now=_at(WEEK4_END + timedelta(days=2), 12)) == 5
    assert _visit(session, stays).status == "missed"
    # Withdrawal closed the schedule itself (tests/visits/test_withdrawal.py); the sweep
    # neither marks nor alerts on a withdrawn participant's visits.
    assert _visit(session, leaves).status in ("missed", "cancelled")
    assert _alerts(session, _visit(session, leaves)) == []


def test_completed_cancelled_and_upcoming_visits_are_left_alone(
    session: Session, world: World
) -> None:
    participant = _enrol(session, world, "Europe/Berlin")
    done = _visit(session, participant, "clinic-d000")
    visits_service.record_outcome(
        session,
        visit=done,
        participant=participant,
        completed_on=DAY0,
        cancel=False,
        reason="Seen in clinic",
        actor=TEST_ACTOR,
    )
    dropped = _visit(session, participant, "dose-c2")
    visits_service.record_outcome(
        session,
        visit=dropped,
        participant=participant,
        completed_on=None,
        cancel=True,
        reason="Infusion postponed by protocol",
        actor=TEST_ACTOR,
    )
    assert sweep.sweep_missed(session, now=_at(WEEK4_END + timedelta(days=1), 12)) == 3
    statuses = {
        v.key: v.status for v in visits_service.visits_of(session, participant_id=participant.id)
    }
    assert statuses["clinic-d000"] == "completed"
    assert statuses["dose-c2"] == "cancelled"
    assert statuses["screening"] == statuses["dose-c1"] == statuses[WEEK4] == "missed"
    assert statuses["clinic-d056"] == "scheduled"


def test_a_visit_rescheduled_past_its_window_is_missed_only_after_its_new_date(
    session: Session, world: World
) -> None:
    """A visit moved past its window stays open up to the agreed date (app.visits.schedule)."""
    participant = _enrol(session, world, "UTC")
    visit = _visit(session, participant)
    visit.target_date = WEEK4_END + timedelta(days=4)
    session.add(visit)
    session.flush()
    sweep.sweep_missed(session, now=_at(WEEK4_END + timedelta(days=4), 23, 59))
    assert _visit(session, participant).status == "scheduled"
    sweep.sweep_missed(session, now=_at(WEEK4_END + timedelta(days=5), 0, 0))
    assert _visit(session, participant).status == "missed"


def test_a_run_marks_at_most_one_batch_and_the_next_run_the_rest(
    session: Session, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sweep, "BATCH_SIZE", 2)
    # UTC-11 first: on the UTC day after its window ends it is not yet due, and the scan must
    # look past such candidates to the due ones behind them.
    late = [_enrol(session, world, "Pacific/Pago_Pago") for _ in range(3)]
    early = _enrol(session, world, "Pacific/Kiritimati")
    now = _at(WEEK4_END, 12)  # Kiritimati: 2026-02-06 02:00; Pago Pago: 2026-02-05 01:00
    runs = []
    while count := sweep.sweep_missed(session, now=now):
        runs.append(count)
    # Kiritimati: all five closed windows; Pago Pago: four each (week 4 closes later).
    assert runs == [2] * 8 + [1]
    assert _visit(session, early).status == "missed"
    assert all(_visit(session, p).status == "scheduled" for p in late)


def test_the_sweep_is_a_worker_job() -> None:
    assert JOBS["visit-sweep"] is sweep.sweep_missed


# --- afterwards: late data entry, day-0 changes, what the portal shows ----------------------


@pytest.fixture
def swept(session: Session, world: World) -> dict[str, Any]:
    participant = _enrol(session, world, "Europe/Berlin")
    sweep.sweep_missed(session, now=_at(WEEK4_END + timedelta(days=1), 12))
    return {
        "participant": participant,
        "visit": _visit(session, participant),
        "inv": bearer(
            staff_token(session, role="investigator", study=world.study, site=world.sites["X"])
        ),
    }


def test_a_missed_visit_can_still_be_recorded_completed(
    client: TestClient, session: Session, swept: dict[str, Any]
) -> None:
    visit: Visit = swept["visit"]
    listed = client.get(
        f"/portal/v1/participants/{swept['participant'].id}/visits", headers=swept["inv"]
    ).json()
    assert next(v for v in listed if v["id"] == str(visit.id))["status"] == "missed"

    path = f"/portal/v1/visits/{visit.id}"
    inside = client.patch(
        path,
        json={"completed_on": "2026-02-04", "reason": "Seen on time, entered late"},
        headers=swept["inv"],
    )
    assert inside.status_code == 200, inside.text
    assert inside.json()["status"] == "completed"
    assert inside.json()["out_of_window"] is False
    event = session.exec(
        select(AuditEvent).where(
            AuditEvent.action == "visit.complete", AuditEvent.entity_id == str(visit.id)
        )
    ).one()
    assert event.changes["status"] == {"before": "missed", "after": "completed"}
    assert event.reason == "Seen on time, entered late"
    again = client.patch(path, json={"status": "cancelled", "reason": "Oops"}, headers=swept["inv"])
    assert again.status_code == 409

    week0 = _visit(session, swept["participant"], "clinic-d000")
    late = client.patch(
        f"/portal/v1/visits/{week0.id}",
        json={"completed_on": "2026-02-06", "reason": "Came in weeks late"},
        headers=swept["inv"],
    )
    assert late.status_code == 200, late.text
    assert late.json()["out_of_window"] is True
    # The sweep does not touch it again, and alerts stay one per visit.
    assert sweep.sweep_missed(session, now=_at(WEEK4_END + timedelta(days=3), 12)) == 0
    assert len(_alerts(session, week0)) == 1


def test_a_missed_visit_can_be_cancelled_with_a_reason(
    client: TestClient, session: Session, swept: dict[str, Any]
) -> None:
    path = f"/portal/v1/visits/{swept['visit'].id}"
    no_reason = client.patch(path, json={"status": "cancelled"}, headers=swept["inv"])
    assert no_reason.status_code == 422
    done = client.patch(
        path,
        json={"status": "cancelled", "reason": "Participant in hospital"},
        headers=swept["inv"],
    )
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "cancelled"
    assert done.json()["cancel_reason"] == "Participant in hospital"


def test_day0_change_keeps_missed_visits(session: Session, swept: dict[str, Any]) -> None:
    participant: Participant = swept["participant"]
    visit: Visit = swept["visit"]
    week8_before = _visit(session, participant, "clinic-d056").target_date
    participants_service.update(
        session,
        participant=participant,
        body=ParticipantUpdate(day0_date=DAY0 + timedelta(days=7), reason="Infusion date fixed"),
        actor=TEST_ACTOR,
    )
    session.flush()
    kept = _visit(session, participant)
    assert (kept.status, kept.target_date, kept.window_end) == (
        "missed",
        visit.target_date,
        visit.window_end,
    )
    assert _visit(session, participant, "clinic-d056").target_date == week8_before + timedelta(
        days=7
    )


# --- PostgreSQL: two workers at once, on committed data --------------------------------------


@pytest.mark.postgres_only
def test_two_workers_sweeping_at_once_mark_each_visit_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two workers (separate engines and connections) on committed data: every due visit is
    marked by exactly one of them, with one audit event and one alert."""
    with scratch_engines(2) as (first, second):
        _two_workers(first, second, monkeypatch)


def _two_workers(first: Engine, second: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    with Session(first, expire_on_commit=False) as setup:
        study, sites = create_study(setup)
        participants = [
            _enrol(setup, World(study=study, sites=sites), zone, site=site)
            for zone in ("Europe/Berlin", "Pacific/Kiritimati", "Pacific/Pago_Pago", "UTC")
            for site in ("X", "Y")
            for _ in range(5)
        ]
        setup.commit()
    now = _at(WEEK4_END + timedelta(days=1), 12)
    monkeypatch.setattr(sweep, "BATCH_SIZE", 7)  # many small claims, so the workers interleave
    start = threading.Barrier(2)
    marked: dict[str, list[int]] = {"first": [], "second": []}
    failures: list[BaseException] = []

    def work(engine: Engine, name: str) -> None:
        try:
            start.wait(timeout=10)
            while True:
                with Session(engine) as s:
                    count = sweep.sweep_missed(s, now=now)
                    time.sleep(0.02)  # hold the claimed rows while the other worker runs
                    s.commit()
                if not count:
                    return
                marked[name].append(count)
        except BaseException as exc:  # surfaced below
            failures.append(exc)

    threads = [
        threading.Thread(target=work, args=(first, "first")),
        threading.Thread(target=work, args=(second, "second")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    assert marked["first"]
    assert marked["second"]  # both workers did some of the work

    with Session(first) as check:
        ids = [p.id for p in participants]
        visits = check.exec(select(Visit).where(col(Visit.participant_id).in_(ids))).all()
        missed = {v.id for v in visits if v.status == "missed"}
        # Screening, two cycle starts, week 0 and week 4 per participant.
        assert len(missed) == 5 * len(participants)
        assert sum(marked["first"]) + sum(marked["second"]) == len(missed)
        assert all(v.sequence == 1 for v in visits if v.id in missed)
        alerts = check.exec(select(Alert.subject_id)).all()
        assert sorted(alerts) == sorted(str(i) for i in missed)
        events = check.exec(
            select(AuditEvent.entity_id).where(AuditEvent.action == "visit.missed")
        ).all()
        assert sorted(events) == sorted(str(i) for i in missed)
