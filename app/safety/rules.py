"""Safety rules: CRS-like, ICANS-like and MG worsening/crisis findings from diary and clinic data.

Pure module (no database, no web framework). ``evaluate`` reads the new observations of one
participant in the context of what is already stored (recent observations, the previous MG-ADL,
the baseline, the study-drug doses) and returns findings and prompts. It never grades CRS or
ICANS: a diary flags for a clinician to grade (instruments.md 6.1 "Diary implication").

Each rule has an id and a version (``RULES``); a finding carries both, so a signal can always be
traced to the exact rule that raised it. Thresholds are protocol settings
(``app.studies.protocol.SafetySettings``); each rule's mode (active / monitor / off) too.

Sources (instruments.md):
- 6.1 ASTCT 2019 [C]: fever is >= 38.0 C; hypotension and/or hypoxia with fever make grade >= 2;
  "Diary implication": fever >= 38.0 C = at least possible grade 1; fever with low blood pressure
  or falling SpO2 = potential grade >= 2, escalate. SBP < 90 as the hypotension cut-off is [U]
  (a setting).
- 6.2 ASTCT ICANS [C]: the domains (ICE content: orientation, naming, writing; depressed
  consciousness; seizure; motor findings) behind the ICANS-like symptoms; a seizure is grade >= 3.
- 6.3 [C]: CRS onset median 2 days after blinatumomab start, 2 days (1-12) after CAR-T; the
  protocol's risk windows (``SafetySettings.risk_windows``) raise priority inside them.
- 6.4 [C]: CTCAE "Sinus tachycardia" is HR > 100 bpm; a diary records it as a finding only.
- 1.8 (product design guidance, not published thresholds): breathing >= 2 urgent; a new
  swallowing or chewing 3 urgent; a bulbar item rising by >= 1 or reaching >= 2 with breathing
  >= 1 high; a new rise of a bulbar item to >= 2 for review.
- 1.7 [U]: worsening = total MG-ADL up >= the protocol's delta (default 2) from baseline,
  confirmed on a repeat entry.
"""

from __future__ import annotations

import uuid
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal

from app.diary.vocabulary import SYMPTOMS
from app.studies.protocol import SAFETY_RULE_IDS, RiskWindow, SafetySettings

RULESET_VERSION = "2026.12.1"

Category = Literal["crs", "icans", "mg_worsening", "mg_crisis"]
Priority = Literal["routine", "high", "urgent"]
PRIORITY_RANK: dict[str, int] = {"routine": 1, "high": 2, "urgent": 3}

#: Rule id -> version. Bump a rule's version whenever its logic or default thresholds change.
RULES: dict[str, str] = {
    "crs.fever": "1",
    "crs.fever_hypotension": "1",
    "crs.fever_hypoxia": "1",
    "crs.constitutional": "1",
    "crs.temperature_prompt": "1",
    "icans.neuro_symptom": "1",
    "icans.seizure": "1",
    "mg.breathing": "1",
    "mg.feeding_tube": "1",
    "mg.bulbar_with_breathing": "1",
    "mg.bulbar_rise": "1",
    "mg.total_worsening": "1",
}
assert tuple(RULES) == SAFETY_RULE_IDS, "app/studies/protocol.py lists the same rules"

#: Constitutional features of CRS (instruments.md 6.4 CRS grade 1 "fever with or without
#: constitutional symptoms"; 7.2 label features; issue 6): evidence, never a grade.
CONSTITUTIONAL_SYMPTOMS = frozenset(
    {"chills", "fatigue", "headache", "myalgia", "nausea", "vomiting", "diarrhoea"}
)
#: ICANS-like symptoms that count only when new (not reported in the lookback): a tremor can be
#: a long-standing finding (issue 6 "new tremor").
NEW_ONLY_SYMPTOMS = frozenset({"tremor"})
SEIZURE = "seizure"
#: A temperature read this long before a fever-like symptom answers it already.
PROMPT_READING_BEFORE = timedelta(hours=1)
BULBAR_ITEMS = ("talking", "chewing", "swallowing")
TUBE_ITEMS = ("chewing", "swallowing")


@dataclass(frozen=True, slots=True)
class Observation:
    """One stored or new diary (or clinic) record, reduced to what the rules read."""

    entry_id: uuid.UUID
    kind: Literal["vitals", "symptoms", "mg_adl"]
    at: datetime
    local_date: date
    source: Literal["diary", "clinic"] = "diary"
    temperature_c: float | None = None
    heart_rate_bpm: int | None = None
    spo2_percent: float | None = None
    systolic_mmhg: int | None = None
    symptoms: tuple[tuple[str, int], ...] = ()
    mg_adl: Mapping[str, int] | None = None

    @property
    def mg_adl_total(self) -> int | None:
        return None if self.mg_adl is None else sum(self.mg_adl.values())

    def codes(self) -> set[str]:
        return {code for code, _ in self.symptoms}


@dataclass(frozen=True, slots=True)
class Dose:
    """A study-drug administration: its participant-local start date and dose."""

    start_date: date
    dose: float | None = None
    product: str = ""


@dataclass(frozen=True)
class Context:
    settings: SafetySettings
    #: MG-ADL points above baseline that count as worsening (protocol efficacy setting).
    worsening_delta: int = 2
    doses: tuple[Dose, ...] = ()
    #: Stored observations near the new ones (the evidence window, and the symptom lookback when
    #: a new-only symptom arrives). Must not contain the new observations.
    recent: tuple[Observation, ...] = ()
    #: The latest stored MG-ADL before the earliest new one.
    previous_mg_adl: Observation | None = None
    baseline_mg_adl: float | None = None


@dataclass(frozen=True)
class Finding:
    rule_id: str
    rule_version: str
    category: Category
    #: None for evidence-only findings: they join an open signal and never open one.
    priority: Priority | None
    evidence_at: datetime
    evidence: tuple[dict[str, Any], ...]
    in_risk_window: bool = False
    days_since_dose: int | None = None
    #: The entries that make this finding new, when not all of its evidence does: for a fever
    #: with hypotension or hypoxia, the signs (another fever near the same signs is no news).
    key: frozenset[str] | None = None

    @property
    def entry_ids(self) -> frozenset[str]:
        return frozenset(str(e["entry_id"]) for e in self.evidence)

    @property
    def identity(self) -> frozenset[str]:
        """The entries that identify the finding (its key, or all its evidence)."""
        return self.key if self.key is not None else self.entry_ids


@dataclass(frozen=True)
class Prompt:
    rule_id: str
    rule_version: str
    kind: Literal["temperature"]
    entry_id: uuid.UUID
    evidence_at: datetime


@dataclass
class Evaluation:
    findings: list[Finding] = field(default_factory=list)
    prompts: list[Prompt] = field(default_factory=list)


# --- dose-aware priority ----------------------------------------------------------------------


def _window_doses(window: RiskWindow, doses: Sequence[Dose]) -> list[Dose]:
    ordered = sorted(doses, key=lambda d: d.start_date)
    if window.after == "first_administration":
        return ordered[:1]
    if window.after == "dose_step_up":
        out = []
        last: dict[str, float] = {}
        for dose in ordered:
            previous = last.get(dose.product)
            if dose.dose is not None and previous is not None and dose.dose > previous:
                out.append(dose)
            if dose.dose is not None:
                last[dose.product] = dose.dose
        return out
    return ordered


def risk_window(
    local_date: date, doses: Sequence[Dose], windows: Sequence[RiskWindow]
) -> tuple[bool, int | None]:
    """``(inside a post-dose risk window, days since the latest dose on or before the date)``.

    A window ``after: each_administration, start_day: 0, end_day: 7`` covers the dose's own
    local day (day 0) through day 7, both inclusive (instruments.md 6.3: CRS starts a median of
    2 days after the start of an infusion; issue 6: days 0-7 of each blinatumomab cycle, 0-14
    after a CAR-T infusion). Days are participant-local calendar days.
    """
    before = [d for d in doses if d.start_date <= local_date]
    since = min((local_date - d.start_date).days for d in before) if before else None
    for window in windows:
        for dose in _window_doses(window, doses):
            day = (local_date - dose.start_date).days
            if window.start_day <= day <= window.end_day:
                return True, since
    return False, since


# --- evidence ---------------------------------------------------------------------------------


def _value(obs: Observation, name: str, value: Any) -> dict[str, Any]:
    return {"entry_id": str(obs.entry_id), "kind": obs.kind, "field": name, "value": value}


def _symptom(obs: Observation, code: str, severity: int) -> dict[str, Any]:
    return {"entry_id": str(obs.entry_id), "kind": obs.kind, "code": code, "severity": severity}


def _fever(obs: Observation, s: SafetySettings) -> bool:
    return obs.temperature_c is not None and obs.temperature_c >= s.fever_threshold_c


def _fever_evidence(obs: Observation) -> dict[str, Any]:
    return _value(obs, "temperature_c", obs.temperature_c)


def _hypotension_evidence(obs: Observation, s: SafetySettings) -> list[dict[str, Any]]:
    out = []
    if obs.systolic_mmhg is not None and obs.systolic_mmhg < s.hypotension_systolic_mmhg:
        out.append(_value(obs, "systolic_mmhg", obs.systolic_mmhg))
    out += [_symptom(obs, c, sev) for c, sev in obs.symptoms if SYMPTOMS[c].hypotension_evidence]
    return out


def _hypoxia_evidence(obs: Observation, s: SafetySettings) -> list[dict[str, Any]]:
    out = []
    if obs.spo2_percent is not None and obs.spo2_percent < s.spo2_min_percent:
        out.append(_value(obs, "spo2_percent", obs.spo2_percent))
    out += [_symptom(obs, c, sev) for c, sev in obs.symptoms if SYMPTOMS[c].hypoxia_evidence]
    # MG-ADL breathing 2 is "shortness of breath at rest" (1.2 [C]).
    if obs.mg_adl is not None and obs.mg_adl.get("breathing", 0) >= 2:
        out.append(_value(obs, "breathing", obs.mg_adl["breathing"]))
    return out


def _constitutional_evidence(obs: Observation, s: SafetySettings) -> list[dict[str, Any]]:
    out = [_symptom(obs, c, sev) for c, sev in obs.symptoms if c in CONSTITUTIONAL_SYMPTOMS]
    if obs.heart_rate_bpm is not None and obs.heart_rate_bpm > s.tachycardia_bpm:
        out.append(_value(obs, "heart_rate_bpm", obs.heart_rate_bpm))
    return out


class _Pool:
    """The stored and new observations, indexed by time: each question the rules ask of it
    ("which are within the window of this one") is a binary search, not a scan, so a 500-entry
    sync costs O(n log n) instead of O(n^2). Answers keep the pool's own order (stored ones
    first, then the new ones in time order), the order evidence has always been listed in.
    """

    def __init__(self, items: list[Observation], s: SafetySettings) -> None:
        self.items = items
        self._s = s
        order = sorted(range(len(items)), key=lambda i: items[i].at)
        self._order = order
        self._ats = [items[i].at for i in order]
        fevers = [i for i in order if _fever(items[i], s)]
        self._fever_order = fevers
        self._fever_ats = [items[i].at for i in fevers]
        self._temperature_ats = [items[i].at for i in order if items[i].temperature_c is not None]
        self._constitutional: dict[int, list[dict[str, Any]]] = {}

    def _between(self, start: datetime, end: datetime) -> list[int]:
        """Pool positions with ``start <= at <= end``, in pool order."""
        lo = bisect_left(self._ats, start)
        hi = bisect_right(self._ats, end)
        return sorted(self._order[lo:hi])

    def near(self, obs: Observation, hours: int) -> list[int]:
        span = timedelta(hours=hours)
        return self._between(obs.at - span, obs.at + span)

    def fevers_near(self, obs: Observation, hours: int) -> list[Observation]:
        span = timedelta(hours=hours)
        lo = bisect_left(self._fever_ats, obs.at - span)
        hi = bisect_right(self._fever_ats, obs.at + span)
        return [self.items[i] for i in sorted(self._fever_order[lo:hi])]

    def any_temperature(self, start: datetime, end: datetime) -> bool:
        lo = bisect_left(self._temperature_ats, start)
        return lo < len(self._temperature_ats) and self._temperature_ats[lo] <= end

    def before(self, start: datetime, end: datetime) -> list[Observation]:
        """Observations with ``start <= at < end``."""
        lo = bisect_left(self._ats, start)
        hi = bisect_left(self._ats, end)
        return [self.items[i] for i in self._order[lo:hi]]

    def constitutional_near(self, obs: Observation, hours: int) -> list[dict[str, Any]]:
        """The constitutional evidence of the window around ``obs``: asked only by a finding
        that shows it, each observation's own evidence built once."""
        cache = self._constitutional
        out: list[dict[str, Any]] = []
        for i in self.near(obs, hours):
            found = cache.get(i)
            if found is None:
                found = cache[i] = _constitutional_evidence(self.items[i], self._s)
            out += found
        return out


# --- the rules --------------------------------------------------------------------------------


class _Builder:
    def __init__(self, new: Sequence[Observation], ctx: Context) -> None:
        self.new = sorted(new, key=lambda o: o.at)
        self.ctx = ctx
        self.s = ctx.settings
        new_ids = {o.entry_id for o in self.new}
        self.pool = _Pool(
            [o for o in ctx.recent if o.entry_id not in new_ids] + self.new, ctx.settings
        )
        self.out = Evaluation()
        self._seen: set[tuple[str, frozenset[str]]] = set()

    def finding(
        self,
        rule_id: str,
        category: Category,
        priority: Priority | None,
        obs: Observation,
        evidence: list[dict[str, Any]],
        *,
        dose_aware: bool = False,
        key: list[dict[str, Any]] | None = None,
    ) -> None:
        if self.s.mode_of(rule_id) == "off":
            return
        inside, since = risk_window(obs.local_date, self.ctx.doses, self.s.risk_windows)
        if dose_aware and inside and priority == "routine":
            priority = "high"
        unique: list[dict[str, Any]] = []
        for item in evidence:
            if item not in unique:
                unique.append(item)
        result = Finding(
            rule_id=rule_id,
            rule_version=RULES[rule_id],
            category=category,
            priority=priority,
            evidence_at=obs.at,
            evidence=tuple(unique),
            in_risk_window=inside,
            days_since_dose=since,
            key=None if key is None else frozenset(str(e["entry_id"]) for e in key),
        )
        seen = (rule_id, result.identity)
        if seen in self._seen:  # the same combination, reached from another of its entries
            return
        self._seen.add(seen)
        self.out.findings.append(result)

    def crs(self, obs: Observation) -> None:
        s = self.s
        pool = self.pool
        hours = s.evidence_window_hours
        fevers = pool.fevers_near(obs, hours)
        is_fever = _fever(obs, s)
        if is_fever:
            # crs.fever: >= 38.0 C is at least possible ASTCT grade 1 (6.1 [C]); inside a
            # post-dose risk window it is high priority, outside routine (contract).
            self.finding(
                "crs.fever",
                "crs",
                "routine",
                obs,
                [_fever_evidence(obs), *pool.constitutional_near(obs, hours)],
                dose_aware=True,
            )
        for rule_id, gather in (
            ("crs.fever_hypotension", _hypotension_evidence),
            ("crs.fever_hypoxia", _hypoxia_evidence),
        ):
            # Fever with hypotension or hypoxia: potential grade >= 2, urgent (6.1 [C]).
            # ``obs`` must take part: the fever or the other evidence is new.
            # The fever and the signs shown are those of one window: the new fever and the
            # signs near it, or the new sign and the fever nearest to it with its signs.
            if not fevers or not (is_fever or gather(obs, s)):
                continue
            fever = obs if is_fever else min(fevers, key=lambda o: abs(o.at - obs.at))
            around = pool.near(fever, hours)
            signs = [e for i in around for e in gather(pool.items[i], s)]
            if signs:
                self.finding(
                    rule_id,
                    "crs",
                    "urgent",
                    obs,
                    [_fever_evidence(fever), *signs, *pool.constitutional_near(obs, hours)],
                    key=signs,
                )
        own = _constitutional_evidence(obs, s)
        if own and not is_fever:
            # Constitutional features raise an open CRS signal's evidence, not its grade.
            self.finding("crs.constitutional", "crs", None, obs, own)
        fever_like = [(c, sev) for c, sev in obs.symptoms if SYMPTOMS[c].fever_like]
        if fever_like and s.mode_of("crs.temperature_prompt") != "off":
            start = obs.at - PROMPT_READING_BEFORE
            end = obs.at + timedelta(hours=hours)
            if not pool.any_temperature(start, end):
                self.out.prompts.append(
                    Prompt(
                        "crs.temperature_prompt",
                        RULES["crs.temperature_prompt"],
                        "temperature",
                        obs.entry_id,
                        obs.at,
                    )
                )

    def icans(self, obs: Observation) -> None:
        s = self.s
        earlier: set[str] = set()
        if any(c in NEW_ONLY_SYMPTOMS for c, _ in obs.symptoms):
            lookback = timedelta(days=s.new_symptom_lookback_days)
            earlier = {
                code
                for o in self.pool.before(obs.at - lookback, obs.at)
                if o.entry_id != obs.entry_id
                for code in o.codes()
            }
        neuro = [
            _symptom(obs, c, sev)
            for c, sev in obs.symptoms
            if SYMPTOMS[c].icans_like
            and c != SEIZURE
            and not (c in NEW_ONLY_SYMPTOMS and c in earlier)
        ]
        if neuro:
            self.finding("icans.neuro_symptom", "icans", "routine", obs, neuro, dose_aware=True)
        seizures = [_symptom(obs, c, sev) for c, sev in obs.symptoms if c == SEIZURE]
        if seizures:
            # Any seizure is ICANS grade >= 3 (6.2 [C]): urgent.
            self.finding("icans.seizure", "icans", "urgent", obs, seizures)

    def mg(self, obs: Observation, previous: Observation | None) -> None:
        items = obs.mg_adl
        assert items is not None
        before = previous.mg_adl if previous is not None else None

        def item(name: str) -> dict[str, Any]:
            return _value(obs, name, items[name])

        breathing = items["breathing"]
        if breathing >= 2:
            self.finding("mg.breathing", "mg_crisis", "urgent", obs, [item("breathing")])
        # A bulbar item rising by >= 1 (against the previous MG-ADL) or at >= 2, with breathing
        # >= 1 in the same entry: high (1.8).
        rising = [
            n
            for n in BULBAR_ITEMS
            if items[n] >= 2 or (before is not None and items[n] > before[n])
        ]
        if breathing >= 1 and rising:
            self.finding(
                "mg.bulbar_with_breathing",
                "mg_worsening",
                "high",
                obs,
                [item("breathing"), *(item(n) for n in rising)],
            )
        if before is not None:
            # "Newly" needs a previous MG-ADL: without one a tube or a 2 may be the
            # participant's baseline state (1.8), which the enrolling site knows.
            tubes = [item(n) for n in TUBE_ITEMS if items[n] == 3 and before[n] < 3]
            if tubes:
                self.finding("mg.feeding_tube", "mg_worsening", "urgent", obs, tubes)
            newly_two = [n for n in BULBAR_ITEMS if items[n] >= 2 and before[n] < 2]
            if newly_two and breathing == 0:
                self.finding(
                    "mg.bulbar_rise", "mg_worsening", "routine", obs, [item(n) for n in newly_two]
                )
        base = self.ctx.baseline_mg_adl
        total = obs.mg_adl_total
        assert total is not None
        if base is not None and total >= base + self.ctx.worsening_delta:
            confirmed = (
                previous is not None
                and previous.mg_adl_total is not None
                and previous.mg_adl_total >= base + self.ctx.worsening_delta
            )
            evidence = [_value(obs, "total", total)]
            if confirmed and previous is not None:
                evidence.insert(0, _value(previous, "total", previous.mg_adl_total))
            self.finding(
                "mg.total_worsening",
                "mg_worsening",
                "high" if confirmed else "routine",
                obs,
                evidence,
            )

    def run(self) -> Evaluation:
        previous = self.ctx.previous_mg_adl
        for obs in self.new:
            if obs.kind in ("vitals", "symptoms", "mg_adl"):
                self.crs(obs)
            if obs.symptoms:
                self.icans(obs)
            if obs.mg_adl is not None:
                self.mg(obs, previous)
                previous = obs
        return self.out


def evaluate(new: Sequence[Observation], ctx: Context) -> Evaluation:
    """Every finding and prompt the new observations give, in time order.

    Findings of rules switched ``off`` by the protocol are not returned; ``monitor`` ones are
    (the episode step records them without alerting). The same combination of entries reached
    from two of its new entries gives one finding.
    """
    return _Builder(new, ctx).run()


def needs_stored(obs: Observation, settings: SafetySettings) -> bool:
    """Whether evaluating ``obs`` looks at stored observations near it (``Context.recent``):
    a fever (the constitutional evidence and the signs of hypotension or hypoxia in its window),
    a sign of hypotension or hypoxia (the fever nearest to it), a fever-like symptom (a
    temperature reading answering the prompt), a symptom that counts only when new (the
    lookback). Anything else - a raised heart rate, a constitutional or neurological symptom, an
    MG-ADL without breathing at rest - is judged on its own entry and the MG-ADL history, so the
    engine skips the read (tests hold the findings equal with and without it)."""
    s = settings
    if _fever(obs, s) or _hypotension_evidence(obs, s) or _hypoxia_evidence(obs, s):
        return True
    return any(needs_readings_for(code) or code in NEW_ONLY_SYMPTOMS for code, _ in obs.symptoms)


def needs_signs(obs: Observation, settings: SafetySettings) -> bool:
    """Whether evaluating ``obs`` reads the stored signs - low SpO2 or pressure, a raised heart
    rate, the rules' symptoms, MG-ADL breathing at rest - whether or not a stored fever is near:
    a fever (the signs and the constitutional evidence of its window), a symptom that counts only
    when new (its lookback). Otherwise a stored sign takes part in a finding only with a fever
    near it, so the engine reads the signs only when a stored fever is in the window (tests hold
    the findings equal with and without them)."""
    return _fever(obs, settings) or any(code in NEW_ONLY_SYMPTOMS for code, _ in obs.symptoms)


def needs_readings_for(code: str) -> bool:
    """A symptom that prompts for a temperature unless a reading is near it."""
    term = SYMPTOMS.get(code)
    return term is not None and term.fever_like


def may_fire(
    obs: Observation, settings: SafetySettings, worsening_delta: int, *, has_baseline: bool = True
) -> bool:
    """Whether ``obs`` can take part in any finding or prompt: normal readings and symptom-free
    entries skip the safety step (and its reads) altogether. ``has_baseline``: whether the
    participant can have an MG-ADL baseline at all (a day 0 is set); without one the total
    cannot be worse than it."""
    s = settings
    if obs.temperature_c is not None and obs.temperature_c >= s.fever_threshold_c:
        return True
    if obs.spo2_percent is not None and obs.spo2_percent < s.spo2_min_percent:
        return True
    if obs.systolic_mmhg is not None and obs.systolic_mmhg < s.hypotension_systolic_mmhg:
        return True
    if obs.heart_rate_bpm is not None and obs.heart_rate_bpm > s.tachycardia_bpm:
        return True
    for code, _ in obs.symptoms:
        term = SYMPTOMS.get(code)
        if term is not None and (
            term.fever_like
            or term.icans_like
            or term.hypotension_evidence
            or term.hypoxia_evidence
            or code in CONSTITUTIONAL_SYMPTOMS
        ):
            return True
    if obs.mg_adl is not None:
        items = obs.mg_adl
        if items.get("breathing", 0) >= 1 or any(items.get(n, 0) >= 2 for n in BULBAR_ITEMS):
            return True
        if has_baseline and sum(items.values()) >= worsening_delta:  # any baseline >= 0
            return True
    return False
