"""Baseline, change from baseline and efficacy events of a participant's score series.

Pure module (stdlib only): no database, no web framework, no pydantic. The service loads the
series, the participant's day 0 and the protocol's ``baseline`` / ``efficacy`` settings, and this
module computes the TREND response of shared/api-contract.md.

Sources (shared/domain/instruments.md):

- MCID / first clinically meaningful improvement: MG-ADL >= 2 points (1.5 [C], Muppidi 2011,
  MDCalc), QMG >= 3 (2.2 [S]), MGC >= 3 (3 [C], Burns 2010) below baseline; the protocol's
  ``EfficacyThresholds.*_improvement_delta`` values.
- Sustained response (ADAPT / VYVGART label, 1.5 [C]): a reduction of >= 2 MG-ADL points from
  baseline "sustained for >= 4 consecutive weeks". The contract: "at least 4 consecutive weekly
  MG-ADL values all at least the protocol's delta below baseline; sustained_response_start_date
  is the first of them". The label's extra condition (first reduction no later than 1 week after
  the cycle's last infusion) needs dosing data and is **not** checked here.
- Minimal Symptom Expression (1.6 [C]): MG-ADL total 0 or 1; persistence "per protocol" (e.g.
  NCT06958939: "ADL <= 1 ... for 4 weeks"), ``mse_persistence_days``.
- Worsening (1.7 [U], no single standard): MG-ADL up >= ``worsening_delta`` (default 2) from
  baseline, confirmed on a repeat entry. The contract: "two consecutive values at least the
  worsening delta above baseline; the date is the first of the two".

Definitions and choices where the sources leave room (all documented in the functions):

- Input points are sorted by date with a *stable* sort: several values on one date keep their
  given order, every one stays in the series, and "the last value of a day / week" is the last
  one given for it. Results therefore do not depend on input order except for the order of
  same-date values.
- ``change_from_baseline`` = value - baseline (negative is better for every MG score);
  ``percent_change`` = change / baseline * 100, ``None`` when the baseline is 0 or missing.
- Events are evaluated on the points dated **after** day 0 (day 1 onwards; day 0 belongs to the
  baseline), in series order, never on weekly aggregates - except the sustained response, which
  uses weekly values: week ``k`` is days ``7k-6 .. 7k`` after day 0 (week 1 = days 1-7) and a
  week's value is its last value. A week without any value breaks "consecutive".
- Threshold comparisons allow 1e-9 of floating-point slack (a mean baseline of 7.333... and a
  value of 5.333... are 2 apart).
- Improvement, sustained response and worsening need a baseline; without one they are ``None``
  (``[]`` for worsening). MSE is an absolute threshold (MG-ADL <= 1) and needs only day 0. With no
  day 0 there is no baseline and no event at all.
- Which events apply to which instrument is decided by ``settings_for``: improvement for MG-ADL,
  QMG and MGC; sustained response, MSE and worsening for MG-ADL only (instruments.md 1.5-1.7 and
  the contract define them on MG-ADL). QoL scores, steps and the corticosteroid dose get baseline
  and change only.
"""

from __future__ import annotations

import datetime as dt
import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
from operator import attrgetter
from typing import Any, Final, Literal, Protocol, get_args

Source = Literal["diary", "clinic", "wearable", "medication"]
BaselineKind = Literal["last_on_or_before_day0", "mean_of_screening"]

SOURCES: Final[frozenset[str]] = frozenset(get_args(Source))
BASELINE_KINDS: Final[frozenset[str]] = frozenset(get_args(BaselineKind))

WEEK_DAYS: Final = 7
ROLLING_MEAN_DAYS: Final = 7
"""Default window of the diary MG-ADL rolling mean (``TrendPoint.rolling_mean_7d``)."""

_EPS: Final = 1e-9

# Protocol defaults (app.studies.protocol.EfficacyThresholds / BaselineRule), repeated here so
# this module stays free of pydantic; tests check that they agree.
DEFAULT_IMPROVEMENT_DELTAS: Final[dict[str, int]] = {"mg_adl": 2, "qmg": 3, "mgc": 3}
DEFAULT_SUSTAINED_RESPONSE_WEEKS: Final = 4
DEFAULT_MSE_MAX_MG_ADL: Final = 1
DEFAULT_MSE_PERSISTENCE_DAYS: Final = 0
DEFAULT_WORSENING_DELTA: Final = 2
DEFAULT_WORSENING_CONFIRMATIONS: Final = 2
DEFAULT_BASELINE_KIND: Final[BaselineKind] = "last_on_or_before_day0"
DEFAULT_LOOKBACK_DAYS: Final = 28


# --- inputs ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Point:
    """One value of a series: its (participant-local) date, value and where it came from."""

    date: dt.date
    value: float
    source: Source

    def __post_init__(self) -> None:
        if isinstance(self.date, dt.datetime) or not isinstance(self.date, dt.date):
            raise TypeError("Point.date must be a datetime.date (not a datetime)")
        if isinstance(self.value, bool) or not isinstance(self.value, int | float):
            raise TypeError("Point.value must be a number")
        if not math.isfinite(self.value):
            raise ValueError("Point.value must be finite")
        if self.source not in SOURCES:
            raise ValueError(f"unknown source {self.source!r}; one of {sorted(SOURCES)}")


@dataclass(frozen=True, slots=True)
class TrendSettings:
    """What the events of one instrument's trend need; ``None`` switches an event off.

    ``improvement_delta``: fall from baseline that counts as clinically meaningful (first
    improvement; also the sustained-response delta). ``sustained_response_weeks``: consecutive
    weekly values needed. ``mse_max``: MSE threshold (MG-ADL only). ``mse_persistence_days``:
    how long MSE must hold for ``sustained_mse_date``. ``worsening_delta`` /
    ``worsening_confirmations``: rise from baseline and the number of consecutive values showing
    it. ``baseline_kind`` /
    ``lookback_days``: the protocol's baseline rule.
    """

    improvement_delta: float | None = None
    sustained_response_weeks: int | None = None
    mse_max: float | None = None
    mse_persistence_days: int = DEFAULT_MSE_PERSISTENCE_DAYS
    worsening_delta: float | None = None
    worsening_confirmations: int = DEFAULT_WORSENING_CONFIRMATIONS
    baseline_kind: BaselineKind = DEFAULT_BASELINE_KIND
    lookback_days: int = DEFAULT_LOOKBACK_DAYS

    def __post_init__(self) -> None:
        if self.baseline_kind not in BASELINE_KINDS:
            raise ValueError(f"unknown baseline kind {self.baseline_kind!r}")
        if self.lookback_days < 0:
            raise ValueError("lookback_days must not be negative")
        if self.mse_persistence_days < 0:
            raise ValueError("mse_persistence_days must not be negative")
        if self.worsening_confirmations < 1:
            raise ValueError("worsening_confirmations must be at least 1")
        if self.sustained_response_weeks is not None and self.sustained_response_weeks < 1:
            raise ValueError("sustained_response_weeks must be at least 1")
        for name in ("improvement_delta", "worsening_delta"):
            delta = getattr(self, name)
            if delta is not None and not (math.isfinite(delta) and delta > 0):
                raise ValueError(f"{name} must be a positive number")


class EfficacyLike(Protocol):
    """The attributes of ``app.studies.protocol.EfficacyThresholds`` used here."""

    @property
    def mg_adl_improvement_delta(self) -> int: ...
    @property
    def qmg_improvement_delta(self) -> int: ...
    @property
    def mgc_improvement_delta(self) -> int: ...
    @property
    def sustained_response_weeks(self) -> int: ...
    @property
    def mse_max_mg_adl(self) -> int: ...
    @property
    def mse_persistence_days(self) -> int: ...
    @property
    def worsening_delta(self) -> int: ...
    @property
    def worsening_confirmations(self) -> int: ...


class BaselineRuleLike(Protocol):
    """The attributes of ``app.studies.protocol.BaselineRule`` used here."""

    @property
    def kind(self) -> BaselineKind: ...
    @property
    def lookback_days(self) -> int: ...


def settings_for(
    instrument: str,
    efficacy: EfficacyLike | None = None,
    baseline: BaselineRuleLike | None = None,
) -> TrendSettings:
    """Trend settings of ``instrument`` from a protocol's efficacy thresholds and baseline rule.

    ``None`` for either takes the protocol defaults. Improvement: MG-ADL, QMG, MGC (their own
    deltas). Sustained response, MSE and worsening: MG-ADL only - instruments.md 1.5-1.7 and the
    contract define them on MG-ADL, and the protocol's single ``worsening_delta`` is in MG-ADL
    points (2 QMG points would be below the QMG MCID). Any other instrument: baseline and change
    only.
    """
    if efficacy is None:
        deltas: dict[str, float] = dict(DEFAULT_IMPROVEMENT_DELTAS)
        weeks = DEFAULT_SUSTAINED_RESPONSE_WEEKS
        mse_max: float = DEFAULT_MSE_MAX_MG_ADL
        persistence = DEFAULT_MSE_PERSISTENCE_DAYS
        worsening: float = DEFAULT_WORSENING_DELTA
        confirmations = DEFAULT_WORSENING_CONFIRMATIONS
    else:
        deltas = {
            "mg_adl": efficacy.mg_adl_improvement_delta,
            "qmg": efficacy.qmg_improvement_delta,
            "mgc": efficacy.mgc_improvement_delta,
        }
        weeks = efficacy.sustained_response_weeks
        mse_max = efficacy.mse_max_mg_adl
        persistence = efficacy.mse_persistence_days
        worsening = efficacy.worsening_delta
        confirmations = efficacy.worsening_confirmations
    kind: BaselineKind = DEFAULT_BASELINE_KIND if baseline is None else baseline.kind
    lookback = DEFAULT_LOOKBACK_DAYS if baseline is None else baseline.lookback_days
    is_mg_adl = instrument == "mg_adl"
    return TrendSettings(
        improvement_delta=deltas.get(instrument),
        sustained_response_weeks=weeks if is_mg_adl else None,
        mse_max=mse_max if is_mg_adl else None,
        mse_persistence_days=persistence,
        worsening_delta=worsening if is_mg_adl else None,
        worsening_confirmations=confirmations,
        baseline_kind=kind,
        lookback_days=lookback,
    )


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrendPoint:
    """A series point with its change from baseline.

    ``rolling_mean_7d``: for diary MG-ADL points only, the mean of the diary values dated in the
    ``rolling_mean_days`` (default 7) days ending on this point's date, that date included.
    """

    date: dt.date
    value: float
    change_from_baseline: float | None
    percent_change: float | None
    source: Source
    days_from_day0: int | None
    rolling_mean_7d: float | None = None


@dataclass(frozen=True, slots=True)
class Trend:
    """A participant's trend for one instrument (the contract's TREND, see ``to_contract_dict``)."""

    instrument: str
    day0: dt.date | None
    baseline_value: float | None
    baseline_date: dt.date | None
    points: tuple[TrendPoint, ...]
    first_improvement_date: dt.date | None
    sustained_response_start_date: dt.date | None
    first_mse_date: dt.date | None
    sustained_mse_date: dt.date | None
    worsening_dates: tuple[dt.date, ...]

    def _day(self, when: dt.date | None) -> int | None:
        return None if when is None or self.day0 is None else (when - self.day0).days

    @property
    def first_improvement_day(self) -> int | None:
        return self._day(self.first_improvement_date)

    @property
    def sustained_response_start_day(self) -> int | None:
        return self._day(self.sustained_response_start_date)

    @property
    def first_mse_day(self) -> int | None:
        return self._day(self.first_mse_date)

    @property
    def sustained_mse_day(self) -> int | None:
        return self._day(self.sustained_mse_date)

    @property
    def worsening_days(self) -> tuple[int, ...]:
        day0 = self.day0
        return () if day0 is None else tuple((d - day0).days for d in self.worsening_dates)


@dataclass(frozen=True, slots=True)
class VisitValue:
    """The value nearest a visit's target date within its window (``None`` when none is)."""

    visit_id: str
    target_date: dt.date
    date: dt.date | None
    value: float | None
    source: Source | None
    change_from_baseline: float | None
    percent_change: float | None


@dataclass(frozen=True, slots=True)
class StepsWeek:
    """Mean daily steps of week ``week`` after day 0 (days ``start_date .. end_date``)."""

    week: int
    start_date: dt.date
    end_date: dt.date
    mean: float
    days: int
    change_from_baseline: float | None
    percent_change: float | None


@dataclass(frozen=True, slots=True)
class StepsTrend:
    """Baseline mean daily steps (the lookback days before day 0) and the weekly means after it."""

    day0: dt.date | None
    baseline_mean: float | None
    baseline_days: int
    weeks: tuple[StepsWeek, ...]


# --- building blocks -------------------------------------------------------------------------


_BY_DATE = attrgetter("date")


def sort_points(points: Iterable[Point]) -> list[Point]:
    """Points by date; a stable sort, so same-date points keep their given order."""
    return sorted(points, key=_BY_DATE)


@lru_cache(maxsize=65536)
def shared_point(date: dt.date, value: float, source: Source) -> Point:
    """``Point(date, float(value), source)``, one shared object per distinct point.

    Points are immutable, and series read from the database repeat the same few thousand
    (date, score) pairs: a study's 365,000 diary values need only that many constructions.
    """
    return Point(date=date, value=float(value), source=source)


def change_from(value: float, base: float | None) -> tuple[float | None, float | None]:
    """``(value - base, percent change)``; percent is ``None`` when ``base`` is 0 or missing."""
    if base is None:
        return None, None
    change = value - base
    return change, (None if base == 0 else change / base * 100)


def baseline(
    points: Iterable[Point], day0: dt.date | None, settings: TrendSettings
) -> tuple[float, dt.date] | tuple[None, None]:
    """The protocol's baseline: ``(value, date)``, or ``(None, None)`` when there is none.

    Only values dated in ``[day0 - lookback_days, day0]`` count (the screening window; day 0
    included). ``last_on_or_before_day0`` (default): the last of them (the last given one of
    the latest date). ``mean_of_screening``: their mean, dated with the latest of them. No day 0
    (not yet dosed) or no value in the window: no baseline.
    """
    if day0 is None:
        return None, None
    start = day0 - dt.timedelta(days=settings.lookback_days)
    window = [p for p in sort_points(points) if start <= p.date <= day0]
    if not window:
        return None, None
    last = window[-1]
    if settings.baseline_kind == "mean_of_screening":
        return math.fsum(p.value for p in window) / len(window), last.date
    return last.value, last.date


def week_of(when: dt.date, day0: dt.date) -> int:
    """Week number after day 0: days 1-7 are week 1, days 8-14 week 2; day 0 and before: <= 0."""
    return -((-(when - day0).days) // WEEK_DAYS)


def weekly_values(points: Iterable[Point], day0: dt.date) -> dict[int, Point]:
    """Week number (>= 1) -> that week's value: the last point of the week (see ``week_of``)."""
    weeks: dict[int, Point] = {}
    for p in sort_points(points):
        week = week_of(p.date, day0)
        if week >= 1:
            weeks[week] = p
    return weeks


def _improved(value: float, base: float, delta: float) -> bool:
    return value - base <= -delta + _EPS


def _worse(value: float, base: float, delta: float) -> bool:
    return value - base >= delta - _EPS


def first_improvement(after: Sequence[Point], base: float, delta: float) -> dt.date | None:
    """Date of the first value at least ``delta`` below ``base`` (``after`` is in series order)."""
    return next((p.date for p in after if _improved(p.value, base, delta)), None)


def sustained_response_start(
    points: Iterable[Point], day0: dt.date, base: float, delta: float, weeks: int
) -> dt.date | None:
    """Date of the first of ``weeks`` consecutive weekly values all ``delta`` below ``base``.

    Weekly values as in ``weekly_values``; a week with no value ends a run. The date is that of
    the first week's value (its last point).
    """
    by_week = weekly_values(points, day0)
    run: list[Point] = []
    previous: int | None = None
    for week in sorted(by_week):
        if previous is None or week != previous + 1:
            run = []
        previous = week
        p = by_week[week]
        if not _improved(p.value, base, delta):
            run = []
            continue
        run.append(p)
        if len(run) >= weeks:
            return run[0].date
    return None


def first_mse(after: Sequence[Point], mse_max: float) -> dt.date | None:
    """Date of the first value at or below ``mse_max`` (instruments.md 1.6: MG-ADL <= 1)."""
    return next((p.date for p in after if p.value <= mse_max + _EPS), None)


def sustained_mse(after: Sequence[Point], mse_max: float, persistence_days: int) -> dt.date | None:
    """Start date of the first MSE that held for ``persistence_days``.

    A run is a maximal sequence of consecutive values (series order) all at or below ``mse_max``;
    MSE held when the run's last value is dated at least ``persistence_days`` after its first, i.e.
    every value from ``d`` to the first value on or after ``d + persistence_days`` is in MSE
    (gaps between entries are not penalised). The date is the run's first. With persistence 0 this
    is ``first_mse``. A run still open at the end of the series but shorter than the persistence is
    not (yet) sustained.
    """
    start: Point | None = None
    for p in after:
        if p.value > mse_max + _EPS:
            start = None
            continue
        if start is None:
            start = p
        if (p.date - start.date).days >= persistence_days:
            return start.date
    return None


def worsening_runs(
    after: Sequence[Point], base: float, delta: float, confirmations: int
) -> list[dt.date]:
    """First dates of each run of ``confirmations`` consecutive values ``delta`` above ``base``.

    Consecutive means in series order (same-date values in their given order). A run counts once,
    however long it lasts; a new run needs a value below the threshold in between. A rise not yet
    confirmed by the next value is not counted.
    """
    found: list[dt.date] = []
    run: list[Point] = []
    for p in after:
        if not _worse(p.value, base, delta):
            run = []
            continue
        run.append(p)
        if len(run) == confirmations:
            found.append(run[0].date)
    return found


def rolling_means(points: Sequence[Point], days: int) -> list[float | None]:
    """For each point (sorted), the mean of the diary values of the ``days`` days ending on its
    date (all same-date diary values included); ``None`` for non-diary points."""
    diary = [p for p in points if p.source == "diary"]
    dates = [p.date for p in diary]
    values = [p.value for p in diary]
    # Whole-number scores (MG-ADL totals): prefix sums of ints are exact, so each mean is the
    # same correctly rounded quotient fsum gives, in O(1) per point instead of O(window).
    whole = all(isinstance(v, int) or v.is_integer() for v in values) and (
        math.fsum(abs(v) for v in values) < 2**53
    )
    prefix = list(accumulate((int(v) for v in values), initial=0)) if whole else []
    window = dt.timedelta(days=days - 1)
    means: list[float | None] = []
    for p in points:
        if p.source != "diary":
            means.append(None)
            continue
        lo = bisect_left(dates, p.date - window)
        hi = bisect_right(dates, p.date)
        if whole:
            means.append((prefix[hi] - prefix[lo]) / (hi - lo))
        else:
            means.append(math.fsum(values[lo:hi]) / (hi - lo))
    return means


# --- trend -----------------------------------------------------------------------------------


def compute_trend(
    instrument: str,
    points: Iterable[Point],
    day0: dt.date | None,
    settings: TrendSettings | None = None,
    *,
    rolling_mean_days: int | None = ROLLING_MEAN_DAYS,
) -> Trend:
    """The trend of ``instrument``: every point with its change from baseline, and the events.

    ``settings`` defaults to ``settings_for(instrument)`` (protocol defaults). Event rules are in
    the module docstring and the helpers above: events look at the points dated after day 0 in
    series order; the sustained response at weekly values. ``rolling_mean_days`` (``None``: off)
    gives the diary MG-ADL rolling mean, computed for ``instrument == "mg_adl"`` only.
    """
    if settings is None:
        settings = settings_for(instrument)
    if rolling_mean_days is not None and rolling_mean_days < 1:
        raise ValueError("rolling_mean_days must be at least 1")
    series = sort_points(points)
    base, base_date = baseline(series, day0, settings)

    if instrument == "mg_adl" and rolling_mean_days is not None:
        rolling = rolling_means(series, rolling_mean_days)
    else:
        rolling = [None] * len(series)
    trend_points = []
    for p, mean in zip(series, rolling, strict=True):
        change, percent = change_from(p.value, base)
        # Positional: a cohort's outcomes build hundreds of thousands of these, and keyword
        # arguments cost a third more. Order: date, value, change_from_baseline,
        # percent_change, source, days_from_day0, rolling_mean_7d.
        trend_points.append(
            TrendPoint(
                p.date,
                p.value,
                change,
                percent,
                p.source,
                None if day0 is None else (p.date - day0).days,
                mean,
            )
        )

    improvement = sustained = mse = mse_held = None
    worsening: list[dt.date] = []
    if day0 is not None:
        after = [p for p in series if p.date > day0]
        if settings.mse_max is not None:
            mse = first_mse(after, settings.mse_max)
            mse_held = sustained_mse(after, settings.mse_max, settings.mse_persistence_days)
        if base is not None:
            if settings.improvement_delta is not None:
                improvement = first_improvement(after, base, settings.improvement_delta)
                if settings.sustained_response_weeks is not None:
                    sustained = sustained_response_start(
                        after,
                        day0,
                        base,
                        settings.improvement_delta,
                        settings.sustained_response_weeks,
                    )
            if settings.worsening_delta is not None:
                worsening = worsening_runs(
                    after, base, settings.worsening_delta, settings.worsening_confirmations
                )

    return Trend(
        instrument=instrument,
        day0=day0,
        baseline_value=base,
        baseline_date=base_date,
        points=tuple(trend_points),
        first_improvement_date=improvement,
        sustained_response_start_date=sustained,
        first_mse_date=mse,
        sustained_mse_date=mse_held,
        worsening_dates=tuple(worsening),
    )


def _num(value: float | None) -> float | int | None:
    """JSON number: rounded to 4 decimals, integral values as integers (``8`` not ``8.0``)."""
    if value is None:
        return None
    rounded = round(float(value), 4)
    return int(rounded) if rounded.is_integer() else rounded


def _iso(when: dt.date | None) -> str | None:
    return None if when is None else when.isoformat()


def to_contract_dict(trend: Trend) -> dict[str, Any]:
    """The contract's TREND JSON object.

    The contract's keys (``instrument``, ``baseline_value``, ``baseline_date``, ``points`` with
    ``date``, ``value``, ``change_from_baseline``, ``source``, ``first_improvement_date``,
    ``sustained_response_start_date``, ``first_mse_date``, ``worsening_dates``) plus
    ``day0_date``, per point ``percent_change``, ``days_from_day0``, ``rolling_mean_7d``, and
    ``sustained_mse_date`` and the events' day numbers (``*_day``, ``worsening_days``).
    """
    # A long series repeats the same few values (scores, changes, 7-day means): each is
    # rounded once (equal numbers round equally, so the cache cannot change an answer).
    rounded: dict[float | None, float | int | None] = {None: None}

    def num(value: float | None) -> float | int | None:
        try:
            return rounded[value]
        except KeyError:
            result = rounded[value] = _num(value)
            return result

    return {
        "instrument": trend.instrument,
        "day0_date": _iso(trend.day0),
        "baseline_value": _num(trend.baseline_value),
        "baseline_date": _iso(trend.baseline_date),
        "points": [
            {
                "date": p.date.isoformat(),
                "value": num(p.value),
                "change_from_baseline": num(p.change_from_baseline),
                "source": p.source,
                "percent_change": num(p.percent_change),
                "days_from_day0": p.days_from_day0,
                "rolling_mean_7d": num(p.rolling_mean_7d),
            }
            for p in trend.points
        ],
        "first_improvement_date": _iso(trend.first_improvement_date),
        "first_improvement_day": trend.first_improvement_day,
        "sustained_response_start_date": _iso(trend.sustained_response_start_date),
        "sustained_response_start_day": trend.sustained_response_start_day,
        "first_mse_date": _iso(trend.first_mse_date),
        "first_mse_day": trend.first_mse_day,
        "sustained_mse_date": _iso(trend.sustained_mse_date),
        "sustained_mse_day": trend.sustained_mse_day,
        "worsening_dates": [d.isoformat() for d in trend.worsening_dates],
        "worsening_days": list(trend.worsening_days),
    }


# --- visits ----------------------------------------------------------------------------------

VisitTarget = tuple[str, dt.date, dt.date, dt.date]
"""``(visit_id, target_date, window_start, window_end)``; the window is inclusive."""


def visit_values(
    points: Iterable[Point],
    visit_targets: Iterable[VisitTarget],
    *,
    baseline_value: float | None = None,
) -> list[VisitValue]:
    """For each visit, the value nearest its target date within its window, with its change.

    Nearest by calendar days; a tie between a date before and one after the target goes to the
    earlier date; several values on the chosen date: the last given one (a day's value, as for
    weeks). No value in the window: ``date`` / ``value`` / changes are ``None``. Visits are
    returned in the order given.
    """
    series = sort_points(points)
    dates = [p.date for p in series]
    out: list[VisitValue] = []
    for visit_id, target, start, end in visit_targets:
        if end < start:
            raise ValueError(f"visit {visit_id}: window_end is before window_start")
        # Binary search on the sorted dates (a cohort has hundreds of values per participant):
        # the window's first value on or after the target, and the one before it.
        lo, hi = bisect_left(dates, start), bisect_right(dates, end)
        if lo == hi:
            out.append(VisitValue(visit_id, target, None, None, None, None, None))
            continue
        after = bisect_left(dates, target, lo, hi)
        if after == hi or (after > lo and target - dates[after - 1] <= dates[after] - target):
            chosen = dates[after - 1]  # a tie goes to the earlier date
        else:
            chosen = dates[after]
        best = series[bisect_right(dates, chosen, lo, hi) - 1]  # that date's last value
        change, percent = change_from(best.value, baseline_value)
        out.append(
            VisitValue(visit_id, target, best.date, best.value, best.source, change, percent)
        )
    return out


# --- steps -----------------------------------------------------------------------------------


def weekly_steps(
    daily: Iterable[tuple[dt.date, int | float]],
    day0: dt.date | None,
    *,
    lookback_days: int = DEFAULT_LOOKBACK_DAYS,
) -> StepsTrend:
    """Baseline mean daily steps and weekly means after day 0 (trials.md 5: steps are an outcome).

    Baseline: the mean over the days with a count in ``[day0 - lookback_days, day0 - 1]`` ("the
    days before day 0"). Week ``k`` (>= 1) is days ``7k-6 .. 7k`` after day 0, its mean over the
    days that have a count (``days`` says how many, so partial weeks are visible); weeks without
    any count are left out. Day 0 itself (the dosing day) is in neither. Several counts for one
    date: the last given one counts (the service resolves sources before this). No day 0: no
    baseline and no weeks.
    """
    if lookback_days < 0:
        raise ValueError("lookback_days must not be negative")
    per_day: dict[dt.date, float] = {}
    for when, count in daily:
        if isinstance(when, dt.datetime) or not isinstance(when, dt.date):
            raise TypeError("step dates must be datetime.date values")
        if isinstance(count, bool) or not math.isfinite(count) or count < 0:
            raise ValueError(f"invalid step count {count!r} on {when}")
        per_day[when] = float(count)
    if day0 is None:
        return StepsTrend(day0=None, baseline_mean=None, baseline_days=0, weeks=())

    start = day0 - dt.timedelta(days=lookback_days)
    before = [v for d, v in per_day.items() if start <= d < day0]
    base = math.fsum(before) / len(before) if before else None

    by_week: dict[int, list[float]] = {}
    for when, count in per_day.items():
        week = week_of(when, day0)
        if week >= 1:
            by_week.setdefault(week, []).append(count)
    weeks = []
    for week in sorted(by_week):
        counts = by_week[week]
        mean = math.fsum(counts) / len(counts)
        change, percent = change_from(mean, base)
        weeks.append(
            StepsWeek(
                week=week,
                start_date=day0 + dt.timedelta(days=WEEK_DAYS * (week - 1) + 1),
                end_date=day0 + dt.timedelta(days=WEEK_DAYS * week),
                mean=mean,
                days=len(counts),
                change_from_baseline=change,
                percent_change=percent,
            )
        )
    return StepsTrend(day0=day0, baseline_mean=base, baseline_days=len(before), weeks=tuple(weeks))
