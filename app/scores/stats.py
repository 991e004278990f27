"""Descriptive statistics and Kaplan-Meier estimates for study outcomes (pure, stdlib only).

- Mean, sample standard deviation (n - 1) and a two-sided 95 % confidence interval of the mean
  with Student's t quantile for n - 1 degrees of freedom (exact table values to df 30, then
  interpolation in 1/df towards the normal 1.959964).
- Kaplan-Meier product-limit estimate S(t) = prod over event times t_i <= t of (1 - d_i / n_i),
  with censored observations leaving the risk set after the events at the same time (the usual
  convention); the median is the first time at which S(t) <= 0.5.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

#: Two-sided 95 % Student t quantiles t(0.975, df), df = 1 ... 30 (standard tables).
_T975 = (
    12.706205,
    4.302653,
    3.182446,
    2.776445,
    2.570582,
    2.446912,
    2.364624,
    2.306004,
    2.262157,
    2.228139,
    2.200985,
    2.178813,
    2.160369,
    2.144787,
    2.131450,
    2.119905,
    2.109816,
    2.100922,
    2.093024,
    2.085963,
    2.079614,
    2.073873,
    2.068658,
    2.063899,
    2.059539,
    2.055529,
    2.051831,
    2.048407,
    2.045230,
    2.042272,
)
#: Beyond df 30: (df, quantile) anchors, interpolated linearly in 1/df.
_T975_TAIL = ((30, 2.042272), (40, 2.021075), (60, 2.000298), (120, 1.979930), (math.inf, 1.959964))


def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError("degrees of freedom must be at least 1")
    if df <= 30:
        return _T975[df - 1]
    for (lo_df, lo_q), (hi_df, hi_q) in zip(_T975_TAIL, _T975_TAIL[1:], strict=False):
        if lo_df <= df <= hi_df:
            lo_inv, hi_inv = 1 / lo_df, (0.0 if hi_df == math.inf else 1 / hi_df)
            weight = (lo_inv - 1 / df) / (lo_inv - hi_inv)
            return lo_q + weight * (hi_q - lo_q)
    return _T975_TAIL[-1][1]  # pragma: no cover - df is finite


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float | None
    sd: float | None
    median: float | None
    ci95_low: float | None
    ci95_high: float | None


def summarize(values: Iterable[float]) -> Summary:
    data = [float(v) for v in values]
    n = len(data)
    if n == 0:
        return Summary(0, None, None, None, None, None)
    mean = statistics.fmean(data)
    median = statistics.median(data)
    if n == 1:
        return Summary(1, mean, None, median, None, None)
    sd = statistics.stdev(data)
    half = t_quantile_975(n - 1) * sd / math.sqrt(n)
    return Summary(n, mean, sd, median, mean - half, mean + half)


@dataclass(frozen=True)
class KmStep:
    time: float
    at_risk: int
    events: int
    censored: int
    survival: float


@dataclass(frozen=True)
class KaplanMeier:
    steps: tuple[KmStep, ...]
    median: float | None
    n: int
    events: int

    def survival_at(self, time: float) -> float:
        value = 1.0
        for step in self.steps:
            if step.time > time:
                break
            value = step.survival
        return value


def kaplan_meier(observations: Sequence[tuple[float, bool]]) -> KaplanMeier:
    """``observations``: (time, event happened) per subject; event False means censored."""
    for time, _ in observations:
        if not math.isfinite(time) or time < 0:
            raise ValueError("times must be finite and >= 0")
    times = sorted({t for t, _ in observations})
    at_risk = len(observations)
    survival = 1.0
    steps: list[KmStep] = []
    median: float | None = None
    for time in times:
        events = sum(1 for t, e in observations if t == time and e)
        censored = sum(1 for t, e in observations if t == time and not e)
        if events:
            survival *= 1 - events / at_risk
        steps.append(
            KmStep(time=time, at_risk=at_risk, events=events, censored=censored, survival=survival)
        )
        if median is None and survival <= 0.5:
            median = time
        at_risk -= events + censored
    return KaplanMeier(
        steps=tuple(steps),
        median=median,
        n=len(observations),
        events=sum(1 for _, e in observations if e),
    )
