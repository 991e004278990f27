"""The outcome-summary cache and its keys (app/scores/outcome_summaries.py)."""

from __future__ import annotations

import uuid
from datetime import date

import pytest

from app.scores import outcome_summaries as summaries
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
    from app.scores.trends import Point

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
