"""Prepare a benchmark database with the app's own code: migrate, a study, participants, tokens.

Participants are enrolled with ``app.participants.service.enrol`` and activated with their
activation code through ``app.participants.activation.activate``, exactly as the phone app
does, so each access token carries its session family (``fam``) and every request pays the
same checks as in production (participant row, withdrawal, revoked family).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlmodel import Session

from app.audit.service import Actor
from app.auth.tokens import KeyRing
from app.cli import migrate
from app.core.config import Settings
from app.core.db import create_db_engine
from app.core.time import today_in
from app.participants import activation
from app.participants import service as participants_service
from app.participants.schemas import ParticipantCreate
from app.studies import service as studies_service
from app.studies.builtin import BLINATUMOMAB_NCT06836973
from app.studies.protocol import ProtocolDefinition
from bench.payloads import TIME_ZONES

BENCH_ACTOR = Actor(type="system", id="mgdiary-bench", role="system")


def seed(
    settings: Settings, *, participants: int, protocol: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Migrate ``settings.database_url`` and create a study with ``participants`` activated
    participants; returns ``[{"token": ..., "time_zone": ...}]``. ``protocol``: top-level
    overrides of the study's protocol definition (e.g. its ``safety`` settings)."""
    migrate(settings)
    engine = create_db_engine(settings)
    ring = KeyRing.from_settings(settings)
    out: list[dict[str, Any]] = []
    try:
        with Session(engine, expire_on_commit=False) as session:
            definition = ProtocolDefinition.model_validate(
                {
                    **BLINATUMOMAB_NCT06836973,
                    "registry_id": f"BENCH-{uuid.uuid4().hex[:8]}",
                    "sites": [
                        {"code": "SITE-01", "name": "Bench site one"},
                        {"code": "SITE-02", "name": "Bench site two"},
                    ],
                    **(protocol or {}),
                }
            )
            study = studies_service.create_study(session, definition=definition, actor=BENCH_ACTOR)
            sites = studies_service.sites_of(session, study_id=study.id)
            codes = []
            for n in range(participants):
                zone = TIME_ZONES[n % len(TIME_ZONES)]
                body = ParticipantCreate(
                    subject_code=f"B-{n:04d}",
                    site_id=sites[n % len(sites)].id,
                    time_zone=zone,
                    enrolled_on=today_in(zone) - timedelta(days=60),
                )
                participant, code, _ = participants_service.enrol(
                    session, study=study, body=body, actor=BENCH_ACTOR
                )
                codes.append((code, zone))
            session.commit()
            for code, zone in codes:
                tokens = activation.activate(session, code=code, ring=ring, settings=settings)
                if tokens is None:
                    raise RuntimeError("activation failed while seeding the bench database")
                out.append({"token": tokens.access_token, "time_zone": zone})
            session.commit()
    finally:
        engine.dispose()
    return out
