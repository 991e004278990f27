"""Rescheduled visits' states, the rescheduling rules and schedule adherence
(app.visits.schedule; issue 5 items 2 and 5).

Sources: issue 5 "States" ("rescheduling records the reason and whether it leaves the window")
and "Portal" ("schedule adherence per participant (completed in window / due so far)"). The
choices where the issue leaves room are in the schedule module's docstring.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.studies.builtin import BUILTIN_PROTOCOLS, builtin_protocol
from app.visits.schedule import (
    MAX_RESCHEDULE_DAYS_AFTER_WINDOW,
    PlannedVisit,
    VisitRecord,
    out_of_window,
    plan_visits,
    protocol_target_date,
    reschedule_problem,
    schedule_adherence,
    schedule_start,
    visit_state,
)

D0 = dt.date(2026, 1, 5)


def d(day: int) -> dt.date:
    return D0 + dt.timedelta(days=day)


WEEK4 = PlannedVisit("clinic-d028", "Week 4 visit", "clinic", 28, d(28), d(25), d(31))


def moved(visit: PlannedVisit, day: int) -> PlannedVisit:
    return dataclasses.replace(visit, target_date=d(day))


def state(visit: PlannedVisit, today: int) -> str:
    return visit_state(visit, today=d(today), completed_on=None, cancelled=False)


# --- states of rescheduled visits ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("today", "expected"),
    [
        (24, "upcoming"),
        (25, "open"),
        (29, "open"),
        (30, "overdue"),
        (31, "overdue"),
        (32, "missed"),
    ],
)
def test_moved_inside_the_window(today: int, expected: str) -> None:
    """Target 29 instead of 28: open up to the new target, overdue after it, missed after the
    window - the window's edges are the protocol's."""
    assert state(moved(WEEK4, 29), today) == expected


@pytest.mark.parametrize(
    ("today", "expected"),
    [(24, "upcoming"), (25, "open"), (31, "open"), (32, "open"), (35, "open"), (36, "missed")],
)
def test_moved_after_the_window_is_not_missed_before_its_new_date(
    today: int, expected: str
) -> None:
    assert state(moved(WEEK4, 35), today) == expected
    assert out_of_window(WEEK4, d(35)) is True


@pytest.mark.parametrize(
    ("today", "expected"),
    [(19, "upcoming"), (20, "open"), (21, "overdue"), (31, "overdue"), (32, "missed")],
)
def test_moved_before_the_window(today: int, expected: str) -> None:
    assert state(moved(WEEK4, 20), today) == expected


@given(
    key=st.sampled_from(sorted(BUILTIN_PROTOCOLS)),
    shift=st.integers(-60, 400),
    offsets=st.lists(st.integers(-100, 900), min_size=1, max_size=30),
)
def test_rescheduled_states_progress_and_miss_only_after_window_and_date(
    key: str, shift: int, offsets: list[int]
) -> None:
    """For any visit moved by any number of days: the state only moves forward, and it is
    "missed" exactly when today is past both the window and the new date."""
    order = ["upcoming", "open", "overdue", "missed"]
    for visit in plan_visits(builtin_protocol(key), D0):
        target = visit.target_date + dt.timedelta(days=shift)
        rescheduled = dataclasses.replace(visit, target_date=target)
        days = [D0 + dt.timedelta(days=n) for n in sorted(offsets)]
        states = [
            visit_state(rescheduled, today=t, completed_on=None, cancelled=False) for t in days
        ]
        assert [order.index(s) for s in states] == sorted(order.index(s) for s in states)
        for t, s in zip(days, states, strict=True):
            assert (s == "missed") == (t > max(visit.window_end, target))
            assert (s == "open") == (min(visit.window_start, target) <= t <= target)


# --- the protocol's target, whatever the visit was moved to -----------------------------------


@pytest.mark.parametrize("key", sorted(BUILTIN_PROTOCOLS))
@pytest.mark.parametrize("shift", [-9, 0, 2, 40])
def test_protocol_target_date_survives_a_reschedule(key: str, shift: int) -> None:
    protocol = builtin_protocol(key)
    before = protocol.visits.window.before_days
    for visit in plan_visits(protocol, D0):
        rescheduled = dataclasses.replace(
            visit, target_date=visit.target_date + dt.timedelta(days=shift)
        )
        assert protocol_target_date(rescheduled, before_days=before) == visit.target_date


# --- what a visit may be moved to -------------------------------------------------------------

PLAN = plan_visits(builtin_protocol("blinatumomab-nct06836973"), D0)


def test_schedule_start_is_the_screening_windows_first_day() -> None:
    """NCT06836973 builtin: screening days -28 .. -1."""
    assert schedule_start(PLAN) == d(-28)
    no_screening = plan_visits(builtin_protocol("blinatumomab-case-report-2025"), D0)
    assert schedule_start(no_screening) == d(-3)  # the day-0 visit's window (+/- 3 days)
    assert schedule_start([]) is None


@pytest.mark.parametrize(
    ("new", "today", "rule"),
    [
        (10, 10, None),  # today itself
        (9, 10, "not_past"),
        (-29, -40, "before_schedule_start"),
        (-28, -40, None),  # the schedule's first day
        (31 + MAX_RESCHEDULE_DAYS_AFTER_WINDOW, 10, None),
        (32 + MAX_RESCHEDULE_DAYS_AFTER_WINDOW, 10, "too_far"),
        (45, 10, None),  # outside the window is allowed
    ],
)
def test_reschedule_rules(new: int, today: int, rule: str | None) -> None:
    assert reschedule_problem(WEEK4, d(new), today=d(today), first_day=d(-28)) == rule


# --- schedule adherence -----------------------------------------------------------------------


def record(
    visit: PlannedVisit, completed: int | None = None, *, cancelled: bool = False
) -> VisitRecord:
    return VisitRecord(visit, None if completed is None else d(completed), cancelled)


WEEK0 = PlannedVisit("clinic-d000", "Week 0 visit", "clinic", 0, d(0), d(-3), d(3))
WEEK8 = PlannedVisit("clinic-d056", "Week 8 visit", "clinic", 56, d(56), d(53), d(59))


def test_nothing_due_yet_is_null() -> None:
    result = schedule_adherence([record(WEEK0), record(WEEK4)], today=d(3))
    assert (result.due, result.adherence) == (0, None)
    assert schedule_adherence([], today=d(100)).adherence is None


def test_due_counts_closed_windows_and_completions() -> None:
    """On day 40: week 0 done in its window, week 4 done late (day 33), week 8 not yet due."""
    result = schedule_adherence([record(WEEK0, 1), record(WEEK4, 33), record(WEEK8)], today=d(40))
    assert (result.due, result.completed_in_window, result.completed_out_of_window) == (2, 1, 1)
    assert result.adherence == 0.5


def test_window_edges_and_missed() -> None:
    """The window's last day still counts as on time; the day after it, a visit not done is
    due and counts against adherence."""
    on_last_day = schedule_adherence([record(WEEK4, 31)], today=d(31))
    assert (on_last_day.due, on_last_day.adherence) == (1, 1.0)
    assert schedule_adherence([record(WEEK4)], today=d(31)).due == 0
    missed = schedule_adherence([record(WEEK0, 0), record(WEEK4)], today=d(32))
    assert (missed.due, missed.adherence) == (2, 0.5)


def test_early_completion_is_due_at_once_and_out_of_window() -> None:
    result = schedule_adherence([record(WEEK8, 40)], today=d(40))
    assert (result.due, result.completed_out_of_window, result.adherence) == (1, 1, 0.0)


def test_cancelled_visits_never_count() -> None:
    result = schedule_adherence(
        [record(WEEK0, 0), record(WEEK4, cancelled=True), record(WEEK8, 56, cancelled=True)],
        today=d(100),
    )
    assert (result.due, result.adherence) == (1, 1.0)


def test_rescheduled_past_the_window_counts_against_once_the_window_closes() -> None:
    late = moved(WEEK4, 35)
    assert schedule_adherence([record(late)], today=d(32)).adherence == 0.0
    assert schedule_adherence([record(late, 35)], today=d(35)).completed_out_of_window == 1


def test_ratio_is_rounded_to_four_places() -> None:
    visits = [record(WEEK0, 0), record(WEEK4), record(WEEK8)]
    assert schedule_adherence(visits, today=d(100)).adherence == 0.3333


@given(
    outcomes=st.lists(
        st.tuples(st.none() | st.integers(-40, 200), st.booleans()), min_size=1, max_size=10
    ),
    days=st.lists(st.integers(-40, 300), min_size=2, max_size=10),
)
def test_adherence_properties(outcomes: list[tuple[int | None, bool]], days: list[int]) -> None:
    """0 <= adherence <= 1; done-in-window + done-outside <= due <= visits not cancelled; and
    "due so far" never shrinks as days pass (completion dates fixed)."""
    plan = [v for v in PLAN if v.kind == "clinic"]
    records = [
        record(plan[i % len(plan)], completed, cancelled=cancelled)
        for i, (completed, cancelled) in enumerate(outcomes)
    ]
    previous = -1
    for today in sorted(days):
        # Only completions on or before today are known on that day.
        known = [
            r
            if r.completed_on is None or r.completed_on <= d(today)
            else VisitRecord(r.planned, None, r.cancelled)
            for r in records
        ]
        result = schedule_adherence(known, today=d(today))
        assert result.completed_in_window + result.completed_out_of_window <= result.due
        assert result.due <= sum(not r.cancelled for r in known)
        assert result.adherence is None or 0 <= result.adherence <= 1
        assert (result.adherence is None) == (result.due == 0)
        assert result.due >= previous
        previous = result.due
