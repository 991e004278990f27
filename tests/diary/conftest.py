"""Fixtures of the diary API tests: a study with two sites, participants and staff tokens.

The clock is moved to a fixed instant (``NOW``, ticking) so local dates and the 24 h / 72 h /
7-day rules never depend on when the suite runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import time_machine
from sqlmodel import Session

from app.participants.models import Participant
from app.studies.models import Site, Study
from tests.diary.diary_helpers import NOW
from tests.factories import bearer, create_participant, create_study, participant_token


@dataclass
class Patient:
    participant: Participant
    headers: dict[str, str]

    @property
    def id(self) -> str:
        return str(self.participant.id)


@dataclass
class World:
    study: Study
    sites: dict[str, Site]
    alice: Patient  # site X
    bob: Patient  # site X


@pytest.fixture
def clock() -> Iterator[time_machine.Coordinates]:
    with time_machine.travel(NOW, tick=True) as traveller:
        yield traveller


def make_patient(session: Session, study: Study, site: Site, **overrides: object) -> Patient:
    participant, _ = create_participant(session, study=study, site=site, **overrides)
    return Patient(participant, bearer(participant_token(participant, ttl=3600)))


@pytest.fixture
def world(session: Session, clock: time_machine.Coordinates) -> World:
    study, sites = create_study(session)
    return World(
        study=study,
        sites=sites,
        alice=make_patient(session, study, sites["X"]),
        bob=make_patient(session, study, sites["X"]),
    )
