"""Planned visits of a participant and their states, from the protocol and the participant's day 0.

Pure module (stdlib and ``app.studies.protocol`` only): no database, no web framework, no clock.
The service passes the protocol definition, the participant's day 0 and "today" (the participant's
local calendar day); this module returns the planned visits and each visit's state (issue 5).

Sources: shared/domain/trials.md (sections 1-5: visit interval and count, screening "from day
-28", dosing patterns) and the protocol definitions of app.studies.builtin.

Definitions and choices (issue 5 leaves room for these):

- Dates are calendar days in the participant's local time zone; a visit on day ``n`` is
  ``day0 + n`` days, and windows count calendar days, both ends inclusive. Time zones are not
  handled here: the caller converts "now" to the participant's local date.
- Clinic visits: one per ``visits.visit_days()``, with the protocol's ``window`` (``before_days``
  / ``after_days``, e.g. day 28 +/- 3 is days 25-31).
- Dosing visits: one per ``dosing.administration_days()`` - for continuous-infusion cycles one per
  cycle *start* (the infusion's later days are not visits), for a single infusion its day, for
  repeated doses every dose. A dosing visit's window is its day only (0 days before and after):
  protocols give no dosing window, and a dose given on another day is recorded as out of window
  rather than silently accepted.
- Screening (where the protocol defines it): one visit whose window is the screening window
  (e.g. days -28 to -1) and whose target, and ``day``, is the window's *last* day - screening may
  happen at any point of the window, so it is "open" throughout and never "overdue" before it
  closes; once the window has closed without it, it is "missed".
- A day-0 dosing visit and the day-0 clinic visit are both planned: they are different kinds with
  different keys.
- Keys are stable across regenerations (persisted visit instances keep them): ``screening``,
  ``clinic-d028`` (clinic visit by target day), ``dose-c2`` (infusion cycle by number),
  ``dose-d014`` (single or repeated dose by day). Negative days are written ``dm007`` (day -7).
- Order: by target date, then kind (screening, dosing, clinic), then key.
- A day 0 so close to ``date.min`` / ``date.max`` that a visit date does not exist raises
  ``OverflowError`` (from ``datetime``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final, Literal, get_args

from app.studies.protocol import (
    ContinuousInfusionCycles,
    ProtocolDefinition,
    RepeatedDoses,
    SingleInfusion,
)

VisitKind = Literal["screening", "clinic", "dosing"]
VisitState = Literal["upcoming", "open", "overdue", "missed", "completed", "cancelled"]

VISIT_KINDS: Final[frozenset[str]] = frozenset(get_args(VisitKind))
VISIT_STATES: Final[frozenset[str]] = frozenset(get_args(VisitState))

SCREENING_KEY: Final = "screening"
_KIND_ORDER: Final[dict[str, int]] = {"screening": 0, "dosing": 1, "clinic": 2}
_WEEK_DAYS: Final = 7


@dataclass(frozen=True, slots=True)
class PlannedVisit:
    """One visit of a participant's schedule; ``window_start`` and ``window_end`` are inclusive."""

    key: str
    name: str
    kind: VisitKind
    day: int
    """Target day relative to day 0 (for screening: the window's last day)."""
    target_date: dt.date
    window_start: dt.date
    window_end: dt.date


def _day_token(day: int) -> str:
    """``d028`` for day 28, ``dm007`` for day -7: stable, and ordered like the days when >= 0."""
    return f"d{day:03d}" if day >= 0 else f"dm{-day:03d}"


def _clinic_name(day: int) -> str:
    if day % _WEEK_DAYS == 0:
        return f"Week {day // _WEEK_DAYS} visit"
    return f"Day {day} visit"


def _date(day0: dt.date, day: int) -> dt.date:
    return day0 + dt.timedelta(days=day)


def _dosing_visits(protocol: ProtocolDefinition, day0: dt.date) -> list[PlannedVisit]:
    """Dosing visits (window: the dosing day only)."""
    dosing = protocol.dosing
    named: list[tuple[str, str, int]]  # (key, name, day)
    if isinstance(dosing, ContinuousInfusionCycles):
        named = [
            (f"dose-c{c.cycle}", f"Cycle {c.cycle} infusion start", c.start_day)
            for c in dosing.cycles
        ]
    elif isinstance(dosing, SingleInfusion):
        named = [(f"dose-{_day_token(dosing.day)}", "Infusion", dosing.day)]
    elif isinstance(dosing, RepeatedDoses):
        named = [
            (f"dose-{_day_token(day)}", f"Dose {i}", day)
            for i, day in enumerate(dosing.administration_days(), 1)
        ]
    else:  # pragma: no cover - the Dosing union is closed
        raise TypeError(f"unknown dosing pattern {type(dosing).__name__}")
    visits = []
    for key, name, day in named:
        date = _date(day0, day)
        visits.append(PlannedVisit(key, name, "dosing", day, date, date, date))
    return visits


def plan_visits(protocol: ProtocolDefinition, day0: dt.date) -> list[PlannedVisit]:
    """All planned visits of a participant whose day 0 is ``day0``, in schedule order.

    Screening (if the protocol defines a screening window), one dosing visit per administration day
    (per cycle start for infusion cycles) and one clinic visit per ``visits.visit_days()``, sorted
    by (target date, kind: screening < dosing < clinic, key). See the module docstring.
    """
    schedule = protocol.visits
    visits: list[PlannedVisit] = []
    if schedule.screening is not None:
        s = schedule.screening
        end = _date(day0, s.end_day)
        visits.append(
            PlannedVisit(
                SCREENING_KEY,
                "Screening",
                "screening",
                s.end_day,
                end,
                _date(day0, s.start_day),
                end,
            )
        )
    visits.extend(_dosing_visits(protocol, day0))
    before, after = schedule.window.before_days, schedule.window.after_days
    for day in schedule.visit_days():
        visits.append(
            PlannedVisit(
                key=f"clinic-{_day_token(day)}",
                name=_clinic_name(day),
                kind="clinic",
                day=day,
                target_date=_date(day0, day),
                window_start=_date(day0, day - before),
                window_end=_date(day0, day + after),
            )
        )
    visits.sort(key=lambda v: (v.target_date, _KIND_ORDER[v.kind], v.key))
    return visits


def out_of_window(planned: PlannedVisit, completed_on: dt.date | None) -> bool:
    """True when the visit was done outside its window (both ends inclusive); False if not done."""
    if completed_on is None:
        return False
    return not planned.window_start <= completed_on <= planned.window_end


def visit_state(
    planned: PlannedVisit, *, today: dt.date, completed_on: dt.date | None, cancelled: bool
) -> VisitState:
    """The visit's state on the participant's local calendar day ``today``.

    In order: ``cancelled`` wins over everything; then ``completed`` when it has a completion date
    (wherever it falls - see ``out_of_window``); otherwise ``upcoming`` before the window,
    ``open`` from the window's first day up to and including the target day, ``overdue`` after the
    target up to and including the window's last day, ``missed`` after the window.
    """
    if cancelled:
        return "cancelled"
    if completed_on is not None:
        return "completed"
    if today < planned.window_start:
        return "upcoming"
    if today <= planned.target_date:
        return "open"
    if today <= planned.window_end:
        return "overdue"
    return "missed"
