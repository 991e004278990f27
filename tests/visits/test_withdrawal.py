"""Withdrawal closes the participant's schedule (issue 5): pending visits whose window had
closed become missed (they count against adherence up to withdrawal, as the sweep would have
counted them), later ones cancelled (no longer due); completed visits are kept; each change is
audited with the withdrawal's reason, and the sweep has nothing left to do."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlmodel import Session, select

from app.audit.models import AuditEvent
from app.participants import service as participants_service
from app.visits import sweep
from app.visits.models import Visit
from tests.factories import TEST_ACTOR, create_participant, create_study
from tests.visits.clock import freeze

DAY0 = date(2026, 1, 5)


def test_withdrawal_marks_closed_windows_missed_and_cancels_the_rest(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    study, sites = create_study(session)
    participant, _ = create_participant(
        session,
        study=study,
        site=sites["X"],
        time_zone="Europe/Berlin",
        enrolled_on=DAY0 - timedelta(days=10),
        day0_date=DAY0,
    )
    # Day 70 in Berlin: the week-4 window (days 25-31) and week-8 window have closed, week-12
    # (day 84) is still ahead.
    freeze(monkeypatch, datetime(2026, 3, 16, 10, 0, tzinfo=UTC))
    visits = {
        v.key: v for v in session.exec(select(Visit).where(Visit.participant_id == participant.id))
    }
    visits["clinic-d028"].status, visits["clinic-d028"].completed_on = "completed", date(2026, 2, 2)
    session.add(visits["clinic-d028"])
    session.flush()

    participants_service.withdraw(
        session, participant=participant, reason="moved abroad", actor=TEST_ACTOR
    )
    session.expire_all()
    after = {
        v.key: v for v in session.exec(select(Visit).where(Visit.participant_id == participant.id))
    }
    assert after["clinic-d028"].status == "completed"
    assert after["clinic-d056"].status == "missed"
    assert after["clinic-d084"].status == "cancelled"
    assert all(v.status != "scheduled" for v in after.values())
    events = session.exec(
        select(AuditEvent).where(
            AuditEvent.participant_id == participant.id,
            AuditEvent.entity_type == "visit",
            AuditEvent.reason.like("%moved abroad%"),  # type: ignore[attr-defined]
        )
    ).all()
    assert {e.action for e in events} == {"visit.missed", "visit.cancel"}
    assert len(events) == sum(1 for v in after.values() if v.key != "clinic-d028")
    assert sweep.sweep_missed(session, now=datetime(2026, 9, 1, tzinfo=UTC)) == 0
