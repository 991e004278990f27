"""A controllable clock for visit tests.

Visit code reads the time through ``utcnow`` (app.core.models), imported into each module that
needs it; ``freeze`` replaces that binding in every loaded ``app.visits`` module, so the
participant-local "today" of every route and query comes from one instant (call it again to
move the time; monkeypatch restores the real clock after the test).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import pytest

from app.core import models


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def set(self, now: datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("give the instant an offset")
        self.now = now.astimezone(UTC)

    def __call__(self) -> datetime:
        return self.now


def freeze(monkeypatch: pytest.MonkeyPatch, now: datetime) -> Clock:
    clock = Clock(now)
    clock.set(now)
    patched = []
    for name, module in list(sys.modules.items()):
        current = getattr(module, "utcnow", None)
        if name.startswith("app.visits") and (
            current is models.utcnow or isinstance(current, Clock)
        ):
            monkeypatch.setattr(module, "utcnow", clock)
            patched.append(name)
    assert {"app.visits.service", "app.visits.queries"} <= set(patched), patched
    return clock
