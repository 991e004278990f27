"""Per-participant outcome summaries, kept between requests and recomputed when inputs change.

A study's outcomes need, per participant and instrument, only a handful of figures: the
baseline, the value and change at each scheduled visit, the first improvement and MSE days,
whether worsening was confirmed, the last value after day 0 and (MG-ADL) the response and
relapse dates. ``summarise`` derives them from the participant's series with the same pure
rules as the trend endpoint (``app.scores.trends``, ``app.scores.proportions``).

Reading every participant's whole series on every request is what made the outcomes slow
(docs/performance.md, issue 4), so the summaries are kept in a bounded in-process cache
(``SummaryCache``), each under the ``Inputs`` it was computed from:

- ``day0``: the participant's day 0;
- ``diary_versions`` and ``clinic_versions``: how many MG-ADL diary versions
  (``mg_adl_response`` rows) and clinic-assessment versions the participant has. Both tables
  are append-only (a correction is a new version, nothing is deleted or updated), so the set of
  committed rows only grows and its count changes exactly when a row appears - including a row
  whose transaction committed after a later one (a maximum sequence number would miss that);
- ``rules``: the protocol settings the summary depends on (efficacy, baseline, visits) and
  ``SUMMARY_VERSION``.

A request reads the current ``Inputs`` of every participant with one index-only query and
recomputes only the participants whose inputs differ. Nothing here depends on the request's
date: the censoring day and the corticosteroid figures, which do, are computed per request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from app.scores import proportions, trends
from app.studies.protocol import ProtocolDefinition

#: Changes whenever ``summarise`` would give a different answer for the same inputs.
SUMMARY_VERSION = "2026.12.1"


@dataclass(frozen=True, slots=True)
class InstrumentOutcome:
    """One participant's figures for one instrument (see the module docstring)."""

    baseline_value: float | None
    visit_values: tuple[trends.VisitValue, ...]
    first_improvement_day: int | None
    first_mse_day: int | None
    worsened: bool
    #: The date of the last value after day 0 (``None``: no value after day 0).
    last_value_date: dt.date | None
    #: MG-ADL only: response and relapse dates per the protocol's relapse rule.
    relapse: proportions.RelapseStatus | None


@dataclass(frozen=True, slots=True)
class Inputs:
    """What a participant's summary was computed from; equal inputs give an equal summary."""

    day0: dt.date
    diary_versions: int
    clinic_versions: int
    rules: str


def visit_targets(protocol: ProtocolDefinition, day0: dt.date) -> list[trends.VisitTarget]:
    """The protocol's scheduled visits as (id, target, window start, window end) from day 0."""
    window = protocol.visits.window
    return [
        (
            str(offset),
            day0 + dt.timedelta(days=offset),
            day0 + dt.timedelta(days=offset - window.before_days),
            day0 + dt.timedelta(days=offset + window.after_days),
        )
        for offset in protocol.visits.visit_days()
    ]


def relapse_settings(protocol: ProtocolDefinition) -> proportions.RelapseSettings:
    rule = protocol.efficacy.relapse
    return proportions.RelapseSettings(
        improvement_delta=protocol.efficacy.mg_adl_improvement_delta,
        kind=rule.kind,
        rise_delta=rule.rise_delta,
        confirmations=rule.confirmations,
    )


def rules_key(protocol: ProtocolDefinition) -> str:
    """A digest of the protocol settings the summaries depend on, and ``SUMMARY_VERSION``."""
    digest = hashlib.sha256(SUMMARY_VERSION.encode())
    for part in (protocol.efficacy, protocol.baseline, protocol.visits):
        digest.update(part.model_dump_json().encode())
    return digest.hexdigest()


def summarise(
    instrument: str,
    points: Sequence[trends.Point],
    day0: dt.date,
    protocol: ProtocolDefinition,
    *,
    targets: Sequence[trends.VisitTarget] | None = None,
) -> InstrumentOutcome:
    """The figures of one instrument's series (pure). The rules are those of the trend
    endpoint, called one by one: ``trends.baseline``, ``first_improvement``, ``first_mse``,
    ``worsening_runs`` and ``visit_values``, and ``proportions.relapse_status`` for MG-ADL, on
    the series in ``trends.sort_points`` order - what ``trends.compute_trend`` composes,
    without the per-point changes and the sustained events the outcomes do not report
    (tests/scores/test_outcome_summaries.py checks both give the same figures).

    ``targets``: ``visit_targets(protocol, day0)``, when the caller has them already."""
    settings = trends.settings_for(instrument, protocol.efficacy, protocol.baseline)
    series = trends.sort_points(points)
    base, _ = trends.baseline(series, day0, settings)
    after = [p for p in series if p.date > day0]
    improvement = mse = None
    worsened = False
    if settings.mse_max is not None:
        mse = trends.first_mse(after, settings.mse_max)
    if base is not None:
        if settings.improvement_delta is not None:
            improvement = trends.first_improvement(after, base, settings.improvement_delta)
        if settings.worsening_delta is not None:
            worsened = bool(
                trends.worsening_runs(
                    after, base, settings.worsening_delta, settings.worsening_confirmations
                )
            )
    if targets is None:
        targets = visit_targets(protocol, day0)
    visits = trends.visit_values(series, targets, baseline_value=base)
    relapse = (
        proportions.relapse_status(series, day0, base, relapse_settings(protocol))
        if instrument == "mg_adl"
        else None
    )
    return InstrumentOutcome(
        baseline_value=base,
        visit_values=tuple(visits),
        first_improvement_day=None if improvement is None else (improvement - day0).days,
        first_mse_day=None if mse is None else (mse - day0).days,
        worsened=worsened,
        last_value_date=after[-1].date if after else None,
        relapse=relapse,
    )


Summary = dict[str, InstrumentOutcome]
"""A participant's outcomes by instrument."""


class SummaryCache:
    """Participants' summaries under their inputs, the least recently used dropped beyond
    ``max_participants`` (0 keeps nothing). Safe to share between threads."""

    def __init__(self, max_participants: int) -> None:
        if max_participants < 0:
            raise ValueError("max_participants must not be negative")
        self.max_participants = max_participants
        self._entries: OrderedDict[uuid.UUID, tuple[Inputs, Summary]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, participant_id: uuid.UUID, inputs: Inputs) -> Summary | None:
        """The summary computed from exactly ``inputs``, else ``None``."""
        with self._lock:
            found = self._entries.get(participant_id)
            if found is None or found[0] != inputs:
                self.misses += 1
                return None
            self._entries.move_to_end(participant_id)
            self.hits += 1
            return found[1]

    def put(self, participant_id: uuid.UUID, inputs: Inputs, summary: Summary) -> None:
        if self.max_participants == 0:
            return
        with self._lock:
            self._entries[participant_id] = (inputs, summary)
            self._entries.move_to_end(participant_id)
            while len(self._entries) > self.max_participants:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
