"""The outcome-summary cache and its keys (app/scores/outcome_summaries.py)."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.scores import outcome_summaries as summaries
from app.scores import proportions, trends
from app.scores.trends import Point
from app.studies.builtin import BLINATUMOMAB_NCT06836973
from app.studies.protocol import ProtocolDefinition

DAY0 = date(2026, 1, 5)


def _protocol(**efficacy: object) -> ProtocolDefinition:
    data = dict(BLINATUMOMAB_NCT06836973)
    data["efficacy"] = {**data["efficacy"], **efficacy}  # type: ignore[dict-item]
    return ProtocolDefinition.model_validate(data)


def _inputs(diary: int = 3, clinic: int = 0, rules: str = "r") -> summaries.Inputs:
    return summaries.Inputs(DAY0, diary, clinic, rules)


def test_a_summary_is_returned_only_for_the_inputs_it_was_computed_from() -> None:
    cache = summaries.SummaryCache(10)
    pid = uuid.uuid4()
    cache.put(pid, _inputs(), {})
    assert cache.get(pid, _inputs()) == {}
    assert cache.get(pid, _inputs(diary=4)) is None
    assert cache.get(pid, _inputs(clinic=1)) is None
    assert cache.get(pid, _inputs(rules="other")) is None
    assert cache.get(pid, summaries.Inputs(date(2026, 1, 6), 3, 0, "r")) is None
    assert cache.get(uuid.uuid4(), _inputs()) is None
    assert (cache.hits, cache.misses) == (1, 5)


def test_the_least_recently_used_participant_is_dropped_beyond_the_bound() -> None:
    cache = summaries.SummaryCache(2)
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    cache.put(a, _inputs(), {})
    cache.put(b, _inputs(), {})
    assert cache.get(a, _inputs()) is not None  # a is now the most recent
    cache.put(c, _inputs(), {})
    assert len(cache) == 2
    assert cache.get(b, _inputs()) is None
    assert cache.get(a, _inputs()) is not None


def test_a_zero_bound_keeps_nothing_and_a_negative_one_is_refused() -> None:
    cache = summaries.SummaryCache(0)
    cache.put(uuid.uuid4(), _inputs(), {})
    assert len(cache) == 0
    with pytest.raises(ValueError, match="negative"):
        summaries.SummaryCache(-1)


def test_the_rules_key_follows_the_settings_the_summaries_use() -> None:
    base = summaries.rules_key(_protocol())
    assert summaries.rules_key(_protocol()) == base
    assert summaries.rules_key(_protocol(mg_adl_improvement_delta=3)) != base
    assert summaries.rules_key(_protocol(mse_max_mg_adl=0)) != base


def test_summarise_gives_the_trend_rules_figures() -> None:
    """The published-style series of the trend tests (issue 4): weekly MG-ADL 8, 6, 5, 1 from a
    baseline of 8: improvement at week 1 (day 7), MSE at week 3 (day 21)."""
    points = [
        Point(date(2026, 1, 5), 8, "diary"),
        Point(date(2026, 1, 12), 6, "diary"),
        Point(date(2026, 1, 19), 5, "diary"),
        Point(date(2026, 1, 26), 1, "diary"),
    ]
    outcome = summaries.summarise("mg_adl", points, DAY0, _protocol())
    assert outcome.baseline_value == 8
    assert (outcome.first_improvement_day, outcome.first_mse_day) == (7, 21)
    assert outcome.last_value_date == date(2026, 1, 26)
    assert not outcome.worsened
    assert outcome.relapse is not None
    assert outcome.relapse.response_date == date(2026, 1, 12)
    assert summaries.summarise("qmg", points, DAY0, _protocol()).relapse is None


def _via_compute_trend(
    instrument: str, points: list[Point], day0: date, protocol: ProtocolDefinition
) -> summaries.InstrumentOutcome:
    """The figures as the outcomes took them from the full trend before the summaries."""
    settings = trends.settings_for(instrument, protocol.efficacy, protocol.baseline)
    trend = trends.compute_trend(instrument, points, day0, settings, rolling_mean_days=None)
    visits = trends.visit_values(
        points, summaries.visit_targets(protocol, day0), baseline_value=trend.baseline_value
    )
    return summaries.InstrumentOutcome(
        baseline_value=trend.baseline_value,
        visit_values=tuple(visits),
        first_improvement_day=trend.first_improvement_day,
        first_mse_day=trend.first_mse_day,
        worsened=bool(trend.worsening_dates),
        last_value_date=max((p.date for p in trend.points if p.date > day0), default=None),
        relapse=proportions.relapse_status(
            trend.points, day0, trend.baseline_value, summaries.relapse_settings(protocol)
        )
        if instrument == "mg_adl"
        else None,
    )


_POINTS = st.lists(
    st.tuples(
        st.integers(min_value=-40, max_value=200),
        st.integers(min_value=0, max_value=24),
        st.sampled_from(["diary", "clinic"]),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(
    raw=_POINTS,
    instrument=st.sampled_from(["mg_adl", "qmg", "mgc", "mg_qol15r", "mg_qol15"]),
    baseline_kind=st.sampled_from(["last_on_or_before_day0", "mean_of_screening"]),
    relapse_kind=st.sampled_from(["loss_of_improvement", "rise_from_nadir"]),
)
def test_summarise_equals_the_full_trend_composition(
    raw: list[tuple[int, int, str]], instrument: str, baseline_kind: str, relapse_kind: str
) -> None:
    """Property: for any series (same-date values, clinic and diary mixed, unsorted), the
    summary gives exactly the figures of ``compute_trend`` + ``visit_values`` +
    ``relapse_status``, under either baseline rule and relapse rule."""
    data = dict(BLINATUMOMAB_NCT06836973)
    data["baseline"] = {"kind": baseline_kind}
    data["efficacy"] = {
        **data["efficacy"],  # type: ignore[dict-item]
        "relapse": {"kind": relapse_kind},
    }
    protocol = ProtocolDefinition.model_validate(data)
    points = [Point(DAY0 + timedelta(days=day), float(v), src) for day, v, src in raw]  # type: ignore[arg-type]
    assert summaries.summarise(instrument, points, DAY0, protocol) == _via_compute_trend(
        instrument, points, DAY0, protocol
    )
