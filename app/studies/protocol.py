"""Protocol definitions: a trial's schedule, dosing, instruments and thresholds as data.

Pure module (no database). A definition is validated here and stored versioned; a version in use
is never changed. Thresholds that the clinical reference tags as uncertain ([U]) are settings here,
with the reference's default, so each protocol can state its own.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.core.time import IanaTimeZone

PROTOCOL_SCHEMA_VERSION = 1

Instrument = Literal[
    "mg_adl",
    "qmg",
    "mgc",
    "mg_qol15r",
    "mg_qol15",
    "steps",
    "corticosteroid",
    "anti_achr",
    "anti_musk",
    "anti_lrp4",
    "cd19_b_cells",
    "b_cell_subsets",
    "car_t_cells",
    "igg",
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteDefinition(Strict):
    code: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9._-]+$")
    name: str = Field(min_length=1, max_length=200)
    time_zone: IanaTimeZone | None = None


class DayWindow(Strict):
    start_day: int = Field(ge=-365, le=3650)
    end_day: int = Field(ge=-365, le=3650)

    @model_validator(mode="after")
    def _ordered(self) -> DayWindow:
        if self.end_day < self.start_day:
            raise ValueError("end_day must not be before start_day")
        return self


class VisitWindow(Strict):
    """Calendar days a visit may happen before and after its target day (both inclusive)."""

    before_days: int = Field(default=3, ge=0, le=60)
    after_days: int = Field(default=3, ge=0, le=60)


class VisitSchedule(Strict):
    """Clinic visits every ``interval_days`` from ``first_day``, up to ``count`` or ``end_day``."""

    interval_days: int = Field(default=28, ge=1, le=365)
    first_day: int = Field(default=0, ge=-365, le=365)
    count: int | None = Field(default=None, ge=1, le=200)
    end_day: int | None = Field(default=None, ge=0, le=3650)
    window: VisitWindow = VisitWindow()
    screening: DayWindow | None = None

    @model_validator(mode="after")
    def _one_end(self) -> VisitSchedule:
        if (self.count is None) == (self.end_day is None):
            raise ValueError("give exactly one of count or end_day")
        if self.end_day is not None and self.end_day < self.first_day:
            raise ValueError("end_day must not be before first_day")
        if self.screening is not None and self.screening.end_day >= self.first_day:
            raise ValueError("the screening window must end before the first visit")
        return self

    def visit_days(self) -> list[int]:
        """Target days of the clinic visits, relative to day 0."""
        if self.count is not None:
            return [self.first_day + i * self.interval_days for i in range(self.count)]
        assert self.end_day is not None
        return list(range(self.first_day, self.end_day + 1, self.interval_days))


class InfusionCycle(Strict):
    cycle: int = Field(ge=1, le=100)
    start_day: int = Field(ge=0, le=3650)
    duration_days: int = Field(ge=1, le=120)
    dose: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    unit: str | None = Field(default=None, max_length=40)

    @property
    def end_day(self) -> int:
        return self.start_day + self.duration_days - 1


def _tag_required(schema: dict[str, Any]) -> None:
    """The dosing variants default their ``pattern`` tag, but the discriminated union needs it
    in the request: say so in the JSON Schema (and the OpenAPI document)."""
    schema["required"] = ["pattern", *(r for r in schema.get("required", []) if r != "pattern")]


class ContinuousInfusionCycles(Strict):
    model_config = ConfigDict(json_schema_extra=_tag_required)

    pattern: Literal["continuous_infusion_cycles"] = "continuous_infusion_cycles"
    product: str = Field(min_length=1, max_length=120)
    cycles: list[InfusionCycle] = Field(min_length=1, max_length=100)

    @model_validator(mode="after")
    def _sequential(self) -> ContinuousInfusionCycles:
        for i, (prev, nxt) in enumerate(zip(self.cycles, self.cycles[1:], strict=False), 2):
            if nxt.cycle != i or prev.cycle != i - 1:
                raise ValueError("cycles must be numbered 1, 2, 3 ... in order")
            if nxt.start_day <= prev.end_day:
                raise ValueError(f"cycle {nxt.cycle} starts before cycle {prev.cycle} ends")
        if self.cycles[0].cycle != 1:
            raise ValueError("cycles must be numbered 1, 2, 3 ... in order")
        return self

    def administration_days(self) -> list[int]:
        return [c.start_day for c in self.cycles]


class SingleInfusion(Strict):
    model_config = ConfigDict(json_schema_extra=_tag_required)

    pattern: Literal["single_infusion"] = "single_infusion"
    product: str = Field(min_length=1, max_length=120)
    day: int = Field(default=0, ge=0, le=365)

    def administration_days(self) -> list[int]:
        return [self.day]


class RepeatedDoses(Strict):
    """``count`` doses every ``interval_days`` from ``first_day``, within ``period_end_day``."""

    model_config = ConfigDict(json_schema_extra=_tag_required)

    pattern: Literal["repeated_doses"] = "repeated_doses"
    product: str = Field(min_length=1, max_length=120)
    interval_days: int = Field(ge=1, le=365)
    count: int = Field(ge=1, le=500)
    first_day: int = Field(default=0, ge=0, le=365)
    period_end_day: int | None = Field(default=None, ge=0, le=3650)
    route: str | None = Field(default=None, max_length=40)

    @model_validator(mode="after")
    def _fits(self) -> RepeatedDoses:
        last = self.first_day + (self.count - 1) * self.interval_days
        if self.period_end_day is not None and last > self.period_end_day:
            raise ValueError(f"the last dose (day {last}) falls after period_end_day")
        return self

    def administration_days(self) -> list[int]:
        return [self.first_day + i * self.interval_days for i in range(self.count)]


Dosing = Annotated[
    ContinuousInfusionCycles | SingleInfusion | RepeatedDoses, Field(discriminator="pattern")
]


class DoseLevel(Strict):
    code: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9._-]+$")
    label: str = Field(min_length=1, max_length=200)
    dose: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    unit: str | None = Field(default=None, max_length=40)


class InstrumentPlan(Strict):
    instrument: Instrument
    source: Literal["diary", "clinic", "lab", "wearable"]
    #: ``every_visit`` for clinic data; ``daily`` / ``weekly`` for the diary; ``monthly`` for labs.
    when: Literal["every_visit", "daily", "weekly", "monthly", "baseline_and_end"] = "every_visit"


class DiaryPlan(Strict):
    mg_adl_every_days: int = Field(default=7, ge=1, le=28)
    #: MG-ADL recall period; MDCalc advises the same window each time (instruments.md 1.1).
    recall_period_days: int = Field(default=7, ge=1, le=30)
    daily_symptoms: bool = True
    medications: bool = True
    steps: bool = False
    #: An entry received this long after it was recorded is flagged ``late``.
    late_after_hours: int = Field(default=72, ge=1, le=24 * 60)
    #: Days after an entry's diary date during which the participant may correct it.
    edit_window_days: int = Field(default=7, ge=0, le=365)
    #: Step sources in order of preference for a day's value; else the largest total counts.
    steps_preferred_sources: list[str] = Field(default_factory=list, max_length=20)

    @property
    def cadence_days(self) -> int:
        """Days per expected diary period: daily when symptoms are daily, else the MG-ADL's."""
        return 1 if self.daily_symptoms else self.mg_adl_every_days


class BaselineRule(Strict):
    """Default: the last value on or before day 0 within the screening window (issue 4)."""

    kind: Literal["last_on_or_before_day0", "mean_of_screening"] = "last_on_or_before_day0"
    lookback_days: int = Field(default=28, ge=0, le=365)


class OcularShareRule(Strict):
    """Ocular share of MG-ADL (instruments.md 1.4): ``share < max``, ``<=`` if inclusive."""

    max_share: float = Field(default=0.5, gt=0, le=1, allow_inf_nan=False)
    inclusive: bool = False


class RelapseRule(Strict):
    """What counts as a relapse for "proportion without relapse" (study outcomes).

    Source: trials.md section 3 (HN2301) registers "proportions without ... relapse" but defines
    no relapse; instruments.md has no relapse definition either (the nearest rules, worsening in
    1.7 and the MGFA "Exacerbation" status in 5.2, are tagged [U]). So the rule is a protocol
    setting. Relapse is judged on MG-ADL (diary and clinic values together) and only after a
    response, i.e. after the first fall of at least ``mg_adl_improvement_delta`` below baseline
    (the responder definition, instruments.md 1.5 [C]):

    - ``loss_of_improvement`` (default): ``confirmations`` consecutive values that are no longer
      ``mg_adl_improvement_delta`` below baseline - the response is lost. Mirrors the responder
      definition; confirmation on the next entry as for worsening (1.7 [U]).
    - ``rise_from_nadir``: ``confirmations`` consecutive values at least ``rise_delta`` above the
      lowest value since the response (the MCID, 1.5 [C], mirrored as in 1.7 [U]).
    """

    kind: Literal["loss_of_improvement", "rise_from_nadir"] = "loss_of_improvement"
    rise_delta: int = Field(default=2, ge=1, le=24)
    confirmations: int = Field(default=2, ge=1, le=5)


class CorticosteroidReductionRule(Strict):
    """What counts as "corticosteroid dose reduction" (study outcomes).

    Source: trials.md section 3 (HN2301) registers "proportion ... with corticosteroid dose
    reduction" without a threshold; instruments.md has none ([U] for this service). Default: a
    fall of the daily prednisone-equivalent dose of at least 50 % from baseline - the primary
    end point of a steroid-sparing MG trial, "the percent of patients achieving a 50% or greater
    reduction in CS dose at week 39 from baseline", read in the pubcompare.ai methods excerpt
    that instruments.md lists as S20 ([S]: secondary; check against the sponsor's protocol).
    Only participants taking a corticosteroid at baseline (prednisone-equivalent dose above 0)
    are in the denominator.
    """

    min_reduction_percent: float = Field(default=50, gt=0, le=100, allow_inf_nan=False)


class EfficacyThresholds(Strict):
    """Responder, MSE, worsening, relapse and corticosteroid-reduction settings
    (instruments.md 1.5-1.7; relapse and corticosteroid reduction: see their rules)."""

    mg_adl_improvement_delta: int = Field(default=2, ge=1, le=24)  # 1.5 [C]
    qmg_improvement_delta: int = Field(default=3, ge=1, le=39)  # 2 / issue 4 [U baseline-dep.]
    mgc_improvement_delta: int = Field(default=3, ge=1, le=50)
    sustained_response_weeks: int = Field(default=4, ge=1, le=52)  # 1.5 ADAPT [C]
    mse_max_mg_adl: int = Field(default=1, ge=0, le=24)  # 1.6 [C]
    mse_persistence_days: int = Field(default=0, ge=0, le=365)  # 1.6: per protocol
    worsening_delta: int = Field(default=2, ge=1, le=24)  # 1.7 [U]: setting
    worsening_confirmations: int = Field(default=2, ge=1, le=5)
    ocular_share: OcularShareRule = OcularShareRule()
    relapse: RelapseRule = RelapseRule()  # [U]: setting
    corticosteroid_reduction: CorticosteroidReductionRule = CorticosteroidReductionRule()  # [U]


class QmgSettings(Strict):
    """The [U] rows of the QMG threshold table (instruments.md 2.1, 12 item 2), per protocol.

    Unset, a raw measurement that needs them is refused; the item's grade can still be given.
    """

    vital_capacity_percent: tuple[float, float, float] | None = Field(
        default=None, description="Lower bounds (% predicted) of grades 0, 1, 2, descending."
    )
    leg_grade_1_min_seconds: Literal[30, 31] | None = None


class RiskWindow(Strict):
    """Days after an administration when a fever is read as possible CRS with higher priority."""

    after: Literal["each_administration", "first_administration", "dose_step_up"]
    start_day: int = Field(default=0, ge=0, le=60)
    end_day: int = Field(ge=0, le=120)

    @model_validator(mode="after")
    def _ordered(self) -> RiskWindow:
        if self.end_day < self.start_day:
            raise ValueError("end_day must not be before start_day")
        return self


#: The safety rules a protocol can switch (app/safety/rules.py implements each; a test checks
#: that the two lists agree).
SAFETY_RULE_IDS = (
    "crs.fever",
    "crs.fever_hypotension",
    "crs.fever_hypoxia",
    "crs.constitutional",
    "crs.temperature_prompt",
    "icans.neuro_symptom",
    "icans.seizure",
    "mg.breathing",
    "mg.feeding_tube",
    "mg.bulbar_with_breathing",
    "mg.bulbar_rise",
    "mg.total_worsening",
)
RuleMode = Literal["active", "monitor", "off"]


class SafetySettings(Strict):
    """Thresholds and modes of the safety rules (issue 6; instruments.md 1.7-1.8 and 6).

    ``fever_threshold_c`` 38.0 is the ASTCT fever (6.1 [C]); ``hypotension_systolic_mmhg`` 90 is
    the operational cut-off that 6.1 tags [U]; ``spo2_min_percent`` 92 is the issue's default.
    ``rule_modes``: ``active`` (default) raises signals and alerts, ``monitor`` records signals
    without alerting, ``off`` skips the rule.
    """

    fever_threshold_c: float = Field(default=38.0, ge=37.0, le=40.0, allow_inf_nan=False)
    spo2_min_percent: int = Field(default=92, ge=80, le=99)
    hypotension_systolic_mmhg: int = Field(default=90, ge=60, le=120)
    tachycardia_bpm: int = Field(default=100, ge=80, le=160)
    risk_windows: list[RiskWindow] = Field(default_factory=list, max_length=20)
    dlt_observation_days: int | None = Field(default=None, ge=1, le=365)
    ae_grading: Literal["ctcae_v5"] = "ctcae_v5"
    ae_follow_up_days: int | None = Field(default=None, ge=1, le=3650)
    #: Findings of one category within this many hours of a signal's latest evidence join it.
    signal_dedup_hours: int = Field(default=24, ge=1, le=24 * 14)
    #: Observations this close in time are read together (a fever and a low SpO2 an hour apart).
    evidence_window_hours: int = Field(default=24, ge=1, le=72)
    #: A temperature prompt lapses after this many hours without a reading.
    prompt_expiry_hours: int = Field(default=12, ge=1, le=72)
    #: A neurological symptom (e.g. tremor) is new if not reported in this many days before.
    new_symptom_lookback_days: int = Field(default=14, ge=1, le=90)
    rule_modes: dict[str, RuleMode] = Field(default_factory=dict, max_length=len(SAFETY_RULE_IDS))

    @model_validator(mode="after")
    def _known_rules(self) -> SafetySettings:
        unknown = sorted(set(self.rule_modes) - set(SAFETY_RULE_IDS))
        if unknown:
            raise ValueError(f"unknown safety rules {unknown}; known: {list(SAFETY_RULE_IDS)}")
        return self

    def mode_of(self, rule_id: str) -> RuleMode:
        return self.rule_modes.get(rule_id, "active")


class Washout(Strict):
    therapy: str = Field(min_length=1, max_length=120)
    min_days: int = Field(ge=1, le=3650)


class Eligibility(Strict):
    """Screening thresholds as registered; shown to investigators, not enforced automatically."""

    age_min: int | None = Field(default=None, ge=0, le=120)
    age_max: int | None = Field(default=None, ge=0, le=120)
    mgfa_classes: list[str] = Field(default_factory=list, max_length=20)
    antibodies_any_of: list[Literal["anti_achr", "anti_musk", "anti_lrp4"]] = Field(
        default_factory=list
    )
    mg_adl_min: int | None = Field(default=None, ge=0, le=24)
    qmg_min: int | None = Field(default=None, ge=0, le=39)
    score_rule: Literal["mg_adl", "qmg", "mg_adl_or_qmg", "mg_adl_and_qmg"] | None = None
    ocular_share: OcularShareRule | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Eligibility:
        if self.age_min is not None and self.age_max is not None and self.age_max < self.age_min:
            raise ValueError("age_max must not be below age_min")
        if self.score_rule is not None:
            if "mg_adl" in self.score_rule and self.mg_adl_min is None:
                raise ValueError(f"score_rule {self.score_rule} needs mg_adl_min")
            if "qmg" in self.score_rule and self.qmg_min is None:
                raise ValueError(f"score_rule {self.score_rule} needs qmg_min")
        return self


class ProtocolDefinition(Strict):
    """Everything about a trial the service needs, in one document."""

    schema_version: Literal[1] = 1
    registry_id: str | None = Field(default=None, min_length=1, max_length=40, pattern=r"^\S+$")
    title: str = Field(min_length=1, max_length=300)
    time_zone: IanaTimeZone
    sites: list[SiteDefinition] = Field(min_length=1, max_length=500)
    day0_event: Literal["first_administration", "enrolment", "set_by_investigator"] = (
        "first_administration"
    )
    visits: VisitSchedule
    dosing: Dosing
    dose_levels: list[DoseLevel] = Field(default_factory=list, max_length=50)
    instruments: list[InstrumentPlan] = Field(min_length=1, max_length=50)
    diary: DiaryPlan = DiaryPlan()
    baseline: BaselineRule = BaselineRule()
    efficacy: EfficacyThresholds = EfficacyThresholds()
    qmg: QmgSettings = QmgSettings()
    safety: SafetySettings = SafetySettings()
    washouts: list[Washout] = Field(default_factory=list, max_length=50)
    eligibility: Eligibility = Eligibility()
    follow_up_end_day: int = Field(ge=0, le=3650)
    notes: list[str] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _consistent(self) -> ProtocolDefinition:
        codes = [s.code for s in self.sites]
        if len(set(codes)) != len(codes):
            raise ValueError("site codes must be unique")
        levels = [d.code for d in self.dose_levels]
        if len(set(levels)) != len(levels):
            raise ValueError("dose level codes must be unique")
        if self.visits.visit_days()[-1] > self.follow_up_end_day:
            raise ValueError("the last visit falls after follow_up_end_day")
        return self

    def administration_days(self) -> list[int]:
        return self.dosing.administration_days()
