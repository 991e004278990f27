"""ASTCT 2019 CRS and ICANS grading and the ICE score (app.safety.grading) against
shared/domain/instruments.md 6.1 [C, S31; grade 5 C, S33] and 6.2 [C, S32]."""

from __future__ import annotations

from itertools import product
from typing import get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.safety.grading import (
    GRADING_VERSION,
    ICANS_COMBINATION,
    ICE_PARTS,
    Consciousness,
    CrsInputs,
    GradingInputError,
    Hypotension,
    IcansInputs,
    MotorFindings,
    OxygenSupport,
    RaisedIcp,
    Seizure,
    crs_grade,
    icans_domain_grades,
    icans_grade,
    ice_domain_grade,
    ice_score,
)

HYPOTENSION: tuple[Hypotension, ...] = get_args(Hypotension)
OXYGEN: tuple[OxygenSupport, ...] = get_args(OxygenSupport)
CONSCIOUSNESS: tuple[Consciousness, ...] = get_args(Consciousness)
SEIZURE: tuple[Seizure, ...] = get_args(Seizure)
MOTOR: tuple[MotorFindings, ...] = get_args(MotorFindings)
ICP: tuple[RaisedIcp, ...] = get_args(RaisedIcp)


def test_versions_are_pinned() -> None:
    assert GRADING_VERSION == "astct-2019.1"
    assert ICANS_COMBINATION == "most_severe_domain"


# --- CRS: instruments.md 6.1 [C, S31] -----------------------------------------------------


def test_fever_alone_is_grade_1() -> None:
    """instruments.md 6.1 [C, S31]: 38.4 C, no hypotension, no hypoxia -> grade 1."""
    assert crs_grade(CrsInputs(fever=True)) == 1


def test_fever_with_one_vasopressor_is_grade_3() -> None:
    """instruments.md 6.1 [C, S31]: hypotension requiring one vasopressor -> grade 3."""
    assert crs_grade(CrsInputs(fever=True, hypotension="one_vasopressor")) == 3


def test_after_tocilizumab_afebrile_on_low_flow_oxygen_is_grade_2() -> None:
    """instruments.md 6.1 rule 2 [C, S31]: after anti-cytokine therapy fever is no longer
    required; low-flow nasal cannula -> grade 2."""
    inputs = CrsInputs(fever=False, oxygen="low_flow", after_antipyretic_or_anticytokine=True)
    assert crs_grade(inputs) == 2


def test_the_worse_of_hypotension_and_hypoxia_decides() -> None:
    """instruments.md 6.1 rule 3 [C, S31]: febrile, one vasopressor with low-flow oxygen -> 3."""
    inputs = CrsInputs(fever=True, hypotension="one_vasopressor", oxygen="low_flow")
    assert crs_grade(inputs) == 3


# instruments.md 6.1 [C, S31], the table row by row: (column, value, grade).
HYPOTENSION_ROW = [
    ("none", 1),
    ("fluids_only", 2),  # not requiring vasopressors
    ("one_vasopressor", 3),  # one vasopressor, with or without vasopressin
    ("multiple_vasopressors", 4),  # multiple vasopressors (excluding vasopressin)
]
HYPOXIA_ROW = [
    ("none", 1),
    ("low_flow", 2),  # low-flow nasal cannula <= 6 L/min or blow-by
    ("high_flow", 3),  # high-flow > 6 L/min, facemask, non-rebreather, Venturi
    ("positive_pressure", 4),  # CPAP, BiPAP, intubation and mechanical ventilation
]


@pytest.mark.parametrize(("hypotension", "grade"), HYPOTENSION_ROW)
def test_hypotension_row(hypotension: Hypotension, grade: int) -> None:
    """instruments.md 6.1 [C, S31], "with hypotension" row, febrile, no hypoxia."""
    assert crs_grade(CrsInputs(fever=True, hypotension=hypotension)) == grade


@pytest.mark.parametrize(("oxygen", "grade"), HYPOXIA_ROW)
def test_hypoxia_row(oxygen: OxygenSupport, grade: int) -> None:
    """instruments.md 6.1 [C, S31], "and/or hypoxia" row, febrile, no hypotension."""
    assert crs_grade(CrsInputs(fever=True, oxygen=oxygen)) == grade


@pytest.mark.parametrize(
    ("hypotension", "oxygen"), list(product(HYPOTENSION, OXYGEN)), ids=lambda v: str(v)
)
def test_every_combination_takes_the_more_severe(
    hypotension: Hypotension, oxygen: OxygenSupport
) -> None:
    """instruments.md 6.1 rule 3 [C, S31], all 16 cells, febrile."""
    expected = max(dict(HYPOTENSION_ROW)[hypotension], dict(HYPOXIA_ROW)[oxygen])
    assert crs_grade(CrsInputs(fever=True, hypotension=hypotension, oxygen=oxygen)) == expected


@pytest.mark.parametrize(
    ("hypotension", "oxygen"), list(product(HYPOTENSION, OXYGEN)), ids=lambda v: str(v)
)
def test_without_fever_or_prior_therapy_there_is_no_crs(
    hypotension: Hypotension, oxygen: OxygenSupport
) -> None:
    """instruments.md 6.1 [C, S31]: fever >= 38.0 C is required in every grade (grade 0 = no
    CRS, the module's documented decision)."""
    assert crs_grade(CrsInputs(fever=False, hypotension=hypotension, oxygen=oxygen)) == 0


@pytest.mark.parametrize(
    ("hypotension", "oxygen"), list(product(HYPOTENSION, OXYGEN)), ids=lambda v: str(v)
)
def test_after_therapy_hypotension_and_hypoxia_grade_without_fever(
    hypotension: Hypotension, oxygen: OxygenSupport
) -> None:
    """instruments.md 6.1 rule 2 [C, S31]: after tocilizumab/steroids grade on hypotension
    and/or hypoxia; afebrile with neither is no grade (0, documented decision)."""
    expected = max(dict(HYPOTENSION_ROW)[hypotension], dict(HYPOXIA_ROW)[oxygen])
    inputs = CrsInputs(
        fever=False,
        hypotension=hypotension,
        oxygen=oxygen,
        after_antipyretic_or_anticytokine=True,
    )
    assert crs_grade(inputs) == (0 if expected == 1 else expected)


@pytest.mark.parametrize(("fever", "after"), list(product([True, False], repeat=2)))
def test_death_is_grade_5(fever: bool, after: bool) -> None:
    """instruments.md 6.1 [C, S33]: grade 5 is death."""
    inputs = CrsInputs(fever=fever, after_antipyretic_or_anticytokine=after, death=True)
    assert crs_grade(inputs) == 5


def test_crs_inputs_outside_the_vocabulary_are_refused() -> None:
    with pytest.raises(GradingInputError) as exc:
        CrsInputs(fever=True, hypotension="pressors")  # type: ignore[arg-type]
    assert exc.value.field == "hypotension"
    with pytest.raises(GradingInputError) as exc:
        CrsInputs(fever=True, oxygen="ecmo")  # type: ignore[arg-type]
    assert exc.value.field == "oxygen"


crs_inputs = st.builds(
    CrsInputs,
    fever=st.booleans(),
    hypotension=st.sampled_from(HYPOTENSION),
    oxygen=st.sampled_from(OXYGEN),
    after_antipyretic_or_anticytokine=st.booleans(),
    death=st.booleans(),
)


def _worse(inputs: CrsInputs, **changes: object) -> CrsInputs:
    values = {
        "fever": inputs.fever,
        "hypotension": inputs.hypotension,
        "oxygen": inputs.oxygen,
        "after_antipyretic_or_anticytokine": inputs.after_antipyretic_or_anticytokine,
        "death": inputs.death,
    }
    values.update(changes)
    return CrsInputs(**values)  # type: ignore[arg-type]


@given(crs_inputs, st.data())
def test_crs_grade_is_monotone_in_every_input(inputs: CrsInputs, data: st.DataObject) -> None:
    """A worse finding in any one input never lowers the grade (instruments.md 6.1)."""
    grade = crs_grade(inputs)
    assert 0 <= grade <= 5
    hypo = data.draw(st.sampled_from(HYPOTENSION[HYPOTENSION.index(inputs.hypotension) :]))
    oxygen = data.draw(st.sampled_from(OXYGEN[OXYGEN.index(inputs.oxygen) :]))
    assert crs_grade(_worse(inputs, hypotension=hypo)) >= grade
    assert crs_grade(_worse(inputs, oxygen=oxygen)) >= grade
    assert crs_grade(_worse(inputs, fever=True)) >= grade
    assert crs_grade(_worse(inputs, after_antipyretic_or_anticytokine=True)) >= grade
    assert crs_grade(_worse(inputs, death=True)) == 5


# --- ICE score: instruments.md 6.2 [C, S32] -----------------------------------------------


def test_ice_parts_total_ten() -> None:
    """instruments.md 6.2 [C, S32]: orientation 4, naming 3, commands 1, writing 1,
    attention 1 = 10 points."""
    assert ICE_PARTS == {"orientation": 4, "naming": 3, "commands": 1, "writing": 1, "attention": 1}
    assert ice_score(orientation=4, naming=3, commands=1, writing=1, attention=1) == 10
    assert ice_score(orientation=0, naming=0, commands=0, writing=0, attention=0) == 0
    assert ice_score(orientation=3, naming=2, commands=1, writing=0, attention=1) == 7


@pytest.mark.parametrize(("part", "maximum"), list(ICE_PARTS.items()))
def test_ice_parts_outside_their_range_are_refused(part: str, maximum: int) -> None:
    """instruments.md 6.2 [C, S32]: each part's points range."""
    parts = dict.fromkeys(ICE_PARTS, 0)
    for bad in (-1, maximum + 1):
        with pytest.raises(GradingInputError) as exc:
            ice_score(**{**parts, part: bad})
        assert exc.value.field == part
    assert ice_score(**{**parts, part: maximum}) == maximum


@given(
    st.integers(0, 4), st.integers(0, 3), st.integers(0, 1), st.integers(0, 1), st.integers(0, 1)
)
def test_ice_score_is_the_sum_of_its_parts(o: int, n: int, c: int, w: int, a: int) -> None:
    assert (
        ice_score(orientation=o, naming=n, commands=c, writing=w, attention=a) == o + n + c + w + a
    )


# --- ICANS: instruments.md 6.2 [C, S32] ---------------------------------------------------

# ICE domain boundaries: 7-9 G1, 3-6 G2, 0-2 G3, 0 unarousable G4 ([U] parenthetical).
ICE_BOUNDARIES = [(10, 0), (9, 1), (7, 1), (6, 2), (3, 2), (2, 3), (0, 3)]


@pytest.mark.parametrize(("score", "grade"), ICE_BOUNDARIES)
def test_ice_domain_boundaries(score: int, grade: int) -> None:
    """instruments.md 6.2 [C, S32]: ICE 7-9 grade 1, 3-6 grade 2, 0-2 grade 3."""
    assert ice_domain_grade(score) == grade
    assert icans_grade(IcansInputs(ice_score=score)) == grade


def test_ice_zero_unarousable_is_grade_4() -> None:
    """instruments.md 6.2: G4 "0 (unarousable / unable to perform ICE)" - parenthetical [U]."""
    assert ice_domain_grade(0, unarousable=True) == 4
    assert icans_grade(IcansInputs(ice_score=0, unarousable=True)) == 4


def test_unarousable_needs_an_ice_score_of_zero() -> None:
    with pytest.raises(GradingInputError) as exc:
        IcansInputs(ice_score=5, unarousable=True)
    assert exc.value.field == "ice_score"


@pytest.mark.parametrize("score", [-1, 11])
def test_ice_score_outside_0_to_10_is_refused(score: int) -> None:
    with pytest.raises(GradingInputError):
        IcansInputs(ice_score=score)


# Each domain's thresholds (instruments.md 6.2 [C, S32]); the others normal (ICE 10).
DOMAIN_CASES = [
    ("consciousness", "alert", 0),
    ("consciousness", "awakens_spontaneously", 1),
    ("consciousness", "awakens_to_voice", 2),
    ("consciousness", "awakens_only_to_tactile", 3),
    ("consciousness", "vigorous_tactile_or_unarousable", 4),
    ("seizure", "none", 0),
    ("seizure", "rapid_resolution", 3),  # rapid resolution or EEG intervention
    ("seizure", "prolonged_or_non_resolving", 4),  # > 5 min, non-resolving, life-threatening
    ("motor", "none", 0),
    ("motor", "deep_focal_weakness", 4),  # hemiparesis, paraparesis
    ("raised_icp", "none", 0),
    ("raised_icp", "focal_edema", 3),
    ("raised_icp", "diffuse_edema_or_signs", 4),  # diffuse edema, posturing, CN VI, Cushing's
]


@pytest.mark.parametrize(("domain", "value", "grade"), DOMAIN_CASES)
def test_each_domain_threshold(domain: str, value: str, grade: int) -> None:
    """instruments.md 6.2 [C, S32], one table cell per case."""
    inputs = IcansInputs(ice_score=10, **{domain: value})  # type: ignore[arg-type]
    assert icans_domain_grades(inputs)[domain] == grade
    assert icans_grade(inputs) == grade


def test_the_most_severe_domain_decides() -> None:
    """instruments.md 6.2 [U]: the ICANS grade is the most severe domain (the documented
    assumption, ``ICANS_COMBINATION``): ICE 8 (G1) with focal edema (G3) -> 3."""
    inputs = IcansInputs(ice_score=8, consciousness="awakens_to_voice", raised_icp="focal_edema")
    assert icans_domain_grades(inputs) == {
        "ice_score": 1,
        "consciousness": 2,
        "seizure": 0,
        "motor": 0,
        "raised_icp": 3,
    }
    assert icans_grade(inputs) == 3


def test_only_the_documented_combination_is_implemented() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        icans_grade(IcansInputs(ice_score=10), combination="sum")  # type: ignore[arg-type]


def test_icans_inputs_outside_the_vocabulary_are_refused() -> None:
    with pytest.raises(GradingInputError) as exc:
        IcansInputs(ice_score=10, seizure="absence")  # type: ignore[arg-type]
    assert exc.value.field == "seizure"


icans_inputs = st.builds(
    IcansInputs,
    ice_score=st.integers(0, 10),
    consciousness=st.sampled_from(CONSCIOUSNESS),
    seizure=st.sampled_from(SEIZURE),
    motor=st.sampled_from(MOTOR),
    raised_icp=st.sampled_from(ICP),
)


@given(icans_inputs, st.data())
def test_icans_grade_is_monotone_in_every_domain(inputs: IcansInputs, data: st.DataObject) -> None:
    """A worse finding in any domain never lowers the grade; a lower ICE score never does."""
    grade = icans_grade(inputs)
    assert 0 <= grade <= 4

    def worse(**changes: object) -> int:
        values = {
            "ice_score": inputs.ice_score,
            "consciousness": inputs.consciousness,
            "seizure": inputs.seizure,
            "motor": inputs.motor,
            "raised_icp": inputs.raised_icp,
        }
        values.update(changes)
        return icans_grade(IcansInputs(**values))  # type: ignore[arg-type]

    assert worse(ice_score=data.draw(st.integers(0, inputs.ice_score))) >= grade
    for name, choices in (
        ("consciousness", CONSCIOUSNESS),
        ("seizure", SEIZURE),
        ("motor", MOTOR),
        ("raised_icp", ICP),
    ):
        current = getattr(inputs, name)
        assert (
            worse(**{name: data.draw(st.sampled_from(choices[choices.index(current) :]))}) >= grade
        )
    assert worse(ice_score=0, unarousable=True) == 4
