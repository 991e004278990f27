"""Pure tests of the safety rules (app/safety/rules.py): no database.

Sources cited per test: instruments.md 1.7, 1.8, 6.1-6.4 (/work/shared/domain/instruments.md),
api-contract.md "Details clients rely on" (Signals), issue 6 (item 1, "Done when").
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from app.diary.vocabulary import SYMPTOMS
from app.safety.engine import RULE_SYMPTOMS
from app.safety.rules import (
    PRIORITY_RANK,
    PROMPT_READING_BEFORE,
    RULES,
    Context,
    Dose,
    Evaluation,
    Finding,
    Observation,
    evaluate,
    may_fire,
    needs_readings_for,
    needs_signs,
    needs_stored,
    risk_window,
)
from app.studies.protocol import SAFETY_RULE_IDS, RiskWindow, RuleMode, SafetySettings

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
D0 = T0.date()
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

MG_ITEMS = (
    "talking",
    "chewing",
    "swallowing",
    "breathing",
    "brushing_teeth_or_combing_hair",
    "arising_from_chair",
    "double_vision",
    "eyelid_droop",
)
#: The issue's ICANS-like list (issue 6 item 1): confusion, trouble finding words, new tremor,
#: handwriting change, unusual sleepiness (seizure is its own, urgent rule).
ICANS_NEURO = ("confusion", "word_finding_difficulty", "tremor", "handwriting_change", "somnolence")
CONSTITUTIONAL = ("chills", "fatigue", "headache", "myalgia", "nausea", "vomiting", "diarrhoea")
After = Literal["each_administration", "first_administration", "dose_step_up"]
EACH_0_7 = RiskWindow(after="each_administration", start_day=0, end_day=7)

# --- builders ---------------------------------------------------------------------------------


def vitals(
    at: datetime = T0,
    *,
    temp: float | None = None,
    hr: int | None = None,
    spo2: float | None = None,
    sbp: int | None = None,
    local_date: date | None = None,
) -> Observation:
    return Observation(
        entry_id=uuid.uuid4(),
        kind="vitals",
        at=at,
        local_date=local_date or at.date(),
        temperature_c=temp,
        heart_rate_bpm=hr,
        spo2_percent=spo2,
        systolic_mmhg=sbp,
    )


def symptoms(*codes: str, at: datetime = T0, severity: int = 2) -> Observation:
    return Observation(
        entry_id=uuid.uuid4(),
        kind="symptoms",
        at=at,
        local_date=at.date(),
        symptoms=tuple((code, severity) for code in codes),
    )


def mg(at: datetime = T0, /, **items: int) -> Observation:
    values = dict.fromkeys(MG_ITEMS, 0)
    values.update(items)
    return Observation(
        entry_id=uuid.uuid4(), kind="mg_adl", at=at, local_date=at.date(), mg_adl=values
    )


def ctx(
    *,
    doses: Sequence[Dose] = (),
    recent: Sequence[Observation] = (),
    previous: Observation | None = None,
    baseline: float | None = None,
    delta: int = 2,
    windows: Sequence[RiskWindow] = (),
    modes: Mapping[str, RuleMode] | None = None,
    **overrides: Any,
) -> Context:
    s = SafetySettings(risk_windows=list(windows), rule_modes=dict(modes or {}), **overrides)
    return Context(
        settings=s,
        worsening_delta=delta,
        doses=tuple(doses),
        recent=tuple(recent),
        previous_mg_adl=previous,
        baseline_mg_adl=baseline,
    )


def run(*new: Observation, context: Context | None = None) -> Evaluation:
    return evaluate(list(new), context or ctx())


def ids(result: Evaluation) -> list[str]:
    return [f.rule_id for f in result.findings]


def one(result: Evaluation, rule_id: str) -> Finding:
    found = [f for f in result.findings if f.rule_id == rule_id]
    assert len(found) == 1, f"expected one {rule_id}, got {ids(result)}"
    return found[0]


def fields(finding: Finding) -> dict[str, Any]:
    """Evidence values by field or symptom code."""
    return {
        str(e.get("field", e.get("code"))): e.get("value", e.get("severity"))
        for e in finding.evidence
    }


def fever_priority(day: int, doses: Sequence[Dose], *windows: RiskWindow) -> str | None:
    at = T0 + day * DAY
    return one(
        run(vitals(at, temp=38.6), context=ctx(doses=doses, windows=windows)), "crs.fever"
    ).priority


# --- rule registry ----------------------------------------------------------------------------


def test_rules_are_versioned_and_match_the_protocol_switches() -> None:
    """Issue 6 item 1 (pure, versioned rules) and protocol.py SAFETY_RULE_IDS: every switchable
    rule has a version, and a finding carries its rule's version."""
    assert tuple(RULES) == SAFETY_RULE_IDS
    assert all(RULES.values())
    finding = one(run(vitals(temp=38.5)), "crs.fever")
    assert finding.rule_version == RULES["crs.fever"]


# --- CRS: fever (instruments.md 6.1 [C]) --------------------------------------------------------


def test_fever_exactly_38_0_flags_possible_crs() -> None:
    """instruments.md 6.1 [C] "Fever >= 38.0 C"; issue 6 Done when: 38.0 C flags."""
    result = run(vitals(temp=38.0))
    finding = one(result, "crs.fever")
    assert finding.category == "crs"
    assert finding.priority == "routine"  # api-contract.md Signals: outside a risk window
    assert fields(finding) == {"temperature_c": 38.0}
    assert finding.evidence_at == T0
    assert ids(result) == ["crs.fever"]


def test_37_9_is_not_a_fever() -> None:
    """instruments.md 6.1 [C]; issue 6 Done when: 37.9 C does not flag."""
    result = run(vitals(temp=37.9))
    assert result.findings == []
    assert result.prompts == []


def test_astct_example_38_4_alone_is_a_fever_finding_only() -> None:
    """Issue 6 Done when "38.4 C alone -> 1": only the possible-grade-1 fever finding, no
    urgent (grade >= 2) combination; the diary never grades (6.1 Diary implication)."""
    assert ids(run(vitals(temp=38.4, hr=90, spo2=97, sbp=120))) == ["crs.fever"]


@pytest.mark.parametrize(("threshold", "flags", "quiet"), [(38.5, 38.5, 38.4), (37.5, 37.5, 37.4)])
def test_fever_threshold_is_a_protocol_setting(
    threshold: float, flags: float, quiet: float
) -> None:
    """protocol.py SafetySettings.fever_threshold_c (instruments.md 6.1 default 38.0)."""
    context = ctx(fever_threshold_c=threshold)
    assert ids(run(vitals(temp=flags), context=context)) == ["crs.fever"]
    assert ids(run(vitals(temp=quiet), context=context)) == []


@settings(max_examples=150, deadline=None, database=None)
@given(
    threshold=st.floats(37.0, 40.0, allow_nan=False),
    temp=st.floats(34.0, 43.0, allow_nan=False),
)
def test_any_temperature_at_or_above_the_threshold_flags(threshold: float, temp: float) -> None:
    """instruments.md 6.1 [C]: fever is ">= threshold"; the whole range, not just 38.0."""
    result = run(vitals(temp=temp), context=ctx(fever_threshold_c=threshold))
    assert ("crs.fever" in ids(result)) == (temp >= threshold)


# --- CRS: fever with hypoxia or hypotension (instruments.md 6.1 [C]) -----------------------------


def test_spo2_91_with_fever_is_urgent_hypoxia() -> None:
    """instruments.md 6.1 Diary implication: fever with SpO2 falling => potential grade >= 2,
    escalate; default SpO2 threshold 92 % (issue 6, protocol.py spo2_min_percent)."""
    result = run(vitals(temp=38.0, spo2=91))
    finding = one(result, "crs.fever_hypoxia")
    assert finding.priority == "urgent"
    assert finding.category == "crs"
    assert fields(finding) == {"temperature_c": 38.0, "spo2_percent": 91}
    assert one(result, "crs.fever").priority == "routine"


def test_spo2_92_with_fever_is_not_hypoxia() -> None:
    """Issue 6: SpO2 *below* the protocol threshold (default 92 %)."""
    assert ids(run(vitals(temp=38.0, spo2=92))) == ["crs.fever"]


def test_spo2_override() -> None:
    """protocol.py SafetySettings.spo2_min_percent is a protocol setting."""
    context = ctx(spo2_min_percent=95)
    assert "crs.fever_hypoxia" in ids(run(vitals(temp=38.2, spo2=94), context=context))
    assert "crs.fever_hypoxia" not in ids(run(vitals(temp=38.2, spo2=95), context=context))


def test_low_spo2_without_fever_is_not_crs() -> None:
    """instruments.md 6.1 [C]: every CRS grade needs fever >= 38.0 C."""
    assert run(vitals(temp=37.2, spo2=85)).findings == []
    assert run(vitals(spo2=85)).findings == []


def test_systolic_89_with_fever_is_urgent_hypotension() -> None:
    """instruments.md 6.1: fever with low blood pressure => potential grade >= 2; SBP < 90 is the
    operational cut-off [U] (protocol.py hypotension_systolic_mmhg)."""
    finding = one(run(vitals(temp=38.0, sbp=89)), "crs.fever_hypotension")
    assert finding.priority == "urgent"
    assert fields(finding) == {"temperature_c": 38.0, "systolic_mmhg": 89}


def test_systolic_90_with_fever_is_not_hypotension() -> None:
    """instruments.md 6.1 "SBP <90" [U]: 90 itself is not low."""
    assert ids(run(vitals(temp=38.0, sbp=90))) == ["crs.fever"]


def test_hypotension_override() -> None:
    """protocol.py SafetySettings.hypotension_systolic_mmhg (6.1 tags the cut-off [U])."""
    context = ctx(hypotension_systolic_mmhg=100)
    assert "crs.fever_hypotension" in ids(run(vitals(temp=38.2, sbp=99), context=context))
    assert "crs.fever_hypotension" not in ids(run(vitals(temp=38.2, sbp=100), context=context))


def test_fever_with_both_gives_both_urgent_findings() -> None:
    """instruments.md 6.1 rule 3 (the more severe of hypotension and hypoxia decides): the diary
    flags both for the clinician, each urgent."""
    result = run(vitals(temp=39.0, sbp=85, spo2=88))
    assert one(result, "crs.fever_hypotension").priority == "urgent"
    assert one(result, "crs.fever_hypoxia").priority == "urgent"


@settings(max_examples=100, deadline=None, database=None)
@given(
    spo2=st.integers(80, 100),
    sbp=st.integers(50, 160),
    spo2_min=st.integers(80, 99),
    sbp_min=st.integers(60, 120),
)
def test_hypoxia_and_hypotension_cut_offs_over_their_range(
    spo2: int, sbp: int, spo2_min: int, sbp_min: int
) -> None:
    """instruments.md 6.1 / protocol settings: with fever, urgent iff the reading is below the
    protocol's cut-off, at any cut-off."""
    context = ctx(spo2_min_percent=spo2_min, hypotension_systolic_mmhg=sbp_min)
    result = run(vitals(temp=38.5, spo2=spo2, sbp=sbp), context=context)
    assert ("crs.fever_hypoxia" in ids(result)) == (spo2 < spo2_min)
    assert ("crs.fever_hypotension" in ids(result)) == (sbp < sbp_min)


def test_fever_and_dizziness_symptom_is_urgent_hypotension() -> None:
    """Issue 6: hypotension evidence is systolic < 90 *or dizziness/fainting* (6.1)."""
    fever = vitals(T0, temp=38.3)
    dizzy = symptoms("dizziness_or_fainting", at=T0 + HOUR)
    finding = one(run(fever, dizzy), "crs.fever_hypotension")
    assert finding.priority == "urgent"
    assert finding.entry_ids == {str(fever.entry_id), str(dizzy.entry_id)}
    assert fields(finding) == {"temperature_c": 38.3, "dizziness_or_fainting": 2}


@pytest.mark.parametrize("code", ["shortness_of_breath", "breathing_difficulty"])
def test_fever_and_breathlessness_symptom_is_urgent_hypoxia(code: str) -> None:
    """Issue 6: hypoxia evidence includes shortness of breath (6.1 "SpO2 falling or oxygen
    needed"; vocabulary hypoxia_evidence)."""
    result = run(vitals(T0, temp=38.3), symptoms(code, at=T0 + HOUR))
    assert one(result, "crs.fever_hypoxia").priority == "urgent"


def test_fever_and_mg_adl_breathing_at_rest_is_hypoxia_evidence() -> None:
    """instruments.md 1.2 [C]: MG-ADL breathing 2 = "shortness of breath at rest", so with a fever
    it is hypoxia evidence (6.1); breathing 1 (on exertion) is not."""
    result = run(vitals(T0, temp=38.3), mg(T0 + HOUR, breathing=2))
    assert fields(one(result, "crs.fever_hypoxia"))["breathing"] == 2
    assert "crs.fever_hypoxia" not in ids(run(vitals(T0, temp=38.3), mg(T0 + HOUR, breathing=1)))


def test_non_hypotension_symptoms_do_not_combine_with_fever() -> None:
    """vocabulary: palpitations is not mapped to hypotension (a symptom is not a diagnosis)."""
    result = run(vitals(T0, temp=38.3), symptoms("palpitations", "cough", at=T0 + HOUR))
    assert ids(result) == ["crs.fever"]


@pytest.mark.parametrize("stored", ["fever", "sign"])
def test_combination_with_a_stored_observation(stored: str) -> None:
    """protocol.py evidence_window_hours: observations this close are read together, whichever
    of the two is new (6.1: a fever and a low SpO2 an hour apart)."""
    fever = vitals(T0, temp=38.4)
    sign = vitals(T0 + 2 * HOUR, spo2=90)
    new, old = (sign, fever) if stored == "fever" else (fever, sign)
    finding = one(run(new, context=ctx(recent=[old])), "crs.fever_hypoxia")
    assert finding.entry_ids == {str(fever.entry_id), str(sign.entry_id)}
    assert finding.evidence_at == new.at


@pytest.mark.parametrize(
    ("hours", "gap", "combines"),
    [
        (24, timedelta(hours=24), True),
        (24, timedelta(hours=24, seconds=1), False),
        (24, -timedelta(hours=24), True),
        (24, -timedelta(hours=24, seconds=1), False),
        (6, timedelta(hours=6), True),
        (6, timedelta(hours=7), False),
    ],
)
def test_evidence_window_edges(hours: int, gap: timedelta, combines: bool) -> None:
    """protocol.py evidence_window_hours (default 24): within the window, before or after the
    fever, a sign combines; outside it does not."""
    fever = vitals(T0, temp=38.4)
    sign = symptoms("dizziness_or_fainting", at=T0 + gap)
    result = run(sign, context=ctx(recent=[fever], evidence_window_hours=hours))
    assert ("crs.fever_hypotension" in ids(result)) is combines


def test_stored_fever_and_stored_sign_do_not_refire_on_an_unrelated_entry() -> None:
    """rules.py crs: the new observation must take part (the fever or the sign is new); a new
    normal reading near an already combined pair raises nothing."""
    recent = [vitals(T0, temp=38.4), vitals(T0 + HOUR, spo2=88)]
    assert run(vitals(T0 + 2 * HOUR, temp=37.0, spo2=97), context=ctx(recent=recent)).findings == []


def test_one_combination_reached_from_two_new_entries_is_one_finding() -> None:
    """evaluate docstring: the same combination reached from two of its new entries gives one
    finding (no duplicate alerts, issue 6 item 2)."""
    result = run(vitals(T0, temp=38.4), symptoms("shortness_of_breath", at=T0 + HOUR))
    assert ids(result).count("crs.fever_hypoxia") == 1


def test_combination_evidence_uses_the_highest_fever() -> None:
    """instruments.md 6.1: the clinician grades on the fever; the combination shows the highest
    reading near the sign."""
    recent = [vitals(T0, temp=38.2), vitals(T0 + HOUR, temp=39.4)]
    finding = one(
        run(vitals(T0 + 2 * HOUR, sbp=80), context=ctx(recent=recent)), "crs.fever_hypotension"
    )
    assert fields(finding)["temperature_c"] == 39.4


# --- CRS: constitutional features (6.4 CRS grade 1; issue 6) -------------------------------------


@pytest.mark.parametrize("code", CONSTITUTIONAL)
def test_constitutional_symptom_adds_evidence_to_the_fever_not_grade(code: str) -> None:
    """instruments.md 6.4 CRS G1 "Fever with or without constitutional symptoms"; issue 6:
    constitutional features raise the signal's evidence, not its grade."""
    fever = vitals(T0, temp=38.3)
    feature = symptoms(code, at=T0 - HOUR)
    finding = one(run(fever, context=ctx(recent=[feature])), "crs.fever")
    assert finding.priority == "routine"
    assert fields(finding) == {"temperature_c": 38.3, code: 2}
    assert str(feature.entry_id) in finding.entry_ids


@pytest.mark.parametrize("code", CONSTITUTIONAL)
def test_constitutional_symptom_alone_is_evidence_only(code: str) -> None:
    """Issue 6: constitutional features never open a signal by themselves - an evidence-only
    (priority None) crs.constitutional finding."""
    finding = one(run(symptoms(code)), "crs.constitutional")
    assert finding.priority is None
    assert finding.category == "crs"
    assert fields(finding) == {code: 2}


def test_heart_rate_101_is_constitutional_evidence_100_is_not() -> None:
    """instruments.md 6.4 [C]: CTCAE sinus tachycardia is HR > 100 bpm, recorded as a finding
    only; issue 6 lists it among the constitutional features."""
    with_101 = one(run(vitals(temp=38.5, hr=101)), "crs.fever")
    assert fields(with_101) == {"temperature_c": 38.5, "heart_rate_bpm": 101}
    with_100 = one(run(vitals(temp=38.5, hr=100)), "crs.fever")
    assert fields(with_100) == {"temperature_c": 38.5}
    alone = one(run(vitals(hr=101)), "crs.constitutional")
    assert alone.priority is None
    assert fields(alone) == {"heart_rate_bpm": 101}
    assert run(vitals(hr=100)).findings == []


def test_tachycardia_override() -> None:
    """protocol.py SafetySettings.tachycardia_bpm."""
    context = ctx(tachycardia_bpm=120)
    assert ids(run(vitals(hr=121), context=context)) == ["crs.constitutional"]
    assert ids(run(vitals(hr=120), context=context)) == []


def test_constitutional_evidence_outside_the_window_is_not_added() -> None:
    """protocol.py evidence_window_hours: only nearby features belong to the fever."""
    old = symptoms("headache", at=T0 - 25 * HOUR)
    assert fields(one(run(vitals(T0, temp=38.3), context=ctx(recent=[old])), "crs.fever")) == {
        "temperature_c": 38.3
    }


def test_urgent_combination_carries_constitutional_evidence() -> None:
    """Issue 6: the evidence goes with the signal, whatever its priority."""
    result = run(vitals(T0, temp=38.6, spo2=90, hr=115))
    assert fields(one(result, "crs.fever_hypoxia"))["heart_rate_bpm"] == 115


@pytest.mark.parametrize("code", ["cough", "rash", "arthralgia", "double_vision", "palpitations"])
def test_other_symptoms_raise_nothing(code: str) -> None:
    """vocabulary.py: symptoms without a safety flag are recorded, not signalled."""
    result = run(symptoms(code))
    assert result.findings == []
    assert result.prompts == []


# --- CRS: temperature prompt (issue 6 "a fever-like symptom without a reading prompts") --------


@pytest.mark.parametrize("code", ["fever", "chills"])
def test_fever_like_symptom_without_reading_prompts_for_temperature(code: str) -> None:
    """Issue 6 item 1; instruments.md 6.1: only a measured >= 38.0 C counts, so ask for one."""
    entry = symptoms(code)
    result = run(entry)
    assert len(result.prompts) == 1
    prompt = result.prompts[0]
    assert (prompt.kind, prompt.rule_id, prompt.entry_id, prompt.evidence_at) == (
        "temperature",
        "crs.temperature_prompt",
        entry.entry_id,
        T0,
    )
    assert prompt.rule_version == RULES["crs.temperature_prompt"]
    assert "crs.fever" not in ids(result)  # a feeling is not a fever


def test_non_fever_like_symptom_does_not_prompt() -> None:
    """vocabulary.py fever_like: only fever and chills."""
    assert run(symptoms("headache", "fatigue")).prompts == []


@pytest.mark.parametrize(
    ("offset", "prompts"),
    [
        (-HOUR, False),
        (-HOUR - timedelta(seconds=1), True),
        (timedelta(0), False),
        (24 * HOUR, False),
        (24 * HOUR + timedelta(seconds=1), True),
    ],
)
def test_reading_in_the_answer_window_suppresses_the_prompt(
    offset: timedelta, prompts: bool
) -> None:
    """rules.py PROMPT_READING_BEFORE (1 h) and evidence_window_hours: a reading in
    [t - 1 h, t + window] answers the fever-like symptom already - even a normal one."""
    reading = vitals(T0 + offset, temp=36.9)
    assert bool(run(symptoms("fever"), context=ctx(recent=[reading])).prompts) is prompts


def test_reading_posted_with_the_symptom_suppresses_the_prompt() -> None:
    """Issue 6: "a fever symptom with a reading" is judged on the reading."""
    result = run(symptoms("chills", at=T0), vitals(T0 + timedelta(minutes=10), temp=38.1))
    assert result.prompts == []
    assert "crs.fever" in ids(result)


def test_vitals_without_temperature_do_not_answer_the_prompt() -> None:
    """The prompt asks for a temperature; a blood pressure reading is not one."""
    assert run(symptoms("fever"), context=ctx(recent=[vitals(T0, sbp=120)])).prompts != []


# --- post-dose risk windows (instruments.md 6.3 [C]; issue 6; api-contract.md Signals) -----------


@pytest.mark.parametrize(
    ("day", "priority", "inside", "since"),
    [
        (0, "high", True, 0),
        (7, "high", True, 7),
        (8, "routine", False, 8),
        (-1, "routine", False, None),
    ],
)
def test_fever_priority_at_the_window_edges(
    day: int, priority: str, inside: bool, since: int | None
) -> None:
    """api-contract.md Signals: a fever alone is high inside the protocol's post-dose risk window
    and routine outside; days 0-7 both inclusive (issue 6 "days 0-7 of each cycle")."""
    at = T0 + day * DAY
    finding = one(
        run(vitals(at, temp=38.6), context=ctx(doses=[Dose(D0)], windows=[EACH_0_7])), "crs.fever"
    )
    assert (finding.priority, finding.in_risk_window, finding.days_since_dose) == (
        priority,
        inside,
        since,
    )


def test_issue_example_38_6_two_days_after_infusion_is_high() -> None:
    """Issue 6: 38.6 C two days after an infusion - the site must know now (high priority)."""
    window = RiskWindow(after="each_administration", end_day=14)
    assert fever_priority(2, [Dose(D0, product="car-t")], window) == "high"


def test_window_days_are_participant_local_dates() -> None:
    """risk_window docstring: days are participant-local calendar days, not 24 h periods."""
    late_evening = datetime(2026, 3, 9, 23, 30, tzinfo=UTC)  # 23:30 UTC = 10 Mar in Tokyo
    obs = vitals(late_evening, temp=38.6, local_date=date(2026, 3, 10))
    finding = one(run(obs, context=ctx(doses=[Dose(D0)], windows=[EACH_0_7])), "crs.fever")
    assert finding.days_since_dose == 8
    assert finding.priority == "routine"


def test_each_administration_opens_a_window_after_every_dose() -> None:
    """Issue 6: "days 0-7 of each blinatumomab cycle"."""
    doses = [Dose(D0), Dose(D0 + 28 * DAY)]
    assert fever_priority(30, doses, EACH_0_7) == "high"
    assert fever_priority(20, doses, EACH_0_7) == "routine"


def test_first_administration_opens_one_window_only() -> None:
    """protocol.py RiskWindow.after first_administration (issue 6: "days 0-14 after a CAR-T
    infusion")."""
    window = RiskWindow(after="first_administration", start_day=0, end_day=7)
    doses = [Dose(D0 + 28 * DAY), Dose(D0)]  # any order: the earliest is the first
    assert fever_priority(3, doses, window) == "high"
    assert fever_priority(30, doses, window) == "routine"
    result = run(vitals(T0 + 30 * DAY, temp=38.6), context=ctx(doses=doses, windows=[window]))
    assert one(result, "crs.fever").days_since_dose == 2  # still counts from the latest dose


def test_dose_step_up_opens_a_window_for_a_higher_dose_only() -> None:
    """instruments.md 6.3 [C]: premedication before a step-up dose (cycle 1 day 8) marks it as
    an at-risk window; protocol.py RiskWindow.after dose_step_up."""
    window = RiskWindow(after="dose_step_up", start_day=0, end_day=3)
    doses = [Dose(D0, 9, "blin"), Dose(D0 + 7 * DAY, 28, "blin")]
    assert fever_priority(1, doses, window) == "routine"  # the first dose is no step-up
    assert fever_priority(8, doses, window) == "high"
    assert fever_priority(11, doses, window) == "routine"


@pytest.mark.parametrize(
    "second",
    [
        Dose(D0 + 7 * DAY, 9, "blin"),  # equal
        Dose(D0 + 7 * DAY, 5, "blin"),  # lower
        Dose(D0 + 7 * DAY, 28, "other"),  # higher, but another product
        Dose(D0 + 7 * DAY, None, "blin"),  # unknown dose
    ],
)
def test_equal_lower_other_product_or_unknown_dose_is_no_step_up(second: Dose) -> None:
    """protocol.py RiskWindow.after dose_step_up: only a higher dose of the same product."""
    window = RiskWindow(after="dose_step_up", start_day=0, end_day=3)
    assert fever_priority(8, [Dose(D0, 9, "blin"), second], window) == "routine"


def test_step_up_compares_with_the_last_known_dose_of_the_product() -> None:
    """dose_step_up: 9 -> 28 -> 28 (no step-up) -> 56 (step-up)."""
    window = RiskWindow(after="dose_step_up", start_day=0, end_day=2)
    doses = [
        Dose(D0, 9, "blin"),
        Dose(D0 + 7 * DAY, 28, "blin"),
        Dose(D0 + 42 * DAY, 28, "blin"),
        Dose(D0 + 84 * DAY, 56, "blin"),
    ]
    inside = [d for d in range(0, 90) if risk_window(D0 + d * DAY, doses, [window])[0]]
    assert inside == [7, 8, 9, 84, 85, 86]


def test_window_start_day_after_the_dose_day() -> None:
    """protocol.py RiskWindow start_day: a window may begin after the dose day."""
    window = RiskWindow(after="each_administration", start_day=1, end_day=3)
    got = [risk_window(D0 + d * DAY, [Dose(D0)], [window])[0] for d in range(-1, 6)]
    assert got == [False, False, True, True, True, False, False]


def test_risk_window_days_since_dose() -> None:
    """risk_window: days since the latest dose on or before the date (None before any dose);
    a later dose does not count."""
    doses = [Dose(D0), Dose(D0 + 10 * DAY)]
    assert risk_window(D0 - DAY, doses, []) == (False, None)
    assert risk_window(D0, doses, []) == (False, 0)
    assert risk_window(D0 + 9 * DAY, doses, []) == (False, 9)
    assert risk_window(D0 + 10 * DAY, doses, []) == (False, 0)
    assert risk_window(D0 + 13 * DAY, doses, [EACH_0_7]) == (True, 3)
    assert risk_window(D0, [], [EACH_0_7]) == (False, None)


def test_any_of_several_windows_applies() -> None:
    """protocol.py risk_windows is a list: inside any of them counts."""
    windows = [
        RiskWindow(after="first_administration", start_day=0, end_day=14),
        RiskWindow(after="each_administration", start_day=0, end_day=2),
    ]
    doses = [Dose(D0), Dose(D0 + 28 * DAY)]
    got = [d for d in range(0, 40) if risk_window(D0 + d * DAY, doses, windows)[0]]
    assert got == [*range(0, 15), 28, 29, 30]


def test_urgent_and_evidence_only_findings_keep_their_priority_in_a_window() -> None:
    """Dose-aware priority raises a routine fever to high (api-contract.md Signals); urgent stays
    urgent and evidence-only stays evidence-only (issue 6: evidence, not grade)."""
    context = ctx(doses=[Dose(D0)], windows=[EACH_0_7])
    result = run(vitals(T0 + DAY, temp=38.6, spo2=90), context=context)
    assert one(result, "crs.fever_hypoxia").priority == "urgent"
    assert one(result, "crs.fever_hypoxia").in_risk_window is True
    assert (
        one(run(symptoms("headache", at=T0 + DAY), context=context), "crs.constitutional").priority
        is None
    )


def test_mg_findings_are_not_dose_aware() -> None:
    """Issue 6 item 1: the post-dose window concerns CRS/neurotoxicity; MG worsening keeps its
    priority (1.7 / 1.8), and still reports the window."""
    context = ctx(doses=[Dose(D0)], windows=[EACH_0_7], baseline=2)
    finding = one(
        run(mg(T0 + DAY, arising_from_chair=3, double_vision=1), context=context),
        "mg.total_worsening",
    )
    assert finding.priority == "routine"
    assert finding.in_risk_window is True
    assert finding.days_since_dose == 1


# --- ICANS-like (instruments.md 6.2 [C]; issue 6) ------------------------------------------------


def test_the_icans_like_vocabulary_is_the_issues_list() -> None:
    """Issue 6 item 1 ICANS-like list plus seizure; vocabulary.py icans_like flags."""
    assert {c for c, t in SYMPTOMS.items() if t.icans_like} == {*ICANS_NEURO, "seizure"}


@pytest.mark.parametrize("code", ICANS_NEURO)
def test_icans_like_symptom_is_a_routine_neuro_signal(code: str) -> None:
    """Issue 6: confusion, trouble finding words, new tremor, handwriting change, unusual
    sleepiness -> signal (6.2 domains); routine outside a risk window."""
    finding = one(run(symptoms(code, severity=1)), "icans.neuro_symptom")
    assert finding.category == "icans"
    assert finding.priority == "routine"
    assert fields(finding) == {code: 1}


@pytest.mark.parametrize("code", ICANS_NEURO)
def test_icans_like_symptom_is_high_inside_a_risk_window(code: str) -> None:
    """Issue 6 dose-aware priority; instruments.md 6.3: neurotoxicity within the first 2 weeks."""
    context = ctx(doses=[Dose(D0)], windows=[EACH_0_7])
    finding = one(run(symptoms(code, at=T0 + 3 * DAY), context=context), "icans.neuro_symptom")
    assert finding.priority == "high"
    assert finding.in_risk_window is True


def test_several_neuro_symptoms_in_one_entry_are_one_finding() -> None:
    """One entry, one neuro finding with all of its ICANS-like symptoms as evidence."""
    finding = one(run(symptoms("confusion", "somnolence", "headache")), "icans.neuro_symptom")
    assert set(fields(finding)) == {"confusion", "somnolence"}


def test_seizure_is_urgent() -> None:
    """instruments.md 6.2 [C]: any seizure is ICANS grade >= 3 -> urgent (issue 6)."""
    result = run(symptoms("seizure"))
    finding = one(result, "icans.seizure")
    assert finding.priority == "urgent"
    assert finding.category == "icans"
    assert "icans.neuro_symptom" not in ids(result)


def test_seizure_with_confusion_gives_both() -> None:
    """6.2: seizure and consciousness/ICE domains are separate."""
    result = run(symptoms("seizure", "confusion"))
    assert sorted(ids(result)) == ["icans.neuro_symptom", "icans.seizure"]
    assert "seizure" not in fields(one(result, "icans.neuro_symptom"))


def test_seizure_is_urgent_in_and_out_of_a_window() -> None:
    """6.2 [C]: urgent whatever the timing."""
    context = ctx(doses=[Dose(D0)], windows=[EACH_0_7])
    assert (
        one(run(symptoms("seizure", at=T0 + DAY), context=context), "icans.seizure").priority
        == "urgent"
    )


@pytest.mark.parametrize(
    ("before", "lookback", "flags"),
    [
        (None, 14, True),
        (timedelta(days=3), 14, False),
        (timedelta(days=14), 14, False),
        (timedelta(days=14, seconds=1), 14, True),
        (timedelta(days=4), 3, True),
        (timedelta(days=2), 3, False),
    ],
)
def test_tremor_counts_only_when_new(before: timedelta | None, lookback: int, flags: bool) -> None:
    """Issue 6 "new tremor"; protocol.py new_symptom_lookback_days (default 14): a tremor reported
    within the lookback is long-standing, not a new ICANS sign."""
    recent = [] if before is None else [symptoms("tremor", at=T0 - before)]
    result = run(symptoms("tremor"), context=ctx(recent=recent, new_symptom_lookback_days=lookback))
    assert ("icans.neuro_symptom" in ids(result)) is flags


def test_a_known_tremor_does_not_hide_a_new_confusion() -> None:
    """Only tremor is new-only (issue 6); other ICANS-like symptoms always flag."""
    recent = [symptoms("tremor", "confusion", at=T0 - 2 * DAY)]
    finding = one(
        run(symptoms("tremor", "confusion"), context=ctx(recent=recent)), "icans.neuro_symptom"
    )
    assert fields(finding) == {"confusion": 2}


def test_tremor_in_two_new_entries_flags_once() -> None:
    """ "New tremor": the second entry's tremor was reported hours before by the first."""
    first, second = symptoms("tremor", at=T0), symptoms("tremor", at=T0 + 3 * HOUR)
    finding = one(run(second, first), "icans.neuro_symptom")
    assert finding.entry_ids == {str(first.entry_id)}


# --- MG crisis and worsening (instruments.md 1.7, 1.8; api-contract.md Signals) ----------------


@pytest.mark.parametrize("breathing", [3, 2])
def test_breathing_2_or_3_is_urgent_mg_crisis(breathing: int) -> None:
    """api-contract.md Signals: breathing 3 -> mg_crisis urgent; instruments.md 1.8: URGENT for
    breathing = 3 or = 2 (short of breath at rest)."""
    finding = one(run(mg(breathing=breathing)), "mg.breathing")
    assert (finding.category, finding.priority) == ("mg_crisis", "urgent")
    assert fields(finding) == {"breathing": breathing}


def test_breathing_1_is_no_crisis() -> None:
    """instruments.md 1.8: breathing 1 (shortness of breath with exertion) alone is no flag."""
    assert run(mg(breathing=1)).findings == []


@pytest.mark.parametrize("item", ["swallowing", "chewing"])
def test_new_gastric_tube_is_urgent(item: str) -> None:
    """instruments.md 1.8: swallowing or chewing = 3 (gastric tube) is URGENT when new."""
    result = run(mg(**{item: 3}), context=ctx(previous=mg(T0 - 7 * DAY, **{item: 2})))
    finding = one(result, "mg.feeding_tube")
    assert (finding.category, finding.priority) == ("mg_worsening", "urgent")
    assert fields(finding) == {item: 3}


@pytest.mark.parametrize("item", ["swallowing", "chewing"])
def test_gastric_tube_already_there_is_not_flagged(item: str) -> None:
    """instruments.md 1.8: a tube is a baseline state; it is urgent only when new."""
    result = run(mg(**{item: 3}), context=ctx(previous=mg(T0 - 7 * DAY, **{item: 3})))
    assert "mg.feeding_tube" not in ids(result)
    assert result.findings == []


@pytest.mark.parametrize("item", ["swallowing", "chewing"])
def test_gastric_tube_without_previous_mg_adl_is_not_flagged(item: str) -> None:
    """rules.py mg: "newly" needs a previous MG-ADL (1.8: a tube may be the baseline state)."""
    assert run(mg(**{item: 3})).findings == []


def test_talking_3_is_not_a_tube() -> None:
    """instruments.md 1.2: 3 means a gastric tube for chewing and swallowing only."""
    result = run(mg(talking=3), context=ctx(previous=mg(T0 - 7 * DAY, talking=1)))
    assert "mg.feeding_tube" not in ids(result)


@pytest.mark.parametrize("item", ["talking", "chewing", "swallowing"])
def test_bulbar_item_at_2_with_breathing_1_is_high(item: str) -> None:
    """instruments.md 1.8: HIGH for a bulbar item reaching >= 2 with breathing >= 1 in the same
    entry (no previous needed)."""
    finding = one(run(mg(breathing=1, **{item: 2})), "mg.bulbar_with_breathing")
    assert (finding.category, finding.priority) == ("mg_worsening", "high")
    assert fields(finding) == {"breathing": 1, item: 2}


@pytest.mark.parametrize("item", ["talking", "chewing", "swallowing"])
def test_bulbar_item_rising_by_1_with_breathing_1_is_high(item: str) -> None:
    """instruments.md 1.8: HIGH for a bulbar item rising by >= 1 with breathing >= 1."""
    result = run(mg(breathing=1, **{item: 1}), context=ctx(previous=mg(T0 - 7 * DAY, breathing=1)))
    assert one(result, "mg.bulbar_with_breathing").priority == "high"


def test_bulbar_item_at_1_without_rise_with_breathing_1_is_nothing() -> None:
    """instruments.md 1.8: a steady bulbar 1 with breathing 1 is neither a rise nor >= 2."""
    previous = mg(T0 - 7 * DAY, talking=1, breathing=1)
    assert run(mg(talking=1, breathing=1), context=ctx(previous=previous)).findings == []
    assert run(mg(talking=1, breathing=1)).findings == []


def test_bulbar_rise_without_breathing_is_not_high() -> None:
    """instruments.md 1.8: the HIGH rule needs breathing >= 1 in the same entry."""
    result = run(mg(talking=1), context=ctx(previous=mg(T0 - 7 * DAY)))
    assert "mg.bulbar_with_breathing" not in ids(result)


def test_breathing_2_with_bulbar_2_gives_crisis_and_worsening() -> None:
    """instruments.md 1.8: both flags apply; categories differ (api-contract.md categories)."""
    result = run(mg(breathing=2, swallowing=2))
    assert one(result, "mg.breathing").category == "mg_crisis"
    assert one(result, "mg.bulbar_with_breathing").category == "mg_worsening"


@pytest.mark.parametrize("item", ["talking", "chewing", "swallowing"])
def test_bulbar_item_newly_2_with_breathing_0_is_for_review(item: str) -> None:
    """instruments.md 1.8: Review (routine) for a new rise in any bulbar item to >= 2."""
    result = run(mg(**{item: 2}), context=ctx(previous=mg(T0 - 7 * DAY, **{item: 1})))
    finding = one(result, "mg.bulbar_rise")
    assert (finding.category, finding.priority) == ("mg_worsening", "routine")
    assert fields(finding) == {item: 2}


def test_bulbar_2_already_before_or_without_previous_is_not_new() -> None:
    """instruments.md 1.8: "a *new* rise"; without a previous MG-ADL it may be baseline."""
    assert run(mg(talking=2), context=ctx(previous=mg(T0 - 7 * DAY, talking=2))).findings == []
    assert run(mg(talking=2)).findings == []


def test_bulbar_newly_2_with_breathing_1_is_high_not_review() -> None:
    """instruments.md 1.8: with breathing >= 1 the HIGH rule applies instead of the review."""
    result = run(mg(talking=2, breathing=1), context=ctx(previous=mg(T0 - 7 * DAY)))
    assert ids(result) == ["mg.bulbar_with_breathing"]


def test_total_worsening_first_value_is_routine() -> None:
    """instruments.md 1.7 [U]: total MG-ADL up >= the protocol's delta (default 2) from
    baseline; unconfirmed it is for review."""
    finding = one(
        run(mg(arising_from_chair=2, double_vision=2), context=ctx(baseline=2)),
        "mg.total_worsening",
    )
    assert (finding.category, finding.priority) == ("mg_worsening", "routine")
    assert fields(finding) == {"total": 4}


def test_total_worsening_confirmed_by_the_previous_is_high() -> None:
    """instruments.md 1.7 [U] "confirmed on a repeat entry"; api-contract.md: worsening is two
    consecutive values at least the delta above baseline."""
    previous = mg(T0 - 7 * DAY, arising_from_chair=2, double_vision=2)
    new = mg(arising_from_chair=3, double_vision=1)
    finding = one(run(new, context=ctx(baseline=2, previous=previous)), "mg.total_worsening")
    assert finding.priority == "high"
    assert finding.entry_ids == {str(previous.entry_id), str(new.entry_id)}
    assert [e["value"] for e in finding.evidence] == [4, 4]


def test_previous_below_the_threshold_does_not_confirm() -> None:
    """instruments.md 1.7: the repeat entry must also be >= baseline + delta."""
    previous = mg(T0 - 7 * DAY, arising_from_chair=3)
    result = run(
        mg(arising_from_chair=3, double_vision=1), context=ctx(baseline=2, previous=previous)
    )
    assert one(result, "mg.total_worsening").priority == "routine"


def test_total_below_baseline_plus_delta_or_without_baseline_is_nothing() -> None:
    """instruments.md 1.7: below the delta nothing; without a baseline there is no reference."""
    assert run(mg(arising_from_chair=3), context=ctx(baseline=2)).findings == []
    assert run(mg(arising_from_chair=3, double_vision=3)).findings == []


def test_worsening_delta_is_a_protocol_setting() -> None:
    """protocol.py EfficacyThresholds.worsening_delta (1.7 [U]: a setting)."""
    context = ctx(baseline=4, delta=3)
    assert run(mg(arising_from_chair=3, double_vision=3), context=context).findings == []
    assert ids(run(mg(arising_from_chair=3, double_vision=3, eyelid_droop=1), context=context)) == [
        "mg.total_worsening"
    ]


def test_two_new_mg_adl_entries_confirm_each_other() -> None:
    """instruments.md 1.7: a repeat entry in the same sync confirms the first."""
    first = mg(T0, arising_from_chair=3, double_vision=1)
    second = mg(T0 + 7 * DAY, arising_from_chair=3, double_vision=1)
    result = run(second, first, context=ctx(baseline=2))
    assert [f.priority for f in result.findings] == ["routine", "high"]


@settings(max_examples=100, deadline=None, database=None)
@given(
    total=st.integers(0, 24),
    baseline=st.integers(0, 24),
    delta=st.integers(1, 24),
)
def test_total_worsening_over_its_range(total: int, baseline: int, delta: int) -> None:
    """instruments.md 1.7 [U]: a finding iff total >= baseline + delta (non-bulbar items, so
    no other MG rule takes part)."""
    rest = ("brushing_teeth_or_combing_hair", "arising_from_chair", "double_vision", "eyelid_droop")
    items = {name: min(3, max(0, total - 3 * i)) for i, name in enumerate(rest)}
    total = sum(items.values())
    result = run(mg(**items), context=ctx(baseline=baseline, delta=delta))
    assert ("mg.total_worsening" in ids(result)) == (total >= baseline + delta)


# --- rule modes (protocol.py SafetySettings.rule_modes; issue 6 item 2) --------------------------


RULE_EXAMPLES: dict[str, list[Observation]] = {
    "crs.fever": [vitals(temp=38.5)],
    "crs.fever_hypotension": [vitals(temp=38.5, sbp=80)],
    "crs.fever_hypoxia": [vitals(temp=38.5, spo2=88)],
    "crs.constitutional": [symptoms("headache")],
    "icans.neuro_symptom": [symptoms("confusion")],
    "icans.seizure": [symptoms("seizure")],
    "mg.breathing": [mg(breathing=3)],
    "mg.bulbar_with_breathing": [mg(breathing=1, talking=2)],
    "mg.total_worsening": [mg(arising_from_chair=3, double_vision=3)],
}
PREVIOUS_EXAMPLES: dict[str, list[Observation]] = {
    "mg.feeding_tube": [mg(swallowing=3)],
    "mg.bulbar_rise": [mg(talking=2)],
}


@pytest.mark.parametrize("rule_id", sorted({*RULE_EXAMPLES, *PREVIOUS_EXAMPLES}))
def test_off_drops_a_rules_findings_and_monitor_keeps_them(rule_id: str) -> None:
    """protocol.py rule_modes: off skips the rule; monitor findings are still returned (the
    episode step records them without alerting) - evaluate docstring."""
    new = RULE_EXAMPLES.get(rule_id) or PREVIOUS_EXAMPLES[rule_id]
    previous = mg(T0 - 7 * DAY) if rule_id in PREVIOUS_EXAMPLES else None

    def with_mode(mode: RuleMode | None) -> list[str]:
        modes: dict[str, RuleMode] = {} if mode is None else {rule_id: mode}
        return ids(evaluate(new, ctx(previous=previous, baseline=0, modes=modes)))

    active = with_mode(None)
    assert rule_id in active
    assert rule_id in with_mode("monitor")
    off = with_mode("off")
    assert rule_id not in off
    assert off == [r for r in active if r != rule_id]  # other rules are unaffected


def test_off_drops_the_temperature_prompt() -> None:
    """protocol.py rule_modes: crs.temperature_prompt off -> no prompts; other rules still run."""
    result = run(symptoms("chills"), context=ctx(modes={"crs.temperature_prompt": "off"}))
    assert result.prompts == []
    assert ids(result) == ["crs.constitutional"]
    assert run(symptoms("chills"), context=ctx(modes={"crs.temperature_prompt": "monitor"})).prompts


# --- may_fire (rules.py: a pre-filter for the safety step) ---------------------------------------


def test_may_fire_skips_normal_readings_and_symptom_free_entries() -> None:
    """may_fire docstring: normal readings and symptom-free entries skip the safety step."""
    s = SafetySettings()
    assert not may_fire(vitals(temp=37.9, hr=100, spo2=92, sbp=90), s, 2)
    assert not may_fire(symptoms("cough", "rash", "palpitations"), s, 2)
    assert not may_fire(symptoms(), s, 2)
    assert not may_fire(mg(talking=1, double_vision=0), s, 2)
    assert may_fire(vitals(temp=38.0), s, 2)
    assert may_fire(vitals(spo2=91), s, 2)
    assert may_fire(vitals(sbp=89), s, 2)
    assert may_fire(vitals(hr=101), s, 2)
    assert may_fire(symptoms("headache"), s, 2)
    assert may_fire(mg(breathing=1), s, 2)
    assert may_fire(mg(talking=2), s, 2)
    assert may_fire(mg(double_vision=2), s, 2)  # total 2 could be worsening from baseline 0
    # without a day 0 there is no baseline, so a total alone cannot be worsening (1.7)
    assert not may_fire(mg(double_vision=2, eyelid_droop=3), s, 2, has_baseline=False)
    assert may_fire(mg(double_vision=2, breathing=1), s, 2, has_baseline=False)


def test_may_fire_follows_the_protocol_thresholds() -> None:
    """protocol.py SafetySettings: the pre-filter uses the same settings as the rules."""
    s = SafetySettings(
        fever_threshold_c=38.5,
        spo2_min_percent=90,
        hypotension_systolic_mmhg=80,
        tachycardia_bpm=120,
    )
    assert not may_fire(vitals(temp=38.4, spo2=90, sbp=80, hr=120), s, 2)
    assert may_fire(vitals(temp=38.5), s, 2)


SYMPTOM_CODES = sorted(SYMPTOMS)
MODES: tuple[RuleMode, ...] = ("active", "monitor", "off")
AFTER: tuple[After, ...] = ("each_administration", "first_administration", "dose_step_up")
BASE = datetime(2026, 5, 1, 12, tzinfo=UTC)


@st.composite
def observations(draw: st.DrawFn, near: datetime = BASE) -> Observation:
    at = near + timedelta(minutes=draw(st.integers(-60 * 24 * 20, 60 * 48)))
    kind = draw(st.sampled_from(["vitals", "symptoms", "mg_adl"]))
    if kind == "vitals":
        return Observation(
            entry_id=uuid.UUID(int=draw(st.integers(1, 2**64))),
            kind="vitals",
            at=at,
            local_date=at.date(),
            temperature_c=draw(st.none() | st.floats(35.0, 41.0, allow_nan=False)),
            heart_rate_bpm=draw(st.none() | st.integers(40, 180)),
            spo2_percent=draw(st.none() | st.integers(80, 100).map(float)),
            systolic_mmhg=draw(st.none() | st.integers(60, 180)),
        )
    if kind == "symptoms":
        codes = draw(st.lists(st.sampled_from(SYMPTOM_CODES), max_size=4, unique=True))
        return Observation(
            entry_id=uuid.UUID(int=draw(st.integers(1, 2**64))),
            kind="symptoms",
            at=at,
            local_date=at.date(),
            symptoms=tuple((c, draw(st.integers(1, 3))) for c in codes),
        )
    items = {name: draw(st.integers(0, 3)) for name in MG_ITEMS}
    return Observation(
        entry_id=uuid.UUID(int=draw(st.integers(1, 2**64))),
        kind="mg_adl",
        at=at,
        local_date=at.date(),
        mg_adl=items,
    )


@st.composite
def contexts(draw: st.DrawFn, with_windows: bool = True) -> Context:
    windows = []
    if with_windows:
        for _ in range(draw(st.integers(0, 2))):
            start = draw(st.integers(0, 5))
            windows.append(
                RiskWindow(
                    after=draw(st.sampled_from(AFTER)),
                    start_day=start,
                    end_day=start + draw(st.integers(0, 14)),
                )
            )
    modes = draw(
        st.dictionaries(
            st.sampled_from(SAFETY_RULE_IDS),
            st.sampled_from(MODES),
            max_size=3,
        )
    )
    s = SafetySettings(
        fever_threshold_c=draw(st.floats(37.0, 40.0, allow_nan=False)),
        spo2_min_percent=draw(st.integers(80, 99)),
        hypotension_systolic_mmhg=draw(st.integers(60, 120)),
        tachycardia_bpm=draw(st.integers(80, 160)),
        evidence_window_hours=draw(st.integers(1, 72)),
        new_symptom_lookback_days=draw(st.integers(1, 30)),
        risk_windows=windows,
        rule_modes=modes,
    )
    doses = tuple(
        Dose(
            BASE.date() + timedelta(days=draw(st.integers(-30, 5))),
            draw(st.none() | st.sampled_from([9.0, 28.0, 56.0])),
            draw(st.sampled_from(["blin", "car-t"])),
        )
        for _ in range(draw(st.integers(0, 3)))
    )
    previous = draw(st.none() | observations().filter(lambda o: o.kind == "mg_adl"))
    return Context(
        settings=s,
        worsening_delta=draw(st.integers(1, 24)),
        doses=doses,
        recent=tuple(draw(st.lists(observations(), max_size=4))),
        previous_mg_adl=previous,
        baseline_mg_adl=draw(st.none() | st.floats(0, 24, allow_nan=False)),
    )


@settings(max_examples=200, deadline=None, database=None)
@given(obs=observations(), context=contexts())
def test_may_fire_is_a_sound_pre_filter(obs: Observation, context: Context) -> None:
    """may_fire docstring: an observation for which may_fire is False takes part in no finding
    and no prompt, whatever is stored around it - skipping the safety step loses nothing (also
    with has_baseline=False when the participant has no baseline)."""
    context = replace(
        context, recent=tuple(o for o in context.recent if o.entry_id != obs.entry_id)
    )
    result = evaluate([obs], context)
    if result.findings or result.prompts:
        has_baseline = context.baseline_mg_adl is not None
        assert may_fire(obs, context.settings, context.worsening_delta, has_baseline=has_baseline)
        assert may_fire(obs, context.settings, context.worsening_delta)


def _rank(priority: str | None) -> int:
    return 0 if priority is None else PRIORITY_RANK[priority]


@settings(max_examples=100, deadline=None, database=None)
@given(
    new=st.lists(observations(), min_size=1, max_size=3, unique_by=lambda o: o.entry_id),
    context=contexts(with_windows=False),
    end_day=st.integers(0, 30),
    after=st.sampled_from(AFTER),
)
def test_priority_never_decreases_when_a_risk_window_applies(
    new: list[Observation], context: Context, end_day: int, after: After
) -> None:
    """Issue 6 dose-aware priority: inside a risk window priority is raised, never lowered, and
    the same findings are raised (outside it the signal is still raised)."""
    without = evaluate(new, context)
    window = RiskWindow(after=after, start_day=0, end_day=end_day)
    settings_with = context.settings.model_copy(update={"risk_windows": [window]})
    with_window = evaluate(new, replace(context, settings=settings_with))

    def key(f: Finding) -> tuple[str, frozenset[str]]:
        return (f.rule_id, f.entry_ids)

    before = {key(f): f for f in without.findings}
    after_ = {key(f): f for f in with_window.findings}
    assert before.keys() == after_.keys()
    for k, f in after_.items():
        assert _rank(f.priority) >= _rank(before[k].priority)
        if f.priority != before[k].priority:
            assert f.in_risk_window
            assert (before[k].priority, f.priority) == ("routine", "high")
    assert without.prompts == with_window.prompts


def test_combination_evidence_pairs_the_fever_with_signs_of_its_own_window() -> None:
    """instruments.md 6.1 [C]: fever *with* hypotension - both inside one evidence window. A new
    fever shows its own value with the signs near it, never a fever 40 h away from them."""
    old_fever = vitals(T0 - 20 * HOUR, temp=39.5)
    dizzy = symptoms("dizziness_or_fainting", at=T0 + 20 * HOUR)
    new_fever = vitals(T0, temp=38.2)
    finding = one(run(new_fever, context=ctx(recent=[old_fever, dizzy])), "crs.fever_hypotension")
    temps = [e["value"] for e in finding.evidence if e.get("field") == "temperature_c"]
    assert temps == [38.2]
    assert finding.identity == frozenset({str(dizzy.entry_id)})


def test_more_fevers_near_the_same_sign_are_one_combination() -> None:
    """A combination is identified by its signs: ten fevers around one low SpO2 give one
    fever-with-hypoxia finding (and ten fever findings)."""
    low = vitals(T0, spo2=89)
    fevers = [vitals(T0 + i * HOUR / 10, temp=38.6) for i in range(10)]
    result = run(low, *fevers)
    assert ids(result).count("crs.fever_hypoxia") == 1
    assert ids(result).count("crs.fever") == 10


# --- which stored observations an evaluation needs (rules.needs_stored; engine reads) ----------

#: The symptoms the rules read (app/safety/engine.py RULE_SYMPTOMS), and two they do not.
_RULE_CODES = sorted(RULE_SYMPTOMS | {"rash", "cough"})


@st.composite
def _observation(draw: st.DrawFn) -> Observation:
    # Within two evidence windows of T0: most pairs are near enough to take part together.
    at = T0 + timedelta(minutes=draw(st.integers(-36 * 60, 36 * 60)))
    kind = draw(st.sampled_from(["vitals", "symptoms", "mg_adl"]))
    if kind == "vitals":
        return vitals(
            at,
            temp=draw(st.none() | st.sampled_from([36.5, 37.4, 37.9, 38.0, 38.6])),
            hr=draw(st.none() | st.sampled_from([70, 100, 101, 120])),
            spo2=draw(st.none() | st.sampled_from([85.0, 91.6, 92.0, 97.0])),
            sbp=draw(st.none() | st.sampled_from([80, 89, 90, 120])),
        )
    if kind == "symptoms":
        codes = draw(st.lists(st.sampled_from(_RULE_CODES), min_size=1, max_size=3, unique=True))
        return symptoms(*codes, at=at, severity=draw(st.integers(1, 3)))
    items = {name: draw(st.integers(0, 3)) for name in MG_ITEMS}
    return mg(at, **items)


def _plain_reading(obs: Observation, s: SafetySettings) -> bool:
    """A stored observation the engine reads only to answer a temperature prompt: a reading
    below the fever threshold with nothing else abnormal (engine._relevant's reading branch)."""
    return (
        obs.kind == "vitals"
        and (obs.temperature_c is None or obs.temperature_c < s.fever_threshold_c)
        and (obs.spo2_percent is None or obs.spo2_percent > s.spo2_min_percent)
        and (obs.systolic_mmhg is None or obs.systolic_mmhg >= s.hypotension_systolic_mmhg)
        and (obs.heart_rate_bpm is None or obs.heart_rate_bpm <= s.tachycardia_bpm)
    )


@settings(max_examples=400, deadline=None, database=None)
@given(
    new=st.lists(_observation(), min_size=1, max_size=3),
    stored=st.lists(_observation(), max_size=25),
    doses=st.lists(st.integers(-5, 5), max_size=2),
)
def test_skipping_the_stored_observations_never_changes_an_evaluation(
    new: list[Observation], stored: list[Observation], doses: list[int]
) -> None:
    """The engine skips the stored-observations read when no new observation needs it
    (``needs_stored``), and the reading-only rows when no new symptom prompts for a temperature
    (``needs_readings_for``): a skipped read must never change a finding or a prompt."""
    full = ctx(
        recent=stored,
        doses=[Dose(D0 + timedelta(days=d)) for d in doses],
        windows=[EACH_0_7],
    )
    s = full.settings
    result = evaluate(new, full)
    if not any(needs_stored(o, s) for o in new):
        assert evaluate(new, replace(full, recent=())) == result
    if not any(needs_readings_for(c) for o in new for c in o.codes()):
        pruned = tuple(o for o in stored if not _plain_reading(o, s))
        assert evaluate(new, replace(full, recent=pruned)) == result


def _what_the_engine_reads(
    new: list[Observation], stored: list[Observation], s: SafetySettings
) -> tuple[Observation, ...]:
    """engine._relevant's rows as a model, given the stored observations inside its [start,
    end] window (the window itself, unchanged by the signs' gate, is not modelled: a sign
    beyond it is not read with or without a fever): the fevers; the temperature readings from
    an hour before a new fever-like symptom; the signs (a low typed SpO2 - rounded, as
    vital_sign keeps it - or pressure, a raised heart rate, a rule symptom, MG-ADL breathing
    >= 2) only with a fever stored or new, or a new-only symptom (``needs_signs``)."""

    def fever(o: Observation) -> bool:
        return o.temperature_c is not None and o.temperature_c >= s.fever_threshold_c

    prompting = [o.at for o in new if any(needs_readings_for(c) for c in o.codes())]
    readings_from = min(prompting) - PROMPT_READING_BEFORE if prompting else None
    signs = any(needs_signs(o, s) for o in new) or any(fever(o) for o in stored)

    def sign(o: Observation) -> bool:
        if o.kind == "vitals":
            return (
                (o.spo2_percent is not None and round(o.spo2_percent) <= s.spo2_min_percent)
                or (o.systolic_mmhg is not None and o.systolic_mmhg < s.hypotension_systolic_mmhg)
                or (o.heart_rate_bpm is not None and o.heart_rate_bpm > s.tachycardia_bpm)
            )
        if o.kind == "symptoms":
            return bool(o.codes() & RULE_SYMPTOMS)
        return o.mg_adl is not None and o.mg_adl.get("breathing", 0) >= 2

    def reading(o: Observation) -> bool:
        return readings_from is not None and o.temperature_c is not None and o.at >= readings_from

    return tuple(o for o in stored if fever(o) or reading(o) or (signs and sign(o)))


@settings(max_examples=400, deadline=None, database=None)
@given(
    new=st.lists(_observation(), min_size=1, max_size=3),
    stored=st.lists(_observation(), max_size=25),
    doses=st.lists(st.integers(-5, 5), max_size=2),
)
# The cases the random ones rarely reach: a tremor already reported (its lookback), a new sign
# near a stored fever, a new fever near a stored sign.
@example(new=[symptoms("tremor", at=T0)], stored=[symptoms("tremor", at=T0 - HOUR)], doses=[])
@example(
    new=[vitals(T0, sbp=80)],
    stored=[vitals(T0 - 2 * HOUR, temp=38.5), vitals(T0 - HOUR, spo2=85.0)],
    doses=[],
)
@example(new=[vitals(T0, temp=38.5)], stored=[mg(T0 - HOUR, breathing=2)], doses=[])
def test_what_the_engine_reads_is_all_an_evaluation_needs(
    new: list[Observation], stored: list[Observation], doses: list[int]
) -> None:
    """The stored rows the engine reads (``_what_the_engine_reads``: no stored sign without a
    fever to go with it, no plain reading without a prompt to answer) give every finding and
    prompt that all the stored observations give."""
    full = ctx(
        recent=stored,
        doses=[Dose(D0 + timedelta(days=d)) for d in doses],
        windows=[EACH_0_7],
    )
    read = _what_the_engine_reads(new, stored, full.settings)
    assert evaluate(new, replace(full, recent=read)) == evaluate(new, full)


def test_the_signs_wait_for_a_fever_or_a_new_only_symptom() -> None:
    """A stored low SpO2 is read for a new fever (fever with hypoxia) and for a new tremor
    (its lookback), not for a new low pressure with no fever anywhere."""
    s = SafetySettings()
    low = vitals(T0 - HOUR, spo2=85.0)
    assert _what_the_engine_reads([vitals(T0, temp=38.5)], [low], s) == (low,)
    assert _what_the_engine_reads([symptoms("tremor", at=T0)], [low], s) == (low,)
    assert _what_the_engine_reads([vitals(T0, sbp=80)], [low], s) == ()
    fever = vitals(T0 - 2 * HOUR, temp=38.5)
    assert _what_the_engine_reads([vitals(T0, sbp=80)], [low, fever], s) == (low, fever)
    assert [needs_signs(o, s) for o in (vitals(temp=38.0), symptoms("tremor"))] == [True, True]
    assert [needs_signs(o, s) for o in (vitals(spo2=85.0), mg(breathing=3))] == [False, False]


def test_what_needs_the_stored_observations() -> None:
    """A fever, a sign (low SpO2 or pressure, a hypoxia or hypotension symptom, MG-ADL
    breathing at rest), a fever-like or new-only symptom read them; a raised heart rate, a
    constitutional or neurological symptom and other MG-ADLs are judged alone."""
    s = SafetySettings()
    needs = [
        vitals(temp=38.0),
        vitals(spo2=91),
        vitals(sbp=89),
        symptoms("dizziness_or_fainting"),
        symptoms("shortness_of_breath"),
        mg(breathing=2),
        symptoms("fever"),
        symptoms("tremor"),
    ]
    alone = [vitals(hr=130), symptoms("headache"), symptoms("confusion"), mg(breathing=1)]
    assert [needs_stored(o, s) for o in needs] == [True] * len(needs)
    assert [needs_stored(o, s) for o in alone] == [False] * len(alone)
