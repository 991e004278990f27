"""Adverse-event factories: request bodies and rows recorded through the service."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from app.core.models import utcnow
from app.participants.models import Participant
from app.safety import adverse_events
from app.safety.ae_models import AdverseEvent, AdverseEventVersion
from app.safety.ae_schemas import AdverseEventCreate
from app.safety.models import SafetySignal
from tests.factories import TEST_ACTOR


def ae_body(**overrides: Any) -> dict[str, Any]:
    """A valid body: grade 2 headache, not serious, possibly related, ongoing."""
    body: dict[str, Any] = {
        "term": "headache",
        "grade": 2,
        "serious": False,
        "relatedness": "possible",
        "expected": True,
        "onset_date": "2026-01-10",
        "outcome": "recovering",
        "action_taken": "none",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def crs_body(crs_inputs: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """A Cytokine release syndrome body graded from ``crs_inputs`` (no explicit grade)."""
    return ae_body(
        **{
            "term": "cytokine_release_syndrome",
            "grade": None,
            "crs_inputs": crs_inputs,
            **overrides,
        }
    )


def record_ae(
    session: Session, participant: Participant, **overrides: Any
) -> tuple[AdverseEvent, AdverseEventVersion]:
    head, version = adverse_events.record(
        session,
        participant=participant,
        body=AdverseEventCreate.model_validate(ae_body(**overrides)),
        actor=TEST_ACTOR,
    )
    session.flush()
    return head, version


def create_signal(session: Session, participant: Participant, **overrides: Any) -> SafetySignal:
    now = utcnow()
    data: dict[str, Any] = {
        "study_id": participant.study_id,
        "site_id": participant.site_id,
        "participant_id": participant.id,
        "category": "crs",
        "priority": "high",
        "first_rule": "test@1",
        "first_evidence_at": now,
        "last_evidence_at": now,
        "evidence": [],
    }
    data.update(overrides)
    signal = SafetySignal(**data)
    session.add(signal)
    session.flush()
    return signal
