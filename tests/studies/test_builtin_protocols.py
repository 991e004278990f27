"""The built-in protocol definitions against shared/domain/trials.md, and definition validation."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from app.studies.builtin import (
    BLINATUMOMAB_CASE_REPORT,
    BLINATUMOMAB_NCT06836973,
    BUILTIN_PROTOCOLS,
    CAR_NK_NCT07243366,
    CAR_T_CD19_BCMA_NCT06371040,
    HN2301,
    builtin_protocol,
)
from app.studies.protocol import (
    ContinuousInfusionCycles,
    ProtocolDefinition,
    RepeatedDoses,
    SingleInfusion,
    VisitSchedule,
)


def _instruments(definition: ProtocolDefinition) -> set[tuple[str, str, str]]:
    return {(p.instrument, p.source, p.when) for p in definition.instruments}


def _names(definition: ProtocolDefinition) -> set[str]:
    return {p.instrument for p in definition.instruments}


def test_all_five_trials_have_a_valid_builtin() -> None:
    """trials.md opening: four registered studies and one case report, each as data."""
    assert len(BUILTIN_PROTOCOLS) == 5
    for key in BUILTIN_PROTOCOLS:
        definition = builtin_protocol(key)
        # Round-trips through JSON exactly, as stored in protocol_version.definition.
        dumped = definition.model_dump(mode="json")
        assert ProtocolDefinition.model_validate(dumped).model_dump(mode="json") == dumped
    registry_ids = {builtin_protocol(k).registry_id for k in BUILTIN_PROTOCOLS}
    assert {"NCT06836973", "NCT06371040", "NCT07243366"} <= registry_ids


class TestBlinatumomabNCT06836973:
    """trials.md section 1 - Blinatumomab in refractory MG (NCT06836973)."""

    definition = ProtocolDefinition.model_validate(BLINATUMOMAB_NCT06836973)

    def test_two_five_day_cycles_one_week_apart(self) -> None:
        # "two cycles ... each a 5-day continuous infusion, with a 1-week interval between cycles
        # (cycle 1 days 1-5, cycle 2 days 13-17 ...)": day 0 is registry day 1.
        dosing = self.definition.dosing
        assert isinstance(dosing, ContinuousInfusionCycles)
        assert dosing.product == "blinatumomab"
        assert [(c.cycle, c.duration_days) for c in dosing.cycles] == [(1, 5), (2, 5)]
        first, second = dosing.cycles
        assert (first.start_day, first.end_day) == (0, 4)  # registry days 1-5
        assert second.start_day - first.start_day == 12
        assert (second.start_day + 1, second.end_day + 1) == (13, 17)  # registry days 13-17
        # One full week without infusion between them.
        assert second.start_day - first.end_day - 1 == 7
        assert self.definition.administration_days() == [0, 12]
        assert self.definition.day0_event == "first_administration"

    def test_clinic_visit_every_four_weeks_to_six_months(self) -> None:
        # "a clinic visit every 4 weeks from baseline to 6 months (weeks 0, 4, 8, ... 24)"
        days = self.definition.visits.visit_days()
        assert days == [0, 28, 56, 84, 112, 140, 168]
        assert [d // 7 for d in days] == [0, 4, 8, 12, 16, 20, 24]
        assert self.definition.follow_up_end_day == 168

    def test_outcome_instruments(self) -> None:
        # Primary MG-ADL; secondary QMG, MSE, MG-QoL15, MG Composite, monthly antibody titres.
        names = _names(self.definition)
        assert {"mg_adl", "qmg", "mgc", "mg_qol15"} <= names
        assert "mg_qol15r" not in names  # this registry uses the 0-60 MG-QoL15
        plans = _instruments(self.definition)
        for antibody in ("anti_achr", "anti_musk", "anti_lrp4"):
            assert (antibody, "lab", "monthly") in plans
        assert ("mg_adl", "diary", "weekly") in plans
        assert self.definition.efficacy.mse_max_mg_adl == 1  # MSE: MG-ADL <= 1

    def test_diary_records_symptoms_and_medications(self) -> None:
        # "the patient records symptoms and the types and doses of medications"
        assert self.definition.diary.daily_symptoms is True
        assert self.definition.diary.medications is True


class TestCarTNCT06371040:
    """trials.md section 2 - CD19-BCMA CAR-T (NCT06371040 wording)."""

    definition = ProtocolDefinition.model_validate(CAR_T_CD19_BCMA_NCT06371040)

    def test_single_infusion_on_day_zero_with_dose_levels(self) -> None:
        # "a single infusion day (day 0)" and "dose level (cohort) per participant"
        dosing = self.definition.dosing
        assert isinstance(dosing, SingleInfusion)
        assert dosing.day == 0
        assert self.definition.administration_days() == [0]
        assert [d.code for d in self.definition.dose_levels] == ["DL1", "DL2", "DL3"]

    def test_dlt_window_after_infusion(self) -> None:
        # "dose-limiting-toxicity observation windows for CRS-like events after infusion"
        safety = self.definition.safety
        assert safety.dlt_observation_days is not None
        assert safety.dlt_observation_days > 0
        assert any(w.after == "each_administration" for w in safety.risk_windows)

    def test_eligibility(self) -> None:
        # "18-80 years; positive AChR, MuSK or LRP4 ...; MGFA class IIa-IVa; QMG >= 11 or
        # MG-ADL >= 5 ..., with the ocular part no more than 50 % of the score"
        e = self.definition.eligibility
        assert (e.age_min, e.age_max) == (18, 80)
        assert set(e.antibodies_any_of) == {"anti_achr", "anti_musk", "anti_lrp4"}
        assert e.mgfa_classes[0] == "IIa"
        assert e.mgfa_classes[-1] == "IVa"
        assert (e.qmg_min, e.mg_adl_min, e.score_rule) == (11, 5, "mg_adl_or_qmg")
        assert e.ocular_share is not None
        # "no more than 50 %": exactly half is still eligible.
        assert (e.ocular_share.max_share, e.ocular_share.inclusive) == (0.5, True)


class TestHN2301:
    """trials.md section 3 - HN2301 (in vivo CAR-T)."""

    definition = ProtocolDefinition.model_validate(HN2301)

    def test_follow_up_to_twelve_months_with_screening_from_day_minus_28(self) -> None:
        days = self.definition.visits.visit_days()
        assert days[0] == 0
        assert 364 <= days[-1] <= 366  # month 12
        assert self.definition.follow_up_end_day >= days[-1]
        assert self.definition.follow_up_end_day >= 364
        screening = self.definition.visits.screening
        assert screening is not None
        assert (screening.start_day, screening.end_day) == (-28, -1)

    def test_efficacy_instruments_and_responder_deltas(self) -> None:
        # "change from baseline of MG-ADL, MGC, QMG and MG-QoL15r"; ">= 2-point MG-ADL reduction,
        # >= 3-point MGC reduction, >= 3-point QMG reduction"
        assert {"mg_adl", "mgc", "qmg", "mg_qol15r"} <= _names(self.definition)
        efficacy = self.definition.efficacy
        assert (
            efficacy.mg_adl_improvement_delta,
            efficacy.mgc_improvement_delta,
            efficacy.qmg_improvement_delta,
        ) == (2, 3, 3)
        # Biomarkers: CAR expression, B-cell counts and subsets; corticosteroid dose reduction.
        assert {"car_t_cells", "cd19_b_cells", "b_cell_subsets", "corticosteroid"} <= _names(
            self.definition
        )

    def test_adverse_events_ctcae_over_three_months(self) -> None:
        # "incidence and severity of adverse events graded by CTCAE v5.0 over 3 months"
        assert self.definition.safety.ae_grading == "ctcae_v5"
        assert self.definition.safety.ae_follow_up_days == 90

    def test_standard_instrument_ranges_are_stated(self) -> None:
        # "The service scores the standard instruments and must say so."
        notes = " ".join(self.definition.notes)
        assert "QMG 0-39" in notes
        assert "MG-QoL15r 0-30" in notes


class TestCarNkNCT07243366:
    """trials.md section 4 - Allogeneic CD19-CAR-NK cells (NCT07243366)."""

    definition = ProtocolDefinition.model_validate(CAR_NK_NCT07243366)

    def test_twelve_doses_every_two_weeks_in_a_24_week_period(self) -> None:
        # "once every two weeks for a 24-week treatment period (12 doses at weeks 0, 2, ... 22 if
        # week 24 closes the period; the protocol definition must state which)"
        dosing = self.definition.dosing
        assert isinstance(dosing, RepeatedDoses)
        assert (dosing.interval_days, dosing.count) == (14, 12)
        days = self.definition.administration_days()
        assert [d // 7 for d in days] == list(range(0, 23, 2))
        assert dosing.period_end_day == 168  # stated: week 24 closes the period, no dose there
        assert 168 not in days

    def test_eligibility(self) -> None:
        # "18-65 years, MGFA II-IV, AChR antibody positive, MG-ADL >= 6 with the ocular sub-score
        # < 50 % of the total"
        e = self.definition.eligibility
        assert (e.age_min, e.age_max) == (18, 65)
        assert e.antibodies_any_of == ["anti_achr"]
        assert e.mgfa_classes == ["II", "III", "IV"]
        assert (e.mg_adl_min, e.score_rule) == (6, "mg_adl")
        assert e.ocular_share is not None
        # "< 50 %": exactly half is not eligible.
        assert (e.ocular_share.max_share, e.ocular_share.inclusive) == (0.5, False)

    def test_washouts_in_days(self) -> None:
        # "IVMP, IVIG or plasma exchange within 2 months; rituximab within 6 months, eculizumab
        # within 3 months, efgartigimod within 1 month; live vaccines within 3 months"
        washouts = {w.therapy: w.min_days for w in self.definition.washouts}
        assert washouts == {
            "IV methylprednisolone": 60,
            "IVIG": 60,
            "plasma exchange": 60,
            "rituximab": 182,
            "eculizumab": 91,
            "efgartigimod": 30,
            "live vaccine": 91,
        }


class TestBlinatumomabCaseReport:
    """trials.md section 5 - case report: blinatumomab in two patients (Duesseldorf)."""

    definition = ProtocolDefinition.model_validate(BLINATUMOMAB_CASE_REPORT)

    def test_two_twelve_day_cycles_second_at_a_higher_dose(self) -> None:
        dosing = self.definition.dosing
        assert isinstance(dosing, ContinuousInfusionCycles)
        assert [(c.cycle, c.duration_days) for c in dosing.cycles] == [(1, 12), (2, 12)]
        assert dosing.cycles[1].start_day > dosing.cycles[0].end_day
        assert any(w.after == "dose_step_up" for w in self.definition.safety.risk_windows)

    def test_steps_are_collected(self) -> None:
        # "Daily step counts from smartwatches rose with clinical improvement: wearable data are
        # an outcome."
        assert ("steps", "wearable", "daily") in _instruments(self.definition)
        assert self.definition.diary.steps is True
        assert {"mg_adl", "qmg"} <= _names(self.definition)


# --- protocol-definition validation ---------------------------------------------------------


def _base(**overrides: Any) -> dict[str, Any]:
    data = copy.deepcopy(BLINATUMOMAB_NCT06836973)
    data.update(overrides)
    return data


def _error_text(data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        ProtocolDefinition.model_validate(data)
    return str(info.value)


@pytest.mark.parametrize(
    ("where", "mutate"),
    [
        ("top level", lambda d: d.update(sponsor_secret="x")),
        ("visits", lambda d: d["visits"].update(every="month")),
        ("dosing", lambda d: d["dosing"].update(dose_mg=5)),
        ("site", lambda d: d["sites"][0].update(address="Main street 1")),
        ("efficacy", lambda d: d.update(efficacy={"mse": 1})),
    ],
)
def test_unknown_fields_are_refused(where: str, mutate: Any) -> None:
    data = _base()
    mutate(data)
    assert "Extra inputs are not permitted" in _error_text(data), where


def test_overlapping_cycles_are_refused() -> None:
    dosing = {
        "pattern": "continuous_infusion_cycles",
        "product": "blinatumomab",
        "cycles": [
            {"cycle": 1, "start_day": 0, "duration_days": 5},
            {"cycle": 2, "start_day": 4, "duration_days": 5},  # day 4 is still cycle 1
        ],
    }
    assert "cycle 2 starts before cycle 1 ends" in _error_text(_base(dosing=dosing))
    dosing["cycles"][1]["start_day"] = 5  # the day after cycle 1 ends is fine
    assert ProtocolDefinition.model_validate(_base(dosing=dosing)).administration_days() == [0, 5]


def test_cycles_must_be_numbered_in_order() -> None:
    dosing = {
        "pattern": "continuous_infusion_cycles",
        "product": "blinatumomab",
        "cycles": [
            {"cycle": 2, "start_day": 0, "duration_days": 5},
            {"cycle": 1, "start_day": 12, "duration_days": 5},
        ],
    }
    assert "numbered 1, 2, 3" in _error_text(_base(dosing=dosing))


@pytest.mark.parametrize(
    "visits",
    [
        {"interval_days": 28},  # neither
        {"interval_days": 28, "count": 7, "end_day": 168},  # both
    ],
)
def test_visits_need_exactly_one_of_count_and_end_day(visits: dict[str, Any]) -> None:
    assert "give exactly one of count or end_day" in _error_text(_base(visits=visits))


@pytest.mark.parametrize("zone", ["CET+1", "UTC+02:00", "Mars/Olympus", "europe/berlin", ""])
def test_invalid_iana_zone_is_refused(zone: str) -> None:
    assert "time_zone" in _error_text(_base(time_zone=zone))


def test_invalid_site_zone_is_refused() -> None:
    sites = [{"code": "A", "name": "A", "time_zone": "GMT+1"}]
    assert "IANA" in _error_text(_base(sites=sites))


def test_duplicate_site_codes_are_refused() -> None:
    sites = [{"code": "SITE-01", "name": "One"}, {"code": "SITE-01", "name": "Two"}]
    assert "site codes must be unique" in _error_text(_base(sites=sites))


def test_duplicate_dose_level_codes_are_refused() -> None:
    levels = [{"code": "DL1", "label": "a"}, {"code": "DL1", "label": "b"}]
    assert "dose level codes must be unique" in _error_text(_base(dose_levels=levels))


def test_last_visit_after_follow_up_end_is_refused() -> None:
    # 7 visits every 28 days end on day 168; a follow-up ending on day 167 cannot hold them.
    assert "the last visit falls after follow_up_end_day" in _error_text(
        _base(follow_up_end_day=167)
    )
    assert ProtocolDefinition.model_validate(_base(follow_up_end_day=168))


def test_repeated_doses_must_fit_the_period() -> None:
    dosing = {**CAR_NK_NCT07243366["dosing"], "count": 14}  # dose 14 on day 182 > 168
    with pytest.raises(ValidationError, match="falls after period_end_day"):
        RepeatedDoses.model_validate(dosing)


def test_screening_must_end_before_the_first_visit() -> None:
    visits = {"interval_days": 28, "count": 7, "screening": {"start_day": -28, "end_day": 0}}
    assert "screening window must end before the first visit" in _error_text(_base(visits=visits))


@pytest.mark.parametrize(
    ("eligibility", "message"),
    [
        ({"age_min": 65, "age_max": 18}, "age_max must not be below age_min"),
        ({"score_rule": "mg_adl_or_qmg", "mg_adl_min": 5}, "qmg_min"),
        ({"score_rule": "mg_adl"}, "mg_adl_min"),
    ],
)
def test_inconsistent_eligibility_is_refused(eligibility: dict[str, Any], message: str) -> None:
    assert message in _error_text(_base(eligibility=eligibility))


@pytest.mark.parametrize("registry_id", ["", "   "])
def test_blank_registry_id_is_refused(registry_id: str) -> None:
    # A blank id would slip past the duplicate check and hit the unique index (a 500).
    assert "registry_id" in _error_text(_base(registry_id=registry_id))


def test_visit_days_by_count() -> None:
    schedule = VisitSchedule(interval_days=28, count=7)
    assert schedule.visit_days() == [0, 28, 56, 84, 112, 140, 168]
    assert VisitSchedule(interval_days=7, first_day=-7, count=3).visit_days() == [-7, 0, 7]


def test_visit_days_by_end_day() -> None:
    # end_day is inclusive; a visit never lands after it.
    assert VisitSchedule(interval_days=28, end_day=168).visit_days() == [
        0,
        28,
        56,
        84,
        112,
        140,
        168,
    ]
    assert VisitSchedule(interval_days=28, end_day=167).visit_days()[-1] == 140
    assert VisitSchedule(interval_days=30, end_day=0).visit_days() == [0]


@st.composite
def _schedules(draw: st.DrawFn) -> VisitSchedule:
    interval = draw(st.integers(1, 365))
    first = draw(st.integers(-365, 365))
    if draw(st.booleans()):
        return VisitSchedule(
            interval_days=interval, first_day=first, count=draw(st.integers(1, 200))
        )
    end = draw(st.integers(max(first, 0), 3650))
    return VisitSchedule(interval_days=interval, first_day=first, end_day=end)


@settings(max_examples=300, deadline=None, database=None)
@given(_schedules())
def test_visit_days_length_and_spacing(schedule: VisitSchedule) -> None:
    days = schedule.visit_days()
    assert days[0] == schedule.first_day
    assert all(b - a == schedule.interval_days for a, b in zip(days, days[1:], strict=False))
    if schedule.count is not None:
        assert len(days) == schedule.count
    else:
        assert schedule.end_day is not None
        assert len(days) == (schedule.end_day - schedule.first_day) // schedule.interval_days + 1
        assert days[-1] <= schedule.end_day < days[-1] + schedule.interval_days
