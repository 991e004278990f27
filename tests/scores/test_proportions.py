"""Proportions without relapse and with corticosteroid dose reduction (app.scores.proportions).

Rule sources: trials.md section 3 (HN2301) registers "proportions without worsening, without
relapse, ... and with corticosteroid dose reduction" but defines neither relapse nor the
reduction, and instruments.md has no definition ([U]), so both are protocol settings:
``RelapseRule`` (default: loss of the responder improvement of instruments.md 1.5 [C], confirmed
on the next value as for worsening in 1.7 [U]) and ``CorticosteroidReductionRule`` (default: at
least 50 % below the baseline prednisone-equivalent dose, [S] S20 excerpt). Day 0 is left out of
the corticosteroid baseline because of CRS premedication (trials.md section 5).
"""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from app.scores.proportions import (
    Proportion,
    RelapseSettings,
    RelapseStatus,
    SteroidCourse,
    baseline_dose,
    dose_on,
    dose_reduced,
    reduction_at_visits,
    reduction_overall,
    reduction_percent,
    reduction_table,
    relapse_status,
    without_relapse_at,
    without_relapse_overall,
    without_relapse_table,
)
from app.scores.trends import Point
from app.studies.protocol import (
    CorticosteroidReductionRule,
    EfficacyThresholds,
    ProtocolDefinition,
    RelapseRule,
)
from tests.factories import definition

DAY0 = dt.date(2026, 1, 5)


def day(n: int) -> dt.date:
    return DAY0 + dt.timedelta(days=n)


def series(*values: tuple[int, float]) -> list[Point]:
    return [Point(date=day(n), value=v, source="diary") for n, v in values]


DEFAULT = RelapseSettings(improvement_delta=2)


# --- relapse ---------------------------------------------------------------------------------


def test_loss_of_improvement_confirmed_by_the_next_value() -> None:
    """Default rule: after a >= 2-point fall (1.5 [C]) the response is lost when two consecutive
    values are no longer 2 below baseline; the relapse is dated on the first of them."""
    points = series((-1, 8), (7, 6), (14, 5), (21, 7), (28, 8))
    assert relapse_status(points, DAY0, 8, DEFAULT) == RelapseStatus(day(7), day(21))


def test_an_unconfirmed_loss_is_not_a_relapse() -> None:
    points = series((-1, 8), (7, 6), (14, 7), (21, 5), (28, 7))
    assert relapse_status(points, DAY0, 8, DEFAULT) == RelapseStatus(day(7), None)


def test_exactly_delta_below_baseline_is_still_a_response() -> None:
    """The responder threshold is inclusive ("reduction of >= 2 points", 1.5 [C])."""
    points = series((7, 6), (14, 6), (21, 6))
    assert relapse_status(points, DAY0, 8, DEFAULT) == RelapseStatus(day(7), None)


def test_single_confirmation_setting() -> None:
    settings = RelapseSettings(improvement_delta=2, confirmations=1)
    points = series((7, 6), (14, 7), (21, 5))
    assert relapse_status(points, DAY0, 8, settings) == RelapseStatus(day(7), day(14))


def test_no_response_no_relapse() -> None:
    """Relapse needs a response first: a participant who never improved cannot relapse."""
    points = series((-1, 8), (7, 7), (14, 10), (21, 11))
    assert relapse_status(points, DAY0, 8, DEFAULT) == RelapseStatus(None, None)
    assert relapse_status(points, DAY0, None, DEFAULT) == RelapseStatus(None, None)
    assert relapse_status(points, None, 8, DEFAULT) == RelapseStatus(None, None)


def test_values_up_to_day0_are_not_a_response() -> None:
    points = series((-3, 4), (0, 5), (7, 8), (14, 8))
    assert relapse_status(points, DAY0, 8, DEFAULT) == RelapseStatus(None, None)


def test_rise_from_nadir() -> None:
    """``rise_from_nadir``: two values >= 2 above the lowest value since the response (the MCID
    mirrored, 1.5 [C] / 1.7 [U]) - while still far below baseline, so not a loss of improvement."""
    points = series((-1, 10), (7, 7), (14, 3), (21, 5), (28, 5))
    rise = RelapseSettings(improvement_delta=2, kind="rise_from_nadir", rise_delta=2)
    assert relapse_status(points, DAY0, 10, rise) == RelapseStatus(day(7), day(21))
    assert relapse_status(points, DAY0, 10, DEFAULT) == RelapseStatus(day(7), None)


def test_rise_from_nadir_needs_the_rise_on_every_confirming_value() -> None:
    points = series((7, 7), (14, 3), (21, 5), (28, 4), (35, 6), (42, 6))
    rise = RelapseSettings(improvement_delta=2, kind="rise_from_nadir", rise_delta=3)
    # 5 and 4 are < 3 + 3; 6, 6 are >= 6: the relapse starts on day 35.
    assert relapse_status(points, DAY0, 10, rise) == RelapseStatus(day(7), day(35))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"improvement_delta": 0},
        {"improvement_delta": 2, "rise_delta": -1},
        {"improvement_delta": 2, "confirmations": 0},
        {"improvement_delta": 2, "kind": "bad"},
        {"improvement_delta": float("nan")},
    ],
)
def test_relapse_settings_refuse_bad_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must|unknown"):
        RelapseSettings(**kwargs)  # type: ignore[arg-type]


def test_without_relapse_at_a_time_point_counts_responders_by_then() -> None:
    responded_early = RelapseStatus(day(7), None)
    relapsed = RelapseStatus(day(7), day(20))
    responded_late = RelapseStatus(day(40), None)
    never = RelapseStatus(None, None)
    at_28 = [
        (responded_early, day(28)),
        (relapsed, day(28)),
        (responded_late, day(28)),  # not yet a responder at day 28
        (never, day(28)),
        (RelapseStatus(day(7), None), None),  # no value at this visit
    ]
    assert without_relapse_at(at_28) == Proportion(2, 1)
    assert without_relapse_at([(relapsed, day(14))]) == Proportion(1, 1)  # relapse after
    assert without_relapse_overall([responded_early, relapsed, responded_late, never]) == (
        Proportion(3, 2)
    )


def test_without_relapse_table_shape() -> None:
    table = without_relapse_table(
        [(RelapseStatus(day(7), day(40)), [day(0), day(28), day(56)])],
        [0, 28, 56],
        DEFAULT,
    )
    assert {k: table[k] for k in ("n", "count", "proportion")} == {
        "n": 1,
        "count": 0,
        "proportion": 0.0,
    }
    assert table["time_points"] == [
        {"visit_day": 0, "week": 0, "n": 0, "count": 0, "proportion": None},
        {"visit_day": 28, "week": 4, "n": 1, "count": 1, "proportion": 1.0},
        {"visit_day": 56, "week": 8, "n": 1, "count": 0, "proportion": 0.0},
    ]
    assert table["rule"]["kind"] == "loss_of_improvement"
    with pytest.raises(ValueError, match="per visit day"):
        without_relapse_table([(RelapseStatus(None, None), [None])], [0, 28], DEFAULT)


def test_proportion_rounding_and_bounds() -> None:
    assert Proportion(3, 2).as_dict() == {"n": 3, "count": 2, "proportion": 0.6667}
    assert Proportion(0, 0).proportion is None
    with pytest.raises(ValueError, match="between 0 and n"):
        Proportion(1, 2)


# --- corticosteroid dose reduction ------------------------------------------------------------

PREDNISONE_20 = (day(-60), None, 20.0)
#: 8 mg dexamethasone premedication on day 0 = 8 x 5 / 0.75 mg prednisone (formulary).
PREMEDICATION = (day(0), day(0), 53.3333)


def test_dose_on_sums_the_lines_covering_the_day() -> None:
    lines = [(day(-10), day(9), 20.0), (day(10), None, 10.0), (day(5), day(5), 2.5)]
    assert dose_on(lines, day(-11)) == 0
    assert dose_on(lines, day(5)) == 22.5
    assert dose_on(lines, day(9)) == 20  # the stop date is inclusive
    assert dose_on(lines, day(10)) == 10
    assert dose_on(lines, day(400)) == 10  # no stop date: ongoing


def test_baseline_dose_leaves_out_day0_premedication() -> None:
    """Day 0's dose may include corticosteroid premedication against CRS (trials.md 5)."""
    lines = [PREDNISONE_20, PREMEDICATION]
    assert dose_on(lines, DAY0) == 73.3333
    assert baseline_dose(lines, DAY0) == 20
    taper = [(day(-60), day(-15), 30.0), (day(-14), None, 20.0)]
    # mean_of_screening: the mean over the lookback days before day 0 (14 x 30 + 14 x 20) / 28.
    assert baseline_dose(taper, DAY0, kind="mean_of_screening", lookback_days=28) == 25
    assert baseline_dose(taper, DAY0, kind="mean_of_screening", lookback_days=0) == 20
    with pytest.raises(ValueError, match="negative"):
        baseline_dose(taper, DAY0, lookback_days=-1)


def test_reduction_threshold_is_inclusive() -> None:
    """Default 50 %: 20 -> 10 mg is reduced, 20 -> 10.5 is not; no baseline dose, no reduction."""
    assert reduction_percent(20, 10) == 50
    assert reduction_percent(20, 25) == -25
    assert reduction_percent(0, 5) is None
    assert dose_reduced(20, 10, 50)
    assert not dose_reduced(20, 10.5, 50)
    assert dose_reduced(20, 0, 100)
    assert dose_reduced(20, 19, 5)
    assert not dose_reduced(0, 0, 50)
    with pytest.raises(ValueError, match="min_reduction_percent"):
        dose_reduced(20, 10, 0)


def course(lines: list[tuple[dt.date, dt.date | None, float]], **kw: object) -> SteroidCourse:
    data: dict[str, object] = {
        "day0": DAY0,
        "lines": tuple(lines),
        "baseline_mg": baseline_dose(lines, DAY0),
        "observed_until": day(100),
    }
    data.update(kw)
    return SteroidCourse(**data)  # type: ignore[arg-type]


def test_reduction_per_visit_excludes_participants_without_corticosteroids_at_baseline() -> None:
    tapered = course([(day(-60), day(20), 20.0), (day(21), None, 10.0)])
    steady = course([PREDNISONE_20, PREMEDICATION])
    started_later = course([(day(10), None, 20.0)])  # none at baseline: excluded
    none = course([])
    withdrawn = course([(day(-60), day(20), 20.0), (day(21), None, 5.0)], observed_until=day(30))
    unknown = course([PREDNISONE_20], not_derivable=True)
    courses = [tapered, steady, started_later, none, withdrawn, unknown]
    found = reduction_at_visits(courses, [0, 28, 56], 50)
    assert found == [Proportion(3, 0), Proportion(3, 2), Proportion(2, 1)]
    assert reduction_overall(courses, 50) == Proportion(3, 2)  # day 100, withdrawn at day 30
    table = reduction_table(courses, [0, 28, 56], 50)
    assert table["on_corticosteroids_at_baseline"] == 3
    assert table["excluded_not_on_corticosteroids_at_baseline"] == 2
    assert table["excluded_dose_not_derivable"] == 1
    assert table["time_points"][1] == {
        "visit_day": 28,
        "week": 4,
        "n": 3,
        "count": 2,
        "proportion": 0.6667,
    }
    assert "excluded from the denominator" in table["note"]


def test_no_follow_up_beyond_day0_is_not_counted_overall() -> None:
    assert reduction_overall([course([PREDNISONE_20], observed_until=DAY0)], 50) == Proportion(0, 0)


# --- protocol settings ------------------------------------------------------------------------


def test_protocol_defaults_and_their_agreement_with_the_pure_module() -> None:
    rule = RelapseRule()
    pure = RelapseSettings(improvement_delta=2)
    assert (rule.kind, rule.rise_delta, rule.confirmations) == (
        pure.kind,
        pure.rise_delta,
        pure.confirmations,
    )
    assert CorticosteroidReductionRule().min_reduction_percent == 50
    efficacy = EfficacyThresholds()
    assert efficacy.relapse == rule
    assert efficacy.corticosteroid_reduction.min_reduction_percent == 50


def test_stored_protocols_without_the_new_settings_still_load() -> None:
    stored = definition().model_dump(mode="json")
    del stored["efficacy"]["relapse"]
    del stored["efficacy"]["corticosteroid_reduction"]
    loaded = ProtocolDefinition.model_validate(stored)
    assert loaded.efficacy.relapse == RelapseRule()
    assert loaded.efficacy.corticosteroid_reduction == CorticosteroidReductionRule()


@pytest.mark.parametrize(
    "efficacy",
    [
        {"relapse": {"kind": "exacerbation"}},
        {"relapse": {"confirmations": 0}},
        {"relapse": {"rise_delta": 0}},
        {"relapse": {"extra": 1}},
        {"corticosteroid_reduction": {"min_reduction_percent": 0}},
        {"corticosteroid_reduction": {"min_reduction_percent": 101}},
        {"corticosteroid_reduction": {"min_reduction_percent": "nan"}},
    ],
)
def test_protocol_settings_are_validated(efficacy: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        definition(efficacy=efficacy)


def test_protocol_can_override_the_rules() -> None:
    protocol = definition(
        efficacy={
            "relapse": {"kind": "rise_from_nadir", "rise_delta": 3, "confirmations": 1},
            "corticosteroid_reduction": {"min_reduction_percent": 25},
        }
    )
    assert protocol.efficacy.relapse.kind == "rise_from_nadir"
    assert protocol.efficacy.relapse.rise_delta == 3
    assert protocol.efficacy.corticosteroid_reduction.min_reduction_percent == 25
