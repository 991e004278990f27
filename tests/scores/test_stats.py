"""Descriptive statistics and Kaplan-Meier against hand-computed values."""

from __future__ import annotations

import math

import pytest

from app.scores import stats


def test_summary_matches_hand_computation() -> None:
    """Changes -2, -3, -4, -1: mean -2.5, SD sqrt(5/3), t(0.975, 3) = 3.182446."""
    summary = stats.summarize([-2, -3, -4, -1])
    assert summary.n == 4
    assert summary.mean == pytest.approx(-2.5)
    assert summary.sd == pytest.approx(math.sqrt(5 / 3))
    assert summary.median == pytest.approx(-2.5)
    half = 3.182446 * math.sqrt(5 / 3) / 2
    assert summary.ci95_low == pytest.approx(-2.5 - half)
    assert summary.ci95_high == pytest.approx(-2.5 + half)


def test_summary_of_none_and_one() -> None:
    assert stats.summarize([]).mean is None
    one = stats.summarize([3])
    assert (one.n, one.mean, one.sd, one.ci95_low) == (1, 3, None, None)


@pytest.mark.parametrize(
    ("df", "expected"),
    [
        (1, 12.706205),
        (10, 2.228139),
        (30, 2.042272),
        (40, 2.021075),
        (60, 2.000298),
        (120, 1.979930),
        (10_000, 1.96),
    ],
)
def test_t_quantiles(df: int, expected: float) -> None:
    assert stats.t_quantile_975(df) == pytest.approx(expected, abs=2e-3)


def test_t_quantile_interpolates_monotonically() -> None:
    values = [stats.t_quantile_975(df) for df in range(1, 500)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))
    with pytest.raises(ValueError, match="degrees of freedom"):
        stats.t_quantile_975(0)


def test_kaplan_meier_with_censoring_matches_the_hand_table() -> None:
    """Events at 2, 4, 4, 7; censored at 3 and 5 (n = 6).

    S(2) = 5/6; S(4) = 5/6 x (1 - 2/4) = 5/12; S(7) = 5/12 x (1 - 1/1) = 0; median 4.
    """
    km = stats.kaplan_meier([(2, True), (3, False), (4, True), (4, True), (5, False), (7, True)])
    table = [(s.time, s.at_risk, s.events, s.censored, round(s.survival, 4)) for s in km.steps]
    assert table == [
        (2, 6, 1, 0, 0.8333),
        (3, 5, 0, 1, 0.8333),
        (4, 4, 2, 0, 0.4167),
        (5, 2, 0, 1, 0.4167),
        (7, 1, 1, 0, 0.0),
    ]
    assert km.median == 4
    assert (km.n, km.events) == (6, 4)
    assert km.survival_at(3.5) == pytest.approx(5 / 6)


def test_censored_at_the_same_time_leave_after_the_events() -> None:
    km = stats.kaplan_meier([(5, True), (5, False), (9, True)])
    assert [round(s.survival, 4) for s in km.steps] == [0.6667, 0.0]
    assert km.steps[0].at_risk == 3


def test_no_median_when_survival_stays_above_half() -> None:
    km = stats.kaplan_meier([(3, True), (10, False), (12, False)])
    assert km.median is None
    with pytest.raises(ValueError, match="finite"):
        stats.kaplan_meier([(-1, True)])
