"""Visit schedule generation and visit states (app.visits.schedule, issue 5).

Schedules are checked against shared/domain/trials.md for each built-in protocol
(app.studies.builtin); the state rules and window edges (first and last day inclusive) are
issue 5's "States" and "Time" items.
"""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.studies.builtin import BUILTIN_PROTOCOLS, builtin_protocol
from app.studies.protocol import ProtocolDefinition
from app.visits.schedule import (
    VISIT_STATES,
    PlannedVisit,
    out_of_window,
    plan_visits,
    visit_state,
)

D0 = dt.date(2026, 1, 5)


def d(day: int) -> dt.date:
    return D0 + dt.timedelta(days=day)


def plan(key: str, day0: dt.date = D0) -> list[PlannedVisit]:
    return plan_visits(builtin_protocol(key), day0)


def of_kind(visits: list[PlannedVisit], kind: str) -> list[PlannedVisit]:
    return [v for v in visits if v.kind == kind]


def assert_clinic(visits: list[PlannedVisit], days: list[int], before: int, after: int) -> None:
    clinic = of_kind(visits, "clinic")
    assert [v.day for v in clinic] == days
    for v in clinic:
        assert v.key == f"clinic-d{v.day:03d}"
        assert v.target_date == d(v.day)
        assert v.window_start == d(v.day - before)
        assert v.window_end == d(v.day + after)


def assert_dosing(visits: list[PlannedVisit], days: list[int]) -> None:
    dosing = of_kind(visits, "dosing")
    assert [v.day for v in dosing] == days
    for v in dosing:
        assert v.target_date == v.window_start == v.window_end == d(v.day)


def assert_screening(visits: list[PlannedVisit], start: int, end: int) -> None:
    (s,) = of_kind(visits, "screening")
    assert (s.key, s.name, s.day) == ("screening", "Screening", end)
    assert (s.window_start, s.target_date, s.window_end) == (d(start), d(end), d(end))
    assert visits[0] is s


# --- schedules of the built-in protocols ------------------------------------------------------


def test_nct06836973_schedule() -> None:
    """trials.md 1: a clinic visit every 4 weeks, weeks 0 ... 24; two infusion cycles (cycle 2
    from registry day 13 = day 12); screening days -28 to -1 (builtin definition)."""
    visits = plan("blinatumomab-nct06836973")
    assert_clinic(visits, [0, 28, 56, 84, 112, 140, 168], 3, 3)
    assert_dosing(visits, [0, 12])
    assert [(v.key, v.name) for v in of_kind(visits, "dosing")] == [
        ("dose-c1", "Cycle 1 infusion start"),
        ("dose-c2", "Cycle 2 infusion start"),
    ]
    assert_screening(visits, -28, -1)
    assert len(visits) == 10
    assert of_kind(visits, "clinic")[1].name == "Week 4 visit"


def test_car_t_nct06371040_schedule() -> None:
    """trials.md 2: a single infusion on day 0; visits every 4 weeks to month 6 (service
    default, see the builtin's notes), screening days -28 to -1."""
    visits = plan("car-t-cd19-bcma-nct06371040")
    assert_clinic(visits, [0, 28, 56, 84, 112, 140, 168], 3, 3)
    assert_dosing(visits, [0])
    assert [v.key for v in of_kind(visits, "dosing")] == ["dose-d000"]
    assert_screening(visits, -28, -1)


def test_hn2301_schedule() -> None:
    """trials.md 3: follow-up to 12 months, screening from day -28: 14 visits, weeks 0 ... 52."""
    visits = plan("hn2301")
    assert_clinic(visits, list(range(0, 365, 28)), 3, 3)
    assert len(of_kind(visits, "clinic")) == 14
    assert of_kind(visits, "clinic")[-1].day == 364
    assert_dosing(visits, [0])
    assert_screening(visits, -28, -1)


def test_car_nk_nct07243366_schedule() -> None:
    """trials.md 4: once every two weeks for 24 weeks: 12 doses at weeks 0, 2, ... 22; clinic
    visits every 4 weeks to week 24 (day 168)."""
    visits = plan("car-nk-nct07243366")
    assert_dosing(visits, list(range(0, 155, 14)))
    dosing = of_kind(visits, "dosing")
    assert len(dosing) == 12
    assert dosing[2].key == "dose-d028"
    assert dosing[2].name == "Dose 3"
    assert_clinic(visits, [0, 28, 56, 84, 112, 140, 168], 3, 3)
    assert_screening(visits, -28, -1)


def test_case_report_schedule() -> None:
    """trials.md 5: two 12-day continuous-infusion cycles (cycle 2 on the builtin's placeholder
    day 26); no screening window is defined."""
    visits = plan("blinatumomab-case-report-2025")
    assert of_kind(visits, "screening") == []
    assert_dosing(visits, [0, 26])
    assert_clinic(visits, [0, 28, 56, 84], 3, 3)


@pytest.mark.parametrize("key", sorted(BUILTIN_PROTOCOLS))
def test_order_keys_and_day0_visits(key: str) -> None:
    visits = plan(key)
    order = {"screening": 0, "dosing": 1, "clinic": 2}
    assert visits == sorted(visits, key=lambda v: (v.target_date, order[v.kind], v.key))
    assert len({v.key for v in visits}) == len(visits)
    day0 = [v.kind for v in visits if v.day == 0]
    assert day0 == ["dosing", "clinic"]
    # Keys are stable: the same for another day 0.
    assert [v.key for v in plan(key, dt.date(2030, 7, 1))] == [v.key for v in visits]
    for v in visits:
        assert v.window_start <= v.target_date <= v.window_end


def test_plan_follows_a_custom_window_and_negative_days() -> None:
    data = dict(BUILTIN_PROTOCOLS["car-t-cd19-bcma-nct06371040"])
    data["visits"] = {
        "interval_days": 10,
        "first_day": -7,
        "count": 3,
        "window": {"before_days": 1, "after_days": 5},
        "screening": {"start_day": -30, "end_day": -8},
    }
    visits = plan_visits(ProtocolDefinition.model_validate(data), D0)
    assert [v.key for v in visits] == [
        "screening",
        "clinic-dm007",
        "dose-d000",
        "clinic-d003",
        "clinic-d013",
    ]
    clinic = of_kind(visits, "clinic")
    assert [c.name for c in clinic] == ["Week -1 visit", "Day 3 visit", "Day 13 visit"]
    assert (clinic[1].window_start, clinic[1].window_end) == (d(2), d(8))


# --- states -----------------------------------------------------------------------------------

WEEK4 = PlannedVisit("clinic-d028", "Week 4 visit", "clinic", 28, d(28), d(25), d(31))


@pytest.mark.parametrize(
    ("day", "state"),
    [
        (0, "upcoming"),
        (24, "upcoming"),  # the day before the window
        (25, "open"),  # the window's first day
        (27, "open"),
        (28, "open"),  # the target day
        (29, "overdue"),  # the day after the target
        (31, "overdue"),  # the window's last day
        (32, "missed"),  # the day after the window
        (400, "missed"),
    ],
)
def test_state_at_window_edges(day: int, state: str) -> None:
    assert visit_state(WEEK4, today=d(day), completed_on=None, cancelled=False) == state


def test_dosing_visit_with_a_one_day_window() -> None:
    (dose,) = of_kind(plan("car-t-cd19-bcma-nct06371040"), "dosing")
    states = [visit_state(dose, today=d(n), completed_on=None, cancelled=False) for n in (-1, 0, 1)]
    assert states == ["upcoming", "open", "missed"]


def test_screening_is_open_throughout_its_window() -> None:
    screening = plan("hn2301")[0]
    assert visit_state(screening, today=d(-29), completed_on=None, cancelled=False) == "upcoming"
    for day in (-28, -10, -1):
        assert visit_state(screening, today=d(day), completed_on=None, cancelled=False) == "open"
    assert visit_state(screening, today=d(0), completed_on=None, cancelled=False) == "missed"


@pytest.mark.parametrize(
    ("done", "outside"),
    [(24, True), (25, False), (28, False), (31, False), (32, True), (-5, True)],
)
def test_completed_inside_and_outside_the_window(done: int, outside: bool) -> None:
    for today in (d(done), d(done + 100)):
        assert visit_state(WEEK4, today=today, completed_on=d(done), cancelled=False) == "completed"
    assert out_of_window(WEEK4, d(done)) is outside


def test_not_completed_is_never_out_of_window() -> None:
    assert out_of_window(WEEK4, None) is False


@pytest.mark.parametrize("today", [0, 25, 28, 31, 32])
@pytest.mark.parametrize("completed", [None, 28, 40])
def test_cancelled_beats_everything(today: int, completed: int | None) -> None:
    completed_on = None if completed is None else d(completed)
    assert visit_state(WEEK4, today=d(today), completed_on=completed_on, cancelled=True) == (
        "cancelled"
    )


# --- properties -------------------------------------------------------------------------------

PROGRESSION = ["upcoming", "open", "overdue", "missed"]
day0s = st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2200, 12, 31))


@given(
    key=st.sampled_from(sorted(BUILTIN_PROTOCOLS)),
    day0=day0s,
    offsets=st.lists(st.integers(-400, 800), min_size=1, max_size=20),
    completed=st.none() | st.integers(-400, 800),
    cancelled=st.booleans(),
)
def test_states_progress_monotonically(
    key: str, day0: dt.date, offsets: list[int], completed: int | None, cancelled: bool
) -> None:
    """For any day 0 and any today: exactly one state; without completion or cancellation the
    state only moves forward through upcoming -> open -> overdue -> missed."""
    completed_on = None if completed is None else day0 + dt.timedelta(days=completed)
    for visit in plan(key, day0):
        states = [
            visit_state(
                visit,
                today=day0 + dt.timedelta(days=n),
                completed_on=completed_on,
                cancelled=cancelled,
            )
            for n in sorted(offsets)
        ]
        assert all(s in VISIT_STATES for s in states)
        if cancelled:
            assert set(states) == {"cancelled"}
        elif completed_on is not None:
            assert set(states) == {"completed"}
        else:
            ranks = [PROGRESSION.index(s) for s in states]
            assert ranks == sorted(ranks)
            for n, s in zip(sorted(offsets), states, strict=True):
                today = day0 + dt.timedelta(days=n)
                in_window = visit.window_start <= today <= visit.window_end
                assert (s in ("open", "overdue")) is in_window
