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
- Rescheduling (issue 5 item 2) moves a pending visit's target date; its window stays the
  protocol's. A visit moved outside its window is pending until its new date (it is not "missed"
  while the agreed date is still ahead), and ``out_of_window`` flags it; see ``visit_state``,
  ``reschedule_problem`` and ``protocol_target_date``.
- Schedule adherence (issue 5 item 5) is completed-in-window / due so far; see
  ``schedule_adherence``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
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


def protocol_target_date(planned: PlannedVisit, *, before_days: int) -> dt.date:
    """The target date the protocol gives a visit with this window, whatever it was moved to.

    Derived from the window, which a reschedule never moves and a regeneration moves together
    with the target (``plan_visits``): screening targets its window's last day, a dosing visit its
    one-day window, a clinic visit ``before_days`` (the protocol's ``visits.window.before_days``)
    after its window opens. Not ``day0 + day``: completed and cancelled visits keep their dates
    when day 0 later moves.
    """
    if planned.kind == "screening":
        return planned.window_end
    if planned.kind == "dosing":
        return planned.window_start
    return planned.window_start + dt.timedelta(days=before_days)


def visit_state(
    planned: PlannedVisit, *, today: dt.date, completed_on: dt.date | None, cancelled: bool
) -> VisitState:
    """The visit's state on the participant's local calendar day ``today``.

    In order: ``cancelled`` wins over everything; then ``completed`` when it has a completion date
    (wherever it falls - see ``out_of_window``); otherwise ``upcoming`` before the window,
    ``open`` from the window's first day up to and including the target day, ``overdue`` after the
    target up to and including the window's last day, ``missed`` after the window.

    A target rescheduled outside the window stretches these periods to it: moved later, the visit
    is ``open`` up to its new date and ``missed`` only the day after it; moved earlier, it is
    ``open`` from its new date. For a target inside its window (every visit as planned) this is
    exactly the rule above.
    """
    if cancelled:
        return "cancelled"
    if completed_on is not None:
        return "completed"
    if today < min(planned.window_start, planned.target_date):
        return "upcoming"
    if today <= planned.target_date:
        return "open"
    if today <= planned.window_end:
        return "overdue"
    return "missed"


# --- rescheduling -----------------------------------------------------------------------------

#: How far past the end of its protocol window a visit may be moved; further is a typing error,
#: not a plan (a visit a year late is no longer that visit).
MAX_RESCHEDULE_DAYS_AFTER_WINDOW: Final = 365

RescheduleRule = Literal["not_past", "before_schedule_start", "too_far"]


def schedule_start(planned: Iterable[PlannedVisit]) -> dt.date | None:
    """The first day of the participant's schedule: the earliest window start (the screening
    window's first day where the protocol has one); None for an empty schedule."""
    return min((p.window_start for p in planned), default=None)


def reschedule_problem(
    planned: PlannedVisit,
    new_date: dt.date,
    *,
    today: dt.date,
    first_day: dt.date | None,
) -> RescheduleRule | None:
    """Why a pending visit cannot be moved to ``new_date`` (participant-local), or None.

    - ``before_schedule_start``: before ``first_day``, the schedule's first day (the screening
      window's start, ``schedule_start``) - no visit of the protocol happens before it;
    - ``not_past``: before ``today`` - a visit that already happened is recorded as completed,
      not moved into the past;
    - ``too_far``: more than ``MAX_RESCHEDULE_DAYS_AFTER_WINDOW`` days after the window's end.

    Leaving the window is allowed (issue 5: "rescheduling records ... whether it leaves the
    window"); ``out_of_window(planned, new_date)`` says whether it does.
    """
    if first_day is not None and new_date < first_day:
        return "before_schedule_start"
    if new_date < today:
        return "not_past"
    if new_date > planned.window_end + dt.timedelta(days=MAX_RESCHEDULE_DAYS_AFTER_WINDOW):
        return "too_far"
    return None


# --- schedule adherence -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VisitRecord:
    """A visit as planned (its target possibly rescheduled) and what happened to it."""

    planned: PlannedVisit
    completed_on: dt.date | None = None
    cancelled: bool = False


@dataclass(frozen=True, slots=True)
class ScheduleAdherence:
    due: int
    """Visits due so far: completed ones, and pending ones whose window has closed."""
    completed_in_window: int
    completed_out_of_window: int
    adherence: float | None
    """``completed_in_window / due`` (4 decimals); None while nothing is due."""


def schedule_adherence(visits: Iterable[VisitRecord], *, today: dt.date) -> ScheduleAdherence:
    """Schedule adherence of one participant on their local day ``today`` (issue 5 item 5:
    "completed in window / due so far").

    - A visit is *due so far* once its protocol window has closed (``today > window_end``) or it
      has been completed (early completions count as soon as they happen). Cancelled visits are
      never due: cancellation is a decision with a reason, not a lapse.
    - A due visit counts for adherence only if completed inside its window (both ends inclusive).
      So a visit completed outside the window, a visit missed, and a visit rescheduled past its
      window whose window has closed all count against it.
    - A visit whose window is still open and which is not done is not yet due: the ratio does not
      drop while a visit can still be done on time.
    """
    due = in_window = outside = 0
    for v in visits:
        if v.cancelled:
            continue
        if v.completed_on is not None:
            due += 1
            if out_of_window(v.planned, v.completed_on):
                outside += 1
            else:
                in_window += 1
        elif today > v.planned.window_end:
            due += 1
    return ScheduleAdherence(
        due=due,
        completed_in_window=in_window,
        completed_out_of_window=outside,
        adherence=round(in_window / due, 4) if due else None,
    )
