"""Small factories: build the rows a test needs directly in its session."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from sqlmodel import Session

from app.audit.service import Actor
from app.auth import service as auth_service
from app.auth.tokens import APP_AUDIENCE, PORTAL_AUDIENCE, KeyRing, issue_token
from app.core.config import get_settings
from app.participants import service as participants_service
from app.participants.models import Participant
from app.participants.schemas import ParticipantCreate
from app.studies import service as studies_service
from app.studies.builtin import BLINATUMOMAB_NCT06836973
from app.studies.models import Site, Study
from app.studies.protocol import ProtocolDefinition

TEST_ACTOR = Actor(type="system", id="tests", role="system")


def definition(**overrides: Any) -> ProtocolDefinition:
    data = {
        **BLINATUMOMAB_NCT06836973,
        "registry_id": f"TEST-{uuid.uuid4().hex[:8]}",
        "sites": [{"code": "X", "name": "Site X"}, {"code": "Y", "name": "Site Y"}],
    }
    data.update(overrides)
    return ProtocolDefinition.model_validate(data)


def create_study(session: Session, **overrides: Any) -> tuple[Study, dict[str, Site]]:
    study = studies_service.create_study(
        session, definition=definition(**overrides), actor=TEST_ACTOR
    )
    sites = {s.code: s for s in studies_service.sites_of(session, study_id=study.id)}
    return study, sites


def ring() -> KeyRing:
    return KeyRing.from_settings(get_settings())


def staff_token(
    session: Session,
    *,
    role: str,
    study: Study | None = None,
    site: Site | None = None,
    subject: str | None = None,
    ttl: int = 3600,
) -> str:
    subject = subject or f"{role}-{uuid.uuid4().hex[:8]}"
    user = auth_service.get_or_create_staff_user(session, subject=subject, actor=TEST_ACTOR)
    auth_service.grant_membership(
        session,
        user=user,
        role=role,
        study_id=study.id if study else None,
        site_id=site.id if site else None,
        actor=TEST_ACTOR,
    )
    session.flush()
    return issue_token(ring(), subject=subject, audience=PORTAL_AUDIENCE, ttl_seconds=ttl)


def create_participant(
    session: Session, *, study: Study, site: Site, **overrides: Any
) -> tuple[Participant, str]:
    data: dict[str, Any] = {
        "subject_code": f"S-{uuid.uuid4().hex[:6]}",
        "site_id": site.id,
        "time_zone": "Europe/Berlin",
        "enrolled_on": date(2026, 1, 5),
    }
    data.update(overrides)
    participant, code, _ = participants_service.enrol(
        session, study=study, body=ParticipantCreate(**data), actor=TEST_ACTOR
    )
    session.flush()
    return participant, code


def participant_token(
    participant: Participant, *, ttl: int = 900, claims: dict[str, Any] | None = None
) -> str:
    return issue_token(
        ring(),
        subject=str(participant.id),
        audience=APP_AUDIENCE,
        ttl_seconds=ttl,
        claims={"role": "participant", **(claims or {})},
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
