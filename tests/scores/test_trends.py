"""Baseline, change and efficacy events (app.scores.trends).

Rules from shared/domain/instruments.md 1.5 (MCID >= 2, ADAPT sustained response >= 4 consecutive
weeks), 1.6 (MSE: MG-ADL <= 1, persistence per protocol), 1.7 (worsening >= 2, confirmed), 2.2
(QMG 3), 3 (MGC 3) and shared/api-contract.md (TREND shape; "Details clients rely on": sustained
response and worsening).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import defaultdict, deque

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.scores import trends
from app.scores.trends import (
    Point,
    Source,
    Trend,
    TrendSettings,
    baseline,
    compute_trend,
    settings_for,
    to_contract_dict,
    visit_values,
    week_of,
    weekly_steps,
)
from app.studies.protocol import BaselineRule, EfficacyThresholds

D0 = dt.date(2026, 1, 5)  # the contract's example baseline date


def d(day: int) -> dt.date:
    return D0 + dt.timedelta(days=day)


def series(*values: tuple[int, float], source: Source = "diary") -> list[Point]:
    """Points from ``(day relative to day 0, value)`` pairs."""
    return [Point(d(day), value, source) for day, value in values]


def weekly(base: float, *values: float) -> list[Point]:
    """A baseline on day 0, then one value at the end of each week (days 7, 14, ...)."""
    return series((0, base), *((7 * (i + 1), v) for i, v in enumerate(values)))


MG_ADL = settings_for("mg_adl")


# --- the published-style series (issue; contract example) ----------------------------------


def test_published_series_improvement_week1_mse_week3() -> None:
    """Weekly MG-ADL 8, 6, 5, 1 from a baseline of 8: a 2-point fall (instruments.md 1.5) first at
    week 1, MSE (MG-ADL <= 1, 1.6) at week 3; three weeks are too few for a sustained response."""
    trend = compute_trend("mg_adl", weekly(8, 6, 5, 1), D0, MG_ADL)
    assert (trend.baseline_value, trend.baseline_date) == (8, D0)
    assert [p.change_from_baseline for p in trend.points] == [0, -2, -3, -7]
    assert trend.first_improvement_date == d(7)
    assert trend.first_improvement_day == 7
    assert trend.first_mse_date == d(21)
    assert trend.first_mse_day == 21
    assert trend.sustained_mse_date == d(21)  # protocol persistence 0
    assert trend.sustained_response_start_date is None
    assert trend.worsening_dates == ()


def test_contract_example_shape() -> None:
    """shared/api-contract.md TREND: the example object, key for key (extra keys allowed)."""
    body = to_contract_dict(compute_trend("mg_adl", weekly(8, 6), D0, MG_ADL))
    expected = {
        "instrument": "mg_adl",
        "baseline_value": 8,
        "baseline_date": "2026-01-05",
        "first_improvement_date": "2026-01-12",
        "sustained_response_start_date": None,
        "first_mse_date": None,
        "worsening_dates": [],
    }
    assert {k: body[k] for k in expected} == expected
    point = body["points"][1]
    assert {k: point[k] for k in ("date", "value", "change_from_baseline", "source")} == {
        "date": "2026-01-12",
        "value": 6,
        "change_from_baseline": -2,
        "source": "diary",
    }
    assert isinstance(point["value"], int)
    assert point["percent_change"] == -25
    assert point["days_from_day0"] == 7
    assert body["first_improvement_day"] == 7
    assert body["day0_date"] == "2026-01-05"
    json.dumps(body)


def test_improvement_needs_the_full_delta() -> None:
    """instruments.md 1.5: >= 2 points; a 1-point fall is not an improvement."""
    assert compute_trend("mg_adl", weekly(8, 7, 7), D0, MG_ADL).first_improvement_date is None
    assert compute_trend("mg_adl", weekly(8, 7, 6), D0, MG_ADL).first_improvement_date == d(14)


def test_improvement_with_a_mean_baseline_tolerates_float_error() -> None:
    """A mean baseline of 22/3 and a value 2 below it count, despite binary floating point."""
    settings = TrendSettings(improvement_delta=2, baseline_kind="mean_of_screening")
    points = series((-2, 7), (-1, 7), (0, 8), (7, 22 / 3 - 2))
    assert compute_trend("mg_adl", points, D0, settings).first_improvement_date == d(7)


# --- QMG and MGC (instruments.md 2.2 and 3: 3 points) ---------------------------------------


@pytest.mark.parametrize("instrument", ["qmg", "mgc"])
def test_qmg_mgc_improvement_delta_3(instrument: str) -> None:
    settings = settings_for(instrument)
    assert settings.improvement_delta == 3
    points = series((-3, 15), (28, 13), (56, 12), (84, 0), (112, 20), (140, 20), source="clinic")
    trend = compute_trend(instrument, points, D0, settings)
    assert trend.first_improvement_date == d(56)
    # MSE, sustained response and worsening are MG-ADL events (instruments.md 1.5-1.7).
    assert trend.first_mse_date is None
    assert trend.sustained_response_start_date is None
    assert trend.worsening_dates == ()
    assert all(p.rolling_mean_7d is None for p in trend.points)


@pytest.mark.parametrize("instrument", ["mg_qol15r", "mg_qol15", "steps", "corticosteroid"])
def test_other_instruments_baseline_and_change_only(instrument: str) -> None:
    settings = settings_for(instrument)
    assert settings.improvement_delta is None
    assert settings.mse_max is None
    assert settings.worsening_delta is None
    trend = compute_trend(instrument, weekly(10, 1, 0, 30, 30), D0, settings)
    assert trend.first_improvement_date is None
    assert trend.first_mse_date is None
    assert trend.worsening_dates == ()
    assert [p.change_from_baseline for p in trend.points] == [0, -9, -10, 20, 20]


def test_corticosteroid_daily_prednisone_equivalent_change() -> None:
    """Daily prednisone-equivalent dose (mg) and its change from the day-0 dose."""
    doses = [Point(d(day), 20 if day <= 0 else 10, "medication") for day in range(-3, 4)]
    trend = compute_trend("corticosteroid", doses, D0)
    assert (trend.baseline_value, trend.baseline_date) == (20, D0)
    assert [p.change_from_baseline for p in trend.points][-1] == -10
    assert trend.points[-1].percent_change == -50
    assert trend.points[-1].source == "medication"


# --- sustained response (instruments.md 1.5 ADAPT; contract) ---------------------------------


def test_sustained_response_exactly_four_weeks() -> None:
    """Four consecutive weekly values all >= 2 below baseline; the start is the first of them."""
    trend = compute_trend("mg_adl", weekly(8, 6, 5, 6, 6), D0, MG_ADL)
    assert trend.sustained_response_start_date == d(7)
    assert trend.sustained_response_start_day == 7


def test_sustained_response_break_after_three_weeks() -> None:
    broken = compute_trend("mg_adl", weekly(8, 6, 5, 6, 7), D0, MG_ADL)
    assert broken.sustained_response_start_date is None
    later = compute_trend("mg_adl", weekly(8, 6, 5, 6, 7, 5, 4, 4, 6), D0, MG_ADL)
    assert later.sustained_response_start_date == d(35)


def test_sustained_response_missing_week_breaks_the_run() -> None:
    points = series((0, 8), (7, 6), (14, 6), (28, 6), (35, 6))  # no value in week 3
    assert compute_trend("mg_adl", points, D0, MG_ADL).sustained_response_start_date is None


def test_sustained_response_uses_the_last_value_of_each_week() -> None:
    """Week k = days 7k-6 .. 7k; a week's value is its last one (several entries in week 1)."""
    points = series((0, 8), (2, 8), (5, 6), (14, 6), (21, 6), (28, 6))
    assert compute_trend("mg_adl", points, D0, MG_ADL).sustained_response_start_date == d(5)
    # Week 1 improves early, but its last value does not.
    points = series((0, 8), (2, 6), (6, 7), (14, 6), (21, 6), (28, 6))
    trend = compute_trend("mg_adl", points, D0, MG_ADL)
    assert trend.first_improvement_date == d(2)  # events: every point
    assert trend.sustained_response_start_date is None


def test_week_numbering() -> None:
    assert [week_of(d(n), D0) for n in (-7, 0, 1, 7, 8, 14, 15)] == [-1, 0, 1, 1, 2, 2, 3]


# --- worsening (instruments.md 1.7; contract) ----------------------------------------------


def test_worsening_confirmed_by_the_next_value() -> None:
    trend = compute_trend("mg_adl", weekly(3, 5, 5), D0, MG_ADL)
    assert trend.worsening_dates == (d(7),)
    assert trend.worsening_days == (7,)
    assert to_contract_dict(trend)["worsening_dates"] == ["2026-01-12"]


@pytest.mark.parametrize(
    "values",
    [
        (9, 3, 3),  # a single spike
        (3, 3, 6),  # the last value, not yet confirmed
        (5, 4, 5),  # 1 above in between: not consecutive
        (4, 4, 4),  # 1 above: below the delta
    ],
)
def test_worsening_not_counted(values: tuple[float, ...]) -> None:
    assert compute_trend("mg_adl", weekly(3, *values), D0, MG_ADL).worsening_dates == ()


def test_worsening_two_separate_runs_and_a_long_run_once() -> None:
    trend = compute_trend("mg_adl", weekly(3, 5, 6, 7, 3, 5, 5), D0, MG_ADL)
    assert trend.worsening_dates == (d(7), d(35))


def test_worsening_confirmations_setting() -> None:
    settings = TrendSettings(worsening_delta=2, worsening_confirmations=3)
    assert compute_trend("mg_adl", weekly(3, 5, 5), D0, settings).worsening_dates == ()
    assert compute_trend("mg_adl", weekly(3, 5, 5, 5), D0, settings).worsening_dates == (d(7),)


def test_worsening_same_day_values_in_order() -> None:
    """Two entries on one day are consecutive values (kept in the order given)."""
    points = series((0, 3), (7, 6), (7, 6))
    assert compute_trend("mg_adl", points, D0, MG_ADL).worsening_dates == (d(7),)


# --- MSE (instruments.md 1.6) --------------------------------------------------------------


def test_mse_persistence_four_weeks() -> None:
    """NCT06958939: "ADL <= 1 ... for 4 weeks" -> ``mse_persistence_days`` 28."""
    settings = settings_for("mg_adl", EfficacyThresholds(mse_persistence_days=28))
    held = compute_trend("mg_adl", weekly(8, 1, 0, 1, 1, 1), D0, settings)
    assert (held.first_mse_date, held.sustained_mse_date) == (d(7), d(7))
    interrupted = compute_trend("mg_adl", weekly(8, 1, 3, 0, 0, 0, 0, 0), D0, settings)
    assert interrupted.first_mse_date == d(7)
    assert interrupted.sustained_mse_date == d(21)
    assert interrupted.sustained_mse_day == 21
    too_short = compute_trend("mg_adl", weekly(8, 1, 0, 1, 1), D0, settings)
    assert too_short.first_mse_date == d(7)
    assert too_short.sustained_mse_date is None


def test_mse_does_not_need_a_baseline() -> None:
    """MSE is absolute (MG-ADL <= 1): known with day 0 even when no baseline was recorded."""
    trend = compute_trend("mg_adl", series((7, 4), (14, 1)), D0, MG_ADL)
    assert trend.baseline_value is None
    assert trend.first_mse_date == d(14)
    assert trend.first_improvement_date is None


def test_baseline_of_zero_has_no_percent_change() -> None:
    trend = compute_trend("mg_adl", weekly(0, 0, 1), D0, MG_ADL)
    assert [p.percent_change for p in trend.points] == [None, None, None]
    assert [p.change_from_baseline for p in trend.points] == [0, 0, 1]


# --- baseline rules (protocol BaselineRule) -------------------------------------------------


def test_baseline_last_on_or_before_day0() -> None:
    points = series((-10, 7), (-3, 9), (2, 5))
    assert baseline(points, D0, MG_ADL) == (9, d(-3))
    # On day 0 itself, and the last given of several same-day values.
    assert baseline(series((-3, 9), (0, 6), (0, 7)), D0, MG_ADL) == (7, D0)


def test_baseline_lookback_excludes_older_values() -> None:
    assert baseline(series((-29, 9), (3, 5)), D0, MG_ADL) == (None, None)
    assert baseline(series((-29, 9), (-28, 8)), D0, MG_ADL) == (8, d(-28))
    narrow = settings_for("mg_adl", baseline=BaselineRule(lookback_days=0))
    assert baseline(series((-1, 9), (0, 4)), D0, narrow) == (4, D0)
    assert baseline(series((-1, 9)), D0, narrow) == (None, None)


def test_baseline_mean_of_screening() -> None:
    settings = settings_for("mg_adl", baseline=BaselineRule(kind="mean_of_screening"))
    points = series((-40, 20), (-20, 6), (-10, 8), (0, 10), (1, 0))
    assert baseline(points, D0, settings) == (8, D0)
    trend = compute_trend("mg_adl", points, D0, settings)
    assert trend.points[-1].change_from_baseline == -8


def test_no_day0_no_baseline_no_events() -> None:
    trend = compute_trend("mg_adl", weekly(8, 6, 0, 12, 12), None, MG_ADL)
    assert (trend.baseline_value, trend.baseline_date) == (None, None)
    assert all(p.change_from_baseline is None and p.days_from_day0 is None for p in trend.points)
    assert trend.first_improvement_date is None
    assert trend.first_mse_date is None
    assert trend.sustained_mse_date is None
    assert trend.worsening_dates == ()
    body = to_contract_dict(trend)
    assert body["baseline_value"] is None
    assert body["first_improvement_day"] is None
    assert body["worsening_days"] == []


def test_no_points() -> None:
    trend = compute_trend("mg_adl", [], D0)
    assert trend.points == ()
    assert trend.baseline_value is None
    assert to_contract_dict(trend)["points"] == []


def test_unsorted_input_is_sorted_stably() -> None:
    points = series((14, 5), (0, 8), (7, 6))
    trend = compute_trend("mg_adl", points, D0, MG_ADL)
    assert [p.date for p in trend.points] == [D0, d(7), d(14)]
    assert trend == compute_trend("mg_adl", sorted(points, key=lambda p: p.date), D0, MG_ADL)
    # Same-date values keep their order: the last given is the baseline.
    assert compute_trend("mg_adl", series((0, 8), (0, 9)), D0).baseline_value == 9
    assert compute_trend("mg_adl", series((0, 9), (0, 8)), D0).baseline_value == 8


# --- rolling mean ---------------------------------------------------------------------------


def test_rolling_7_day_mean_of_diary_mg_adl() -> None:
    diary = series(*((day, float(day)) for day in range(1, 11)))
    clinic = series((7, 20), source="clinic")
    trend = compute_trend("mg_adl", diary + clinic, D0, MG_ADL)
    means = {(p.date, p.source): p.rolling_mean_7d for p in trend.points}
    assert means[(d(1), "diary")] == 1
    assert means[(d(7), "diary")] == 4  # mean of days 1-7; the clinic value is left out
    assert means[(d(10), "diary")] == 7  # days 4-10
    assert means[(d(7), "clinic")] is None
    off = compute_trend("mg_adl", diary, D0, MG_ADL, rolling_mean_days=None)
    assert all(p.rolling_mean_7d is None for p in off.points)
    assert to_contract_dict(trend)["points"][0]["rolling_mean_7d"] == 1


def test_rolling_mean_counts_every_value_of_the_day() -> None:
    trend = compute_trend("mg_adl", series((1, 2), (1, 4)), D0, MG_ADL)
    assert [p.rolling_mean_7d for p in trend.points] == [3, 3]


# --- visits ---------------------------------------------------------------------------------


def test_visit_nearest_value_in_window_with_ties_to_the_earlier() -> None:
    points = series((0, 8), (20, 3), (26, 6), (30, 5), (55, 4), (57, 2), (57, 1), source="clinic")
    targets = [
        ("v1", d(28), d(25), d(31)),  # d(26) and d(30) are both 2 days away: the earlier
        ("v2", d(56), d(53), d(59)),  # d(55) and d(57) tie again -> d(55)
        ("v3", d(84), d(81), d(87)),  # nothing in the window
        ("v4", d(58), d(57), d(60)),  # d(57) twice: the last given
    ]
    got = visit_values(points, targets, baseline_value=8)
    assert [(v.visit_id, v.date, v.value) for v in got] == [
        ("v1", d(26), 6),
        ("v2", d(55), 4),
        ("v3", None, None),
        ("v4", d(57), 1),
    ]
    assert got[0].change_from_baseline == -2
    assert got[0].percent_change == -25
    assert got[2].change_from_baseline is None
    assert visit_values(points, [("v1", d(28), d(27), d(29))]) == [
        trends.VisitValue("v1", d(28), None, None, None, None, None)
    ]
    nearest = visit_values(points, [("v1", d(28), d(20), d(31))], baseline_value=None)[0]
    assert (nearest.date, nearest.change_from_baseline) == (d(26), None)


def test_visit_window_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="window_end"):
        visit_values([], [("v1", d(28), d(31), d(25))])


# --- steps (trials.md 5) --------------------------------------------------------------------


def test_weekly_steps_against_the_baseline_mean() -> None:
    daily = [(d(-29), 99_999)]  # outside the 28-day lookback
    daily += [(d(day), 3000 if day % 2 else 2000) for day in range(-28, 0)]
    daily += [(d(0), 0)]  # dosing day: in neither
    daily += [(d(day), 3000) for day in range(1, 8)]
    daily += [(d(8), 4000), (d(10), 5000), (d(10), 6000)]  # partial week; the last count wins
    steps = weekly_steps(daily, D0)
    assert steps.baseline_mean == 2500
    assert steps.baseline_days == 28
    week1, week2 = steps.weeks
    assert (week1.week, week1.start_date, week1.end_date) == (1, d(1), d(7))
    assert (week1.mean, week1.days, week1.change_from_baseline) == (3000, 7, 500)
    assert week1.percent_change == 20
    assert (week2.week, week2.mean, week2.days) == (2, 5000, 2)


def test_weekly_steps_edge_cases() -> None:
    assert weekly_steps([(d(1), 100)], None).weeks == ()
    no_base = weekly_steps([(d(1), 100)], D0)
    assert no_base.baseline_mean is None
    assert no_base.weeks[0].change_from_baseline is None
    zero = weekly_steps([(d(-1), 0), (d(3), 100)], D0)
    assert zero.weeks[0].percent_change is None
    with pytest.raises(ValueError, match="step count"):
        weekly_steps([(d(1), -5)], D0)


# --- settings and validation ----------------------------------------------------------------


def test_settings_from_the_protocol() -> None:
    efficacy = EfficacyThresholds(
        mg_adl_improvement_delta=3,
        qmg_improvement_delta=4,
        mgc_improvement_delta=5,
        sustained_response_weeks=6,
        mse_max_mg_adl=0,
        mse_persistence_days=28,
        worsening_delta=3,
        worsening_confirmations=3,
    )
    rule = BaselineRule(kind="mean_of_screening", lookback_days=14)
    assert settings_for("mg_adl", efficacy, rule) == TrendSettings(
        improvement_delta=3,
        sustained_response_weeks=6,
        mse_max=0,
        mse_persistence_days=28,
        worsening_delta=3,
        worsening_confirmations=3,
        baseline_kind="mean_of_screening",
        lookback_days=14,
    )
    assert settings_for("qmg", efficacy, rule).improvement_delta == 4
    assert settings_for("mgc", efficacy, rule).improvement_delta == 5


@pytest.mark.parametrize("instrument", ["mg_adl", "qmg", "mgc", "mg_qol15r", "steps"])
def test_module_defaults_match_the_protocol_defaults(instrument: str) -> None:
    assert settings_for(instrument) == settings_for(
        instrument, EfficacyThresholds(), BaselineRule()
    )


def test_point_validation() -> None:
    with pytest.raises(ValueError, match="finite"):
        Point(D0, math.nan, "diary")
    with pytest.raises(TypeError, match="datetime"):
        Point(dt.datetime(2026, 1, 5, 8, 0), 3, "diary")
    with pytest.raises(ValueError, match="source"):
        Point(D0, 3, "fax")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lookback"):
        TrendSettings(lookback_days=-1)


# --- properties -----------------------------------------------------------------------------

SOURCES: tuple[Source, ...] = ("diary", "clinic")
points_st = st.lists(
    st.builds(
        Point,
        st.integers(-40, 70).map(d),
        st.integers(0, 24).map(float),
        st.sampled_from(SOURCES),
    ),
    max_size=30,
)
settings_st = st.builds(
    TrendSettings,
    improvement_delta=st.sampled_from([None, 1, 2, 3]),
    sustained_response_weeks=st.sampled_from([None, 1, 2, 4]),
    mse_max=st.sampled_from([None, 0, 1]),
    mse_persistence_days=st.integers(0, 30),
    worsening_delta=st.sampled_from([None, 1, 2]),
    worsening_confirmations=st.integers(1, 3),
    baseline_kind=st.sampled_from(["last_on_or_before_day0", "mean_of_screening"]),
    lookback_days=st.integers(0, 40),
)
day0_st = st.one_of(st.none(), st.just(D0))


def _event_dates(trend: Trend) -> list[dt.date]:
    single = [
        trend.first_improvement_date,
        trend.sustained_response_start_date,
        trend.first_mse_date,
        trend.sustained_mse_date,
    ]
    return [e for e in single if e is not None] + list(trend.worsening_dates)


@given(points=points_st, day0=day0_st, settings=settings_st)
def test_property_change_is_value_minus_baseline(
    points: list[Point], day0: dt.date | None, settings: TrendSettings
) -> None:
    trend = compute_trend("mg_adl", points, day0, settings)
    json.dumps(to_contract_dict(trend), allow_nan=False)
    assert len(trend.points) == len(points)
    base = trend.baseline_value
    for p in trend.points:
        if base is None:
            assert p.change_from_baseline is None
            assert p.percent_change is None
        else:
            assert p.change_from_baseline == pytest.approx(p.value - base)
            if base == 0:
                assert p.percent_change is None
            else:
                assert p.percent_change == pytest.approx((p.value - base) / base * 100)


@given(points=points_st, day0=day0_st, settings=settings_st)
def test_property_events_never_on_or_before_day0(
    points: list[Point], day0: dt.date | None, settings: TrendSettings
) -> None:
    trend = compute_trend("mg_adl", points, day0, settings)
    events = _event_dates(trend)
    if day0 is None:
        assert events == []
    else:
        assert all(e > day0 for e in events)
        assert trend.worsening_dates == tuple(sorted(trend.worsening_dates))
        if trend.baseline_value is None:
            assert trend.first_improvement_date is None
            assert trend.worsening_dates == ()


@given(data=st.data(), points=points_st, day0=day0_st, settings=settings_st)
def test_property_input_order_does_not_matter(
    data: st.DataObject, points: list[Point], day0: dt.date | None, settings: TrendSettings
) -> None:
    """Any permutation that keeps same-date values in their given order gives the same trend."""
    shuffled = data.draw(st.permutations(points))
    same_day: dict[dt.date, deque[Point]] = defaultdict(deque)
    for p in points:
        same_day[p.date].append(p)
    reordered = [same_day[p.date].popleft() for p in shuffled]
    assert compute_trend("mg_adl", reordered, day0, settings) == compute_trend(
        "mg_adl", points, day0, settings
    )


# --- the fast paths agree with their definitions (issue 4, docs/performance.md) ---------------

mixed_points_st = st.lists(
    st.builds(
        Point,
        st.integers(-20, 20).map(d),
        st.one_of(
            st.integers(0, 24).map(float),
            st.integers(0, 6000).map(lambda v: v / 100),  # non-whole values: the fsum path
        ),
        st.sampled_from(SOURCES),
    ),
    max_size=40,
)


@given(points=mixed_points_st, days=st.integers(1, 10))
def test_property_rolling_means_are_the_window_means(points: list[Point], days: int) -> None:
    series = trends.sort_points(points)
    diary = [p for p in series if p.source == "diary"]
    expected: list[float | None] = []
    for p in series:
        if p.source != "diary":
            expected.append(None)
            continue
        window = [q.value for q in diary if 0 <= (p.date - q.date).days < days]
        expected.append(math.fsum(window) / len(window))
    assert trends.rolling_means(series, days) == expected  # exactly, not approximately


visit_targets_st = st.lists(
    st.tuples(st.integers(-25, 25), st.integers(-3, 6), st.integers(0, 10)).map(
        lambda t: (f"v{t[0]}", d(t[0]), d(t[0] - t[1]), d(t[0] - t[1] + t[2]))
    ),
    min_size=1,
    max_size=6,
)


@given(points=mixed_points_st, targets=visit_targets_st, base=st.sampled_from([None, 0.0, 6.0]))
def test_property_visit_values_follow_the_nearest_rule(
    points: list[Point], targets: list[trends.VisitTarget], base: float | None
) -> None:
    """The binary search gives what the rule says: the nearest date in the window (a tie to the
    earlier date), that date's last given value."""
    series = trends.sort_points(points)
    got = visit_values(points, targets, baseline_value=base)
    for (visit_id, target, start, end), value in zip(targets, got, strict=True):
        assert (value.visit_id, value.target_date) == (visit_id, target)
        inside = [p for p in series if start <= p.date <= end]
        if not inside:
            assert (value.date, value.value, value.source) == (None, None, None)
            continue
        nearest = min(abs((p.date - target).days) for p in inside)
        day = min(p.date for p in inside if abs((p.date - target).days) == nearest)
        best = [p for p in inside if p.date == day][-1]
        assert (value.date, value.value, value.source) == (best.date, best.value, best.source)
        assert value.change_from_baseline == (None if base is None else best.value - base)


def test_shared_points_are_equal_immutable_and_shared() -> None:
    first = trends.shared_point(D0, 3, "diary")
    assert first == Point(D0, 3.0, "diary")
    assert trends.shared_point(D0, 3, "diary") is first
    assert trends.shared_point(D0, 3, "clinic") != first
