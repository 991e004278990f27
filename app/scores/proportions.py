"""Study-outcome proportions: without relapse, and with corticosteroid dose reduction.

Pure module (stdlib only): no database, no web framework, no pydantic. The outcomes service
(``app.scores.outcomes``) passes each participant's MG-ADL trend points, visit values, daily
corticosteroid regimen and the protocol's rules (``EfficacyThresholds.relapse`` /
``corticosteroid_reduction``); this module counts.

Sources: trials.md section 3 (HN2301) registers "proportions without worsening, without relapse,
... and with corticosteroid dose reduction" without defining relapse or the reduction;
instruments.md defines neither ([U] for this service), so both are protocol settings
(``app.studies.protocol.RelapseRule`` and ``CorticosteroidReductionRule``, where the defaults and
their sources are documented).

Every proportion is reported like "without worsening": ``n`` (denominator), ``count``
(numerator) and ``proportion`` (``count / n`` to 4 decimals, ``None`` when ``n`` is 0), overall
and per scheduled clinic visit (the time points of the change table).

Relapse (``relapse_status``): judged on MG-ADL values dated after day 0, in series order, and only
after a *response* - the first value at least ``improvement_delta`` below baseline (the responder
definition, instruments.md 1.5 [C]). After it, a relapse is ``confirmations`` consecutive values
that either are no longer ``improvement_delta`` below baseline (``loss_of_improvement``) or are at
least ``rise_delta`` above the lowest value since the response (``rise_from_nadir``). Its date is
the first of those values (as for worsening). Participants who never responded cannot relapse
and are not in the denominator.

- At a visit: the participants with an MG-ADL value in the visit's window (the change table's
  ``n``) who had responded on or before that value's date; ``count``: those without a relapse
  dated on or before it.
- Overall: every responder over the whole follow-up; ``count``: those who never relapsed.

Corticosteroid dose reduction (``reduction_at_visits``): from the daily prednisone-equivalent dose
of the medication list (``app.medications.service``; the dose on a date is the sum of the lines
covering it). Baseline dose: the protocol's baseline rule applied to the days *before* day 0 (the
last of them, the day before day 0; or their mean over the screening lookback), because day 0's
dose may include corticosteroid premedication against CRS given with the first infusion
(trials.md section 5) - counting it would fake a reduction. Only participants on a
corticosteroid at baseline (dose above 0) are in the denominator; participants with a
corticosteroid line whose dose cannot be derived (as needed, unit not mg) are left out and
counted separately.

- At a visit: the dose on the visit's target date (day 0 + visit day), for participants observed
  until then (not withdrawn before it, the date not in the future, within the protocol's
  follow-up); reduced when it is at least ``min_reduction_percent`` below the baseline dose.
- Overall: the dose on the last observed day (today, the withdrawal day or the end of follow-up,
  whichever comes first), for participants observed beyond day 0.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol, get_args

RelapseKind = Literal["loss_of_improvement", "rise_from_nadir"]
RELAPSE_KINDS: Final[frozenset[str]] = frozenset(get_args(RelapseKind))
SteroidBaselineKind = Literal["last_on_or_before_day0", "mean_of_screening"]

_EPS: Final = 1e-9

DoseLine = tuple[dt.date, dt.date | None, float]
"""``(start_date, stop_date or None, daily prednisone-equivalent mg)``; both dates inclusive."""


class DatedValue(Protocol):
    """A series value (``trends.Point`` or ``trends.TrendPoint``)."""

    @property
    def date(self) -> dt.date: ...
    @property
    def value(self) -> float: ...


# --- proportions -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Proportion:
    """``count`` of ``n``; ``proportion`` is ``None`` when ``n`` is 0."""

    n: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.count <= self.n:
            raise ValueError("count must be between 0 and n")

    @property
    def proportion(self) -> float | None:
        return round(self.count / self.n, 4) if self.n else None

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "count": self.count, "proportion": self.proportion}


def week_label(visit_day: int) -> int | float:
    """Week of a visit day as in the change table: whole weeks as integers, else 2 decimals."""
    return visit_day // 7 if visit_day % 7 == 0 else round(visit_day / 7, 2)


def _time_points(visit_days: Sequence[int], found: Sequence[Proportion]) -> list[dict[str, Any]]:
    return [
        {"visit_day": day, "week": week_label(day), **p.as_dict()}
        for day, p in zip(visit_days, found, strict=True)
    ]


# --- relapse ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RelapseSettings:
    """``improvement_delta``: the MG-ADL responder delta; ``kind`` / ``rise_delta`` /
    ``confirmations``: the protocol's ``RelapseRule``."""

    improvement_delta: float
    kind: RelapseKind = "loss_of_improvement"
    rise_delta: float = 2
    confirmations: int = 2

    def __post_init__(self) -> None:
        if self.kind not in RELAPSE_KINDS:
            raise ValueError(f"unknown relapse kind {self.kind!r}")
        for name in ("improvement_delta", "rise_delta"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number")
        if self.confirmations < 1:
            raise ValueError("confirmations must be at least 1")


@dataclass(frozen=True, slots=True)
class RelapseStatus:
    """When the participant first responded and when (after that) a relapse began."""

    response_date: dt.date | None
    relapse_date: dt.date | None


def relapse_status(
    points: Iterable[DatedValue],
    day0: dt.date | None,
    baseline: float | None,
    settings: RelapseSettings,
) -> RelapseStatus:
    """Response and relapse dates of one participant's MG-ADL series (see the module docstring).

    ``points`` in series order (dated, sorted; same-date values in their given order). Without
    day 0 or baseline there is no response and so no relapse.
    """
    if day0 is None or baseline is None:
        return RelapseStatus(None, None)
    after = [p for p in points if p.date > day0]
    start = next(
        (
            i
            for i, p in enumerate(after)
            if p.value - baseline <= -settings.improvement_delta + _EPS
        ),
        None,
    )
    if start is None:
        return RelapseStatus(None, None)
    response = after[start]
    nadir = response.value
    run: list[DatedValue] = []
    for p in after[start + 1 :]:
        if settings.kind == "loss_of_improvement":
            relapsing = p.value - baseline > -settings.improvement_delta + _EPS
        else:
            relapsing = p.value - nadir >= settings.rise_delta - _EPS
        if not relapsing:
            run = []
            nadir = min(nadir, p.value)
            continue
        run.append(p)
        if len(run) >= settings.confirmations:
            return RelapseStatus(response.date, run[0].date)
    return RelapseStatus(response.date, None)


def without_relapse_at(observations: Iterable[tuple[RelapseStatus, dt.date | None]]) -> Proportion:
    """Without relapse at one time point: ``(status, date of the visit's value or None)`` per
    participant; responders by that date are the denominator."""
    n = count = 0
    for status, when in observations:
        if when is None or status.response_date is None or status.response_date > when:
            continue
        n += 1
        if status.relapse_date is None or status.relapse_date > when:
            count += 1
    return Proportion(n, count)


def without_relapse_overall(statuses: Iterable[RelapseStatus]) -> Proportion:
    """Responders over the whole follow-up, and how many never relapsed."""
    responders = [s for s in statuses if s.response_date is not None]
    return Proportion(len(responders), sum(1 for s in responders if s.relapse_date is None))


def without_relapse_table(
    per_participant: Sequence[tuple[RelapseStatus, Sequence[dt.date | None]]],
    visit_days: Sequence[int],
    settings: RelapseSettings,
) -> dict[str, Any]:
    """The ``without_relapse`` object: overall and per visit.

    ``per_participant``: each participant's status and the dates of their MG-ADL visit values
    (``None`` where a visit has no value), in ``visit_days`` order.
    """
    for _, dates in per_participant:
        if len(dates) != len(visit_days):
            raise ValueError("one visit-value date (or None) per visit day is needed")
    at_visits = [
        without_relapse_at((status, dates[i]) for status, dates in per_participant)
        for i in range(len(visit_days))
    ]
    return {
        "instrument": "mg_adl",
        "rule": {
            "kind": settings.kind,
            "improvement_delta": settings.improvement_delta,
            "rise_delta": settings.rise_delta if settings.kind == "rise_from_nadir" else None,
            "confirmations": settings.confirmations,
        },
        **without_relapse_overall(s for s, _ in per_participant).as_dict(),
        "time_points": _time_points(visit_days, at_visits),
        "note": (
            "Denominator: participants who responded (MG-ADL at least the responder delta below "
            "baseline) by the time point; relapse per the protocol's rule "
            "(efficacy.relapse, default: the response lost on consecutive values)."
        ),
    }


# --- corticosteroid dose reduction -----------------------------------------------------------


def dose_on(lines: Iterable[DoseLine], when: dt.date) -> float:
    """Daily prednisone-equivalent mg on ``when``: the sum of the lines covering it."""
    total = math.fsum(
        mg for start, stop, mg in lines if start <= when and (stop is None or when <= stop)
    )
    return round(total, 4)


def baseline_dose(
    lines: Sequence[DoseLine],
    day0: dt.date,
    *,
    kind: SteroidBaselineKind = "last_on_or_before_day0",
    lookback_days: int = 28,
) -> float:
    """Baseline daily dose: the protocol's baseline rule on the days before day 0.

    ``last_on_or_before_day0``: the dose on the day before day 0. ``mean_of_screening``: the
    mean daily dose over days ``day0 - lookback_days .. day0 - 1`` (at least the day before).
    Day 0 itself is left out: its dose may include CRS premedication (module docstring).
    """
    if lookback_days < 0:
        raise ValueError("lookback_days must not be negative")
    if kind == "mean_of_screening":
        days = range(1, max(lookback_days, 1) + 1)
        return round(
            math.fsum(dose_on(lines, day0 - dt.timedelta(days=k)) for k in days) / len(days), 4
        )
    if kind != "last_on_or_before_day0":
        raise ValueError(f"unknown baseline kind {kind!r}")
    return dose_on(lines, day0 - dt.timedelta(days=1))


def reduction_percent(baseline_mg: float, dose_mg: float) -> float | None:
    """Fall from baseline in % of baseline (negative: a rise); ``None`` without a baseline dose."""
    if baseline_mg <= 0:
        return None
    return (baseline_mg - dose_mg) / baseline_mg * 100


def dose_reduced(baseline_mg: float, dose_mg: float, min_reduction_percent: float) -> bool:
    """At least ``min_reduction_percent`` below a positive baseline dose (1e-9 mg slack)."""
    if not (math.isfinite(min_reduction_percent) and 0 < min_reduction_percent <= 100):
        raise ValueError("min_reduction_percent must be in (0, 100]")
    if baseline_mg <= 0:
        return False
    return baseline_mg - dose_mg >= baseline_mg * min_reduction_percent / 100 - _EPS


@dataclass(frozen=True, slots=True)
class SteroidCourse:
    """One participant's corticosteroid data for the outcome.

    ``observed_until``: the last day the dose is known for the outcome (today, withdrawal or end
    of follow-up). ``not_derivable``: the participant has a corticosteroid line whose dose cannot
    be derived, so they are left out.
    """

    day0: dt.date
    lines: tuple[DoseLine, ...]
    baseline_mg: float
    observed_until: dt.date
    not_derivable: bool = False

    @property
    def eligible(self) -> bool:
        """On a corticosteroid at baseline, with a known dose."""
        return not self.not_derivable and self.baseline_mg > 0


def reduction_at_visits(
    courses: Sequence[SteroidCourse], visit_days: Sequence[int], min_reduction_percent: float
) -> list[Proportion]:
    """Per visit day: participants on a corticosteroid at baseline observed until the visit's
    target date, and how many take at least ``min_reduction_percent`` less on that date."""
    found = []
    for day in visit_days:
        n = count = 0
        for c in courses:
            target = c.day0 + dt.timedelta(days=day)
            if not c.eligible or target > c.observed_until:
                continue
            n += 1
            count += dose_reduced(c.baseline_mg, dose_on(c.lines, target), min_reduction_percent)
        found.append(Proportion(n, count))
    return found


def reduction_overall(courses: Sequence[SteroidCourse], min_reduction_percent: float) -> Proportion:
    """On the last observed day, for participants on a corticosteroid at baseline observed
    beyond day 0."""
    n = count = 0
    for c in courses:
        if not c.eligible or c.observed_until <= c.day0:
            continue
        n += 1
        count += dose_reduced(
            c.baseline_mg, dose_on(c.lines, c.observed_until), min_reduction_percent
        )
    return Proportion(n, count)


def reduction_table(
    courses: Sequence[SteroidCourse], visit_days: Sequence[int], min_reduction_percent: float
) -> dict[str, Any]:
    """The ``corticosteroid_reduction`` object: overall, per visit and who was left out."""
    return {
        "min_reduction_percent": min_reduction_percent,
        "on_corticosteroids_at_baseline": sum(1 for c in courses if c.eligible),
        "excluded_not_on_corticosteroids_at_baseline": sum(
            1 for c in courses if not c.not_derivable and c.baseline_mg <= 0
        ),
        "excluded_dose_not_derivable": sum(1 for c in courses if c.not_derivable),
        **reduction_overall(courses, min_reduction_percent).as_dict(),
        "time_points": _time_points(
            visit_days, reduction_at_visits(courses, visit_days, min_reduction_percent)
        ),
        "note": (
            "Daily prednisone-equivalent dose at the visit's target date (overall: the last "
            "observed day) at least min_reduction_percent below the baseline dose (the protocol's "
            "baseline rule on the days before day 0, so that premedication on day 0 does not "
            "count). Participants without corticosteroids at baseline are excluded from the "
            "denominator, as are those with a corticosteroid dose that cannot be derived."
        ),
    }
