"""Fixtures for the token suite: provisioned callers, and apps built with other key settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

from app.core.config import Settings
from app.main import create_app
from app.participants.models import Participant
from app.studies.models import Site, Study
from tests.conftest import override_sessions
from tests.factories import create_participant, create_study, staff_token


@dataclass(frozen=True)
class World:
    """One study with an enrolled participant and an investigator at site X."""

    study: Study
    sites: dict[str, Site]
    participant: Participant
    activation_code: str
    investigator_subject: str
    investigator_token: str


@pytest.fixture
def world(session: Session) -> World:
    study, sites = create_study(session)
    participant, code = create_participant(session, study=study, site=sites["X"])
    subject = f"inv-{participant.id.hex[:8]}"
    token = staff_token(session, role="investigator", study=study, site=sites["X"], subject=subject)
    return World(study, sites, participant, code, subject, token)


@pytest.fixture
def subjects(world: World) -> dict[str, str]:
    """The ``sub`` a valid token carries for each endpoint kind (see helpers.ENDPOINTS)."""
    return {"app": str(world.participant.id), "portal": world.investigator_subject}


ClientFactory = Callable[[Settings], TestClient]


@pytest.fixture(scope="session")
def _apps() -> dict[str, FastAPI]:
    """Apps by settings, built once per run (create_app takes tens of milliseconds)."""
    return {}


@pytest.fixture
def client_for(
    engine: Engine, connection: Connection, session: Session, _apps: dict[str, FastAPI]
) -> Iterator[ClientFactory]:
    """Build an app with other settings (keys, IdP) on the test transaction, as conftest does."""
    stack = ExitStack()
    used: list[FastAPI] = []

    def make(settings: Settings) -> TestClient:
        key = settings.model_dump_json()
        if key not in _apps:
            _apps[key] = create_app(settings, engine=engine)
        app = _apps[key]
        override_sessions(app, connection, session)
        app.state.auth_limiter.reset()
        used.append(app)
        return stack.enter_context(TestClient(app, raise_server_exceptions=False))

    with stack:
        yield make
    for app in used:
        app.dependency_overrides.clear()
    session.expire_all()
