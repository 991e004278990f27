"""QMG scoring and measurement conversion against shared/domain/instruments.md section 2.

Every threshold case names its instruments.md 2.1 row; [U] rows are tested only through
``QmgThresholds`` and are refused when unset (section 12, item 2).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.scores.instruments import qmg
from app.scores.instruments.qmg import (
    COMMONLY_CITED_THRESHOLDS,
    DEFAULT_THRESHOLDS,
    INSTRUMENT,
    ITEM_KEYS,
    ITEMS,
    VERSION,
    QmgItemError,
    QmgThresholds,
    QmgThresholdUnsetError,
    grade_from_measurements,
    merge_grades,
    score,
    score_mixed,
)

INSTRUMENTS_MD = Path("/work/shared/domain/instruments.md")
needs_md = pytest.mark.skipif(
    not INSTRUMENTS_MD.exists(), reason="shared/domain/instruments.md not present"
)

# api-contract.md: QMG item keys, in order.
EXPECTED_KEYS = (
    "diplopia",
    "ptosis",
    "facial_muscles",
    "swallowing",
    "speech",
    "right_arm",
    "left_arm",
    "vital_capacity",
    "right_grip",
    "left_grip",
    "head_lift",
    "right_leg",
    "left_leg",
)

# Row labels of the instruments.md 2.1 table, cited by the threshold cases below.
DIPLOPIA = "Double vision on lateral gaze, right or left (seconds)"
PTOSIS = "Ptosis on upward gaze (seconds)"
FACIAL = "Facial muscles (eyelid closure)"
SWALLOWING = "Swallowing 4 oz (½ cup) water"
SPEECH = "Speech after counting aloud 1→50 (onset of dysarthria)"
RIGHT_ARM = "Right arm outstretched, 90° sitting (seconds)"
LEFT_ARM = "Left arm outstretched, 90° sitting (seconds)"
VITAL_CAPACITY = "Vital capacity (% predicted)"
RIGHT_GRIP_MALE = "Right-hand grip (kg), male"
RIGHT_GRIP_FEMALE = "Right-hand grip (kg), female"
LEFT_GRIP_MALE = "Left-hand grip (kg), male"
LEFT_GRIP_FEMALE = "Left-hand grip (kg), female"
HEAD = "Head lifted 45° supine (seconds)"
RIGHT_LEG = "Right leg outstretched 45° supine (seconds)"
LEFT_LEG = "Left leg outstretched 45° supine (seconds)"

ROW_ITEM: dict[str, tuple[str, str | None]] = {
    DIPLOPIA: ("diplopia", None),
    PTOSIS: ("ptosis", None),
    FACIAL: ("facial_muscles", None),
    SWALLOWING: ("swallowing", None),
    SPEECH: ("speech", None),
    RIGHT_ARM: ("right_arm", None),
    LEFT_ARM: ("left_arm", None),
    VITAL_CAPACITY: ("vital_capacity", None),
    RIGHT_GRIP_MALE: ("right_grip", "male"),
    RIGHT_GRIP_FEMALE: ("right_grip", "female"),
    LEFT_GRIP_MALE: ("left_grip", "male"),
    LEFT_GRIP_FEMALE: ("left_grip", "female"),
    HEAD: ("head_lift", None),
    RIGHT_LEG: ("right_leg", None),
    LEFT_LEG: ("left_leg", None),
}


def _grades(**grades: int) -> dict[str, Any]:
    return {key: grades.get(key, 0) for key in EXPECTED_KEYS}


def _convert(
    key: str,
    value: Any,
    sex: Any = None,
    thresholds: QmgThresholds = DEFAULT_THRESHOLDS,
) -> int:
    return grade_from_measurements({key: value}, sex=sex, thresholds=thresholds)[key]


# --- constants and items --------------------------------------------------------------------


def test_items_are_the_thirteen_contract_keys_in_order() -> None:
    """instruments.md 2.1 caveats: 13 scored items, grip once per hand, VC included."""
    assert ITEM_KEYS == EXPECTED_KEYS
    assert [item.number for item in ITEMS] == list(range(1, 14))


def test_units_of_the_raw_measurements() -> None:
    """instruments.md 2.1: the unit each row is measured in."""
    assert {item.key: item.unit for item in ITEMS} == {
        "diplopia": "s",
        "ptosis": "s",
        "facial_muscles": "grade",
        "swallowing": "grade",
        "speech": "count",
        "right_arm": "s",
        "left_arm": "s",
        "vital_capacity": "% predicted",
        "right_grip": "kg",
        "left_grip": "kg",
        "head_lift": "s",
        "right_leg": "s",
        "left_leg": "s",
    }


def test_instrument_and_version_constants() -> None:
    assert INSTRUMENT == "qmg"
    assert VERSION == "qmg-barohn-1998.v1"
    assert qmg.TOTAL_MAX == 39  # instruments.md 2: 0-39 (MGTX, S16; QMGSS, S17)


def test_default_thresholds_assume_nothing_unconfirmed() -> None:
    """instruments.md 12 item 2: VC thresholds and the leg boundary are not hard-coded."""
    assert DEFAULT_THRESHOLDS == QmgThresholds()
    assert DEFAULT_THRESHOLDS.vital_capacity_percent is None
    assert DEFAULT_THRESHOLDS.leg_grade_1_min_seconds is None
    # instruments.md 2.1, VC row "[U] >=80 | 65-79 | 50-64 | <50"; leg row "31-99 [U]".
    assert COMMONLY_CITED_THRESHOLDS.vital_capacity_percent == (80, 65, 50)
    assert COMMONLY_CITED_THRESHOLDS.leg_grade_1_min_seconds == 31


# --- score(): every level of every item -----------------------------------------------------


@pytest.mark.parametrize("key", EXPECTED_KEYS)
@pytest.mark.parametrize("grade", [0, 1, 2, 3])
def test_every_grade_of_every_item_counts_its_own_value(key: str, grade: int) -> None:
    """instruments.md 2: each item 0-3, the total is the sum."""
    result = score(_grades(**{key: grade}))
    assert result.total == grade
    assert result.instrument == "qmg"
    assert result.instrument_version == VERSION


def test_total_zero_and_maximum_39() -> None:
    """instruments.md 2: 13 x 3 = 39; no subscores are defined for QMG."""
    assert score(_grades()).total == 0
    result = score(dict.fromkeys(EXPECTED_KEYS, 3))
    assert result.total == 39
    assert result.subscores == {}


def test_worked_example() -> None:
    grades = dict(zip(EXPECTED_KEYS, [3, 2, 1, 0, 1, 2, 3, 0, 1, 2, 3, 1, 0], strict=True))
    assert score(grades).total == 19


@given(st.fixed_dictionaries({key: st.integers(0, 3) for key in EXPECTED_KEYS}))
def test_total_is_the_sum_and_in_range(grades: dict[str, int]) -> None:
    """instruments.md 2: total = sum, 0-39."""
    total = score(grades).total
    assert total == sum(grades.values())
    assert 0 <= total <= 39


@given(
    st.fixed_dictionaries({key: st.integers(0, 3) for key in EXPECTED_KEYS}),
    st.sampled_from(EXPECTED_KEYS),
    st.integers(1, 3),
)
def test_raising_one_item_raises_the_total_by_exactly_that_much(
    grades: dict[str, int], key: str, step: int
) -> None:
    raised = {**grades, key: min(3, grades[key] + step)}
    difference = raised[key] - grades[key]
    assert score(raised).total == score(grades).total + difference
    assert score(raised).total >= score(grades).total


# --- score(): refusals ----------------------------------------------------------------------


@pytest.mark.parametrize("key", EXPECTED_KEYS)
def test_each_missing_item_is_refused_by_name(key: str) -> None:
    grades = _grades()
    del grades[key]
    with pytest.raises(QmgItemError, match=rf"missing QMG item\(s\): {key}$") as info:
        score(grades)
    assert info.value.items == (key,)


@pytest.mark.parametrize("key", ["grip", "vital_capacity_percent", "Diplopia", "neck"])
def test_unknown_key_is_refused_by_name(key: str) -> None:
    with pytest.raises(QmgItemError, match=rf"unknown QMG item\(s\): {key}$") as info:
        score({**_grades(), key: 0})
    assert info.value.items == (key,)


@pytest.mark.parametrize("key", EXPECTED_KEYS)
@pytest.mark.parametrize("value", [-1, 4, 39])
def test_out_of_range_grade_is_refused_by_name(key: str, value: int) -> None:
    with pytest.raises(QmgItemError, match=f"QMG item {key} must be 0-3, got {value}$") as info:
        score(_grades(**{key: value}))
    assert info.value.items == (key,)


@pytest.mark.parametrize("key", EXPECTED_KEYS)
@pytest.mark.parametrize("value", [True, False, 1.0, 2.5, "2", None, float("nan")])
def test_non_integer_grade_is_refused_by_name(key: str, value: Any) -> None:
    with pytest.raises(QmgItemError, match=f"QMG item {key} must be an integer 0-3") as info:
        score({**_grades(), key: value})
    assert info.value.items == (key,)


def test_non_mapping_is_refused() -> None:
    with pytest.raises(QmgItemError, match="mapping"):
        score([0] * 13)  # type: ignore[arg-type]


def test_errors_are_value_errors() -> None:
    assert issubclass(QmgItemError, ValueError)
    assert issubclass(QmgThresholdUnsetError, QmgItemError)


# --- instruments.md 2.1: every threshold row, both sides of every boundary ------------------

# (row, value, expected grade). Bands "N-M" cover N <= value < M + 1 (module docstring).
TIMED_CASES = [
    # Double vision: 61 | 11-60 | 1-10 | spontaneous
    *[
        (row, value, grade)
        for row in (DIPLOPIA, PTOSIS)
        for value, grade in [
            (61, 0),
            (600, 0),
            (60, 1),
            (60.9, 1),
            (11, 1),
            (10.9, 2),
            (10, 2),
            (1, 2),
            (0.5, 3),
            (0, 3),
        ]
    ],
    # Arms: 240 | 90-239 | 10-89 | 0-9
    *[
        (row, value, grade)
        for row in (RIGHT_ARM, LEFT_ARM)
        for value, grade in [
            (240, 0),
            (300, 0),
            (239, 1),
            (239.9, 1),
            (90, 1),
            (89.9, 2),
            (89, 2),
            (10, 2),
            (9.9, 3),
            (9, 3),
            (0, 3),
        ]
    ],
    # Head lifted 45 degrees: 120 | 30-119 | 1-29 | 0
    *[
        (HEAD, value, grade)
        for value, grade in [
            (120, 0),
            (119, 1),
            (119.5, 1),
            (30, 1),
            (29.9, 2),
            (29, 2),
            (1, 2),
            (0.9, 3),
            (0, 3),
        ]
    ],
    # Legs, the values both readings agree on: 100 | 31-99 [U] | 1-30 | 0
    *[
        (row, value, grade)
        for row in (RIGHT_LEG, LEFT_LEG)
        for value, grade in [
            (100, 0),
            (99, 1),
            (31, 1),
            (29.9, 2),
            (29, 2),
            (1, 2),
            (0.5, 3),
            (0, 3),
        ]
    ],
]


@pytest.mark.parametrize(("row", "value", "grade"), TIMED_CASES)
def test_timed_rows(row: str, value: float, grade: int) -> None:
    """instruments.md 2.1, the seconds rows [S, S19] (the row is the case's first field)."""
    key, _ = ROW_ITEM[row]
    assert _convert(key, value) == grade


GRIP_CASES = [
    # Right-hand grip (kg), male: >=45 | 15-44 | 5-14 | 0-4
    *[
        (RIGHT_GRIP_MALE, value, grade)
        for value, grade in [
            (45, 0),
            (80, 0),
            (44.9, 1),
            (44, 1),
            (15, 1),
            (14.5, 2),
            (14, 2),
            (5, 2),
            (4.9, 3),
            (4, 3),
            (0, 3),
        ]
    ],
    # Right-hand grip (kg), female: >=30 | 10-29 | 5-9 | 0-4
    *[
        (RIGHT_GRIP_FEMALE, value, grade)
        for value, grade in [
            (30, 0),
            (29.5, 1),
            (29, 1),
            (10, 1),
            (9.9, 2),
            (9, 2),
            (5, 2),
            (4, 3),
            (0, 3),
        ]
    ],
    # Left-hand grip (kg), male: >=35 | 15-34 | 5-14 | 0-4
    *[
        (LEFT_GRIP_MALE, value, grade)
        for value, grade in [
            (35, 0),
            (34.9, 1),
            (34, 1),
            (15, 1),
            (14, 2),
            (5, 2),
            (4.9, 3),
            (4, 3),
            (0, 3),
        ]
    ],
    # Left-hand grip (kg), female: >=25 | 10-24 | 5-9 | 0-4
    *[
        (LEFT_GRIP_FEMALE, value, grade)
        for value, grade in [
            (25, 0),
            (24.9, 1),
            (24, 1),
            (10, 1),
            (9, 2),
            (5, 2),
            (4.9, 3),
            (4, 3),
            (0, 3),
        ]
    ],
]


@pytest.mark.parametrize(("row", "value", "grade"), GRIP_CASES)
def test_grip_rows_by_sex(row: str, value: float, grade: int) -> None:
    """instruments.md 2.1, the four grip rows; grip is scored once per hand with the row for
    the participant's sex (2.1 caveats)."""
    key, sex = ROW_ITEM[row]
    assert _convert(key, value, sex=sex) == grade


@pytest.mark.parametrize(
    ("key", "value", "male", "female"),
    [
        ("right_grip", 30, 1, 0),  # male 15-44 | female >=30
        ("right_grip", 9, 2, 2),
        ("right_grip", 12, 2, 1),  # male 5-14 | female 10-29
        ("left_grip", 25, 1, 0),  # male 15-34 | female >=25
        ("left_grip", 40, 0, 0),
    ],
)
def test_the_same_kg_grades_differently_by_sex(
    key: str, value: int, male: int, female: int
) -> None:
    """instruments.md 2.1: male and female grip rows differ."""
    assert _convert(key, value, sex="male") == male
    assert _convert(key, value, sex="female") == female


@pytest.mark.parametrize("key", ["right_grip", "left_grip"])
def test_grip_without_sex_is_refused(key: str) -> None:
    """instruments.md 2.1: the grip rows are sex-specific; no default sex is guessed."""
    with pytest.raises(QmgItemError, match=f"{key}: grip thresholds are sex-specific") as info:
        _convert(key, 30, sex=None)
    assert info.value.items == (key,)


def test_grip_grade_can_still_be_given_without_sex() -> None:
    merged = merge_grades({"right_grip": 2}, {"diplopia": 61}, sex=None)
    assert merged == {"right_grip": 2, "diplopia": 0}


@pytest.mark.parametrize("sex", ["Female", "f", "other", "", 1])
def test_unknown_sex_is_refused(sex: Any) -> None:
    with pytest.raises(ValueError, match="sex must be"):
        grade_from_measurements({"diplopia": 61}, sex=sex)


@pytest.mark.parametrize(
    ("count", "grade"),
    [(50, 0), (49, 1), (30, 1), (29, 2), (10, 2), (9, 3), (1, 3)],
)
def test_speech_count_row(count: int, grade: int) -> None:
    """instruments.md 2.1, Speech row: none at #50 | #30-49 | #10-29 | #9 or before.
    The measurement is the number at which dysarthria began; 50 = none at #50."""
    assert _convert("speech", count) == grade


@pytest.mark.parametrize("count", [0, 51, -1, 25.0, True, "30", None])
def test_speech_count_outside_1_to_50_or_not_an_integer_is_refused(count: Any) -> None:
    with pytest.raises(QmgItemError, match="speech must be the integer count 1-50") as info:
        _convert("speech", count)
    assert info.value.items == ("speech",)


@pytest.mark.parametrize("key", ["facial_muscles", "swallowing"])
@pytest.mark.parametrize("grade", [0, 1, 2, 3])
def test_descriptive_rows_take_the_grade(key: str, grade: int) -> None:
    """instruments.md 2.1, Facial muscles and Swallowing rows are descriptive: the grade is the
    measurement."""
    assert _convert(key, grade) == grade


@pytest.mark.parametrize("key", ["facial_muscles", "swallowing"])
@pytest.mark.parametrize("value", [-1, 4, 1.0, True, "normal", None])
def test_descriptive_rows_refuse_anything_but_a_grade(key: str, value: Any) -> None:
    with pytest.raises(QmgItemError, match=f"{key} is descriptive") as info:
        _convert(key, value)
    assert info.value.items == (key,)


# --- [U] rows: vital capacity and the leg 30 s boundary -------------------------------------


@pytest.mark.parametrize("value", [0, 49, 50, 79.5, 80, 120])
def test_vital_capacity_is_refused_while_its_thresholds_are_unset(value: float) -> None:
    """instruments.md 2.1 Vital capacity row is [U] in every cell (missing from S19)."""
    with pytest.raises(QmgThresholdUnsetError, match="vital_capacity.*unconfirmed") as info:
        _convert("vital_capacity", value)
    assert info.value.items == ("vital_capacity",)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("value", "grade"),
    [
        (100, 0),
        (80, 0),
        (79.9, 1),
        (79, 1),
        (65, 1),
        (64.9, 2),
        (64, 2),
        (50, 2),
        (49.9, 3),
        (49, 3),
        (0, 3),
    ],
)
def test_vital_capacity_with_the_commonly_cited_cut_offs(value: float, grade: int) -> None:
    """instruments.md 2.1 Vital capacity row: [U] >=80 | 65-79 | 50-64 | <50, opted in."""
    assert _convert("vital_capacity", value, thresholds=COMMONLY_CITED_THRESHOLDS) == grade


@pytest.mark.parametrize(
    ("value", "grade"), [(90, 0), (89.9, 1), (70, 1), (69, 2), (55, 2), (54.9, 3)]
)
def test_vital_capacity_thresholds_are_set_by_the_protocol(value: float, grade: int) -> None:
    """instruments.md 12 item 2: a protocol may set other VC cut-offs."""
    thresholds = QmgThresholds(vital_capacity_percent=(90, 70, 55))
    assert _convert("vital_capacity", value, thresholds=thresholds) == grade


@pytest.mark.parametrize("key", ["right_leg", "left_leg"])
@pytest.mark.parametrize("value", [30, 30.0, 30.5, 30.99])
def test_leg_30_seconds_is_refused_while_the_boundary_is_unset(key: str, value: float) -> None:
    """instruments.md 2.1 Leg rows: the forum's 30-99 and 1-30 overlap at 30 s; 31-99 is [U]."""
    with pytest.raises(QmgThresholdUnsetError, match=f"{key}: 30 s is grade 1") as info:
        _convert(key, value)
    assert info.value.items == (key,)


@pytest.mark.parametrize("key", ["right_leg", "left_leg"])
@pytest.mark.parametrize(
    ("boundary", "value", "grade"),
    [
        (31, 30, 2),  # widely quoted: 31-99 | 1-30
        (31, 30.5, 2),
        (31, 31, 1),
        (30, 30, 1),  # forum S19: 30-99 (its 1-30 ends at 29)
        (30, 30.5, 1),
        (30, 29.9, 2),
        (30, 100, 0),
        (30, 99, 1),
        (31, 0, 3),
    ],
)
def test_leg_boundary_is_set_by_the_protocol(
    key: str, boundary: Any, value: float, grade: int
) -> None:
    """instruments.md 2.1 Leg rows and caveat 1; section 12 item 2."""
    thresholds = QmgThresholds(leg_grade_1_min_seconds=boundary)
    assert _convert(key, value, thresholds=thresholds) == grade


@pytest.mark.parametrize(
    "kwargs",
    [
        {"vital_capacity_percent": (80, 65)},
        {"vital_capacity_percent": (65, 80, 50)},
        {"vital_capacity_percent": (80, 80, 50)},
        {"vital_capacity_percent": (80, 65, 0)},
        {"vital_capacity_percent": (80, 65, True)},
        {"vital_capacity_percent": (80, float("nan"), 50)},
        {"vital_capacity_percent": [80, 65, 50]},
        {"leg_grade_1_min_seconds": 29},
        {"leg_grade_1_min_seconds": 32},
        {"leg_grade_1_min_seconds": 30.0},
        {"leg_grade_1_min_seconds": True},
    ],
)
def test_invalid_thresholds_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="vital_capacity_percent|leg_grade_1_min_seconds"):
        QmgThresholds(**kwargs)


# --- measurement refusals -------------------------------------------------------------------


@pytest.mark.parametrize("key", ["grip", "Ptosis", "neck", "vital_capacity_pct"])
def test_unknown_measurement_is_refused_by_name(key: str) -> None:
    with pytest.raises(QmgItemError, match=rf"unknown QMG measurement\(s\): {key}$") as info:
        grade_from_measurements({key: 10}, sex="male")
    assert info.value.items == (key,)


NUMERIC_KEYS = [
    "diplopia",
    "ptosis",
    "right_arm",
    "left_arm",
    "vital_capacity",
    "right_grip",
    "left_grip",
    "head_lift",
    "right_leg",
    "left_leg",
]


@pytest.mark.parametrize("key", NUMERIC_KEYS)
@pytest.mark.parametrize("value", [-1, -0.1, float("nan"), float("inf"), float("-inf")])
def test_negative_or_non_finite_measurement_is_refused(key: str, value: float) -> None:
    with pytest.raises(QmgItemError, match=f"{key} must be a finite number") as info:
        _convert(key, value, sex="female", thresholds=COMMONLY_CITED_THRESHOLDS)
    assert info.value.items == (key,)


@pytest.mark.parametrize("key", NUMERIC_KEYS)
@pytest.mark.parametrize("value", [True, False, "30", None, [30]])
def test_non_numeric_measurement_is_refused(key: str, value: Any) -> None:
    with pytest.raises(QmgItemError, match=f"{key} must be a number of") as info:
        _convert(key, value, sex="female", thresholds=COMMONLY_CITED_THRESHOLDS)
    assert info.value.items == (key,)


def test_non_mapping_measurements_are_refused() -> None:
    with pytest.raises(QmgItemError, match="mapping"):
        grade_from_measurements([("diplopia", 10)], sex=None)  # type: ignore[arg-type]


def test_empty_measurements_give_no_grades() -> None:
    assert grade_from_measurements({}, sex=None) == {}


@given(
    st.sampled_from(NUMERIC_KEYS),
    st.sampled_from(["female", "male"]),
    st.floats(0, 1000, allow_nan=False),
    st.floats(0, 1000, allow_nan=False),
    st.sampled_from([30, 31]),
)
def test_a_better_measurement_never_gets_a_worse_grade(
    key: str, sex: Any, first: float, second: float, leg: Any
) -> None:
    """instruments.md 2.1: in every numeric row a longer hold, stronger grip or larger VC is a
    lower (better) grade, and every grade is 0-3."""
    thresholds = QmgThresholds(vital_capacity_percent=(80, 65, 50), leg_grade_1_min_seconds=leg)
    low, high = sorted((first, second))
    low_grade = _convert(key, low, sex=sex, thresholds=thresholds)
    high_grade = _convert(key, high, sex=sex, thresholds=thresholds)
    assert 0 <= high_grade <= low_grade <= 3


# --- mixed input ----------------------------------------------------------------------------

FULL_MEASUREMENTS: dict[str, float] = {
    "diplopia": 8,  # 1-10 -> 2
    "ptosis": 61,  # 61 -> 0
    "facial_muscles": 1,  # descriptive grade
    "speech": 35,  # #30-49 -> 1
    "right_arm": 95.5,  # 90-239 -> 1
    "left_arm": 5,  # 0-9 -> 3
    "vital_capacity": 70,  # [U] 65-79 -> 1 (commonly cited)
    "right_grip": 12,  # female 10-29 -> 1
    "left_grip": 26,  # female >=25 -> 0
    "head_lift": 0,  # 0 -> 3
    "right_leg": 45,  # 31-99 -> 1
    "left_leg": 15,  # 1-30 -> 2
}


def test_mixed_grades_and_measurements() -> None:
    """Some items as grades, the rest converted with instruments.md 2.1."""
    result = score_mixed(
        {"swallowing": 2},
        FULL_MEASUREMENTS,
        sex="female",
        thresholds=COMMONLY_CITED_THRESHOLDS,
    )
    assert result.total == 2 + 0 + 1 + 2 + 1 + 1 + 3 + 1 + 1 + 0 + 3 + 1 + 2
    assert result.instrument_version == VERSION


def test_all_items_as_grades_through_score_mixed() -> None:
    assert score_mixed(_grades(diplopia=3, left_leg=2), {}, sex=None).total == 5


def test_an_item_given_both_ways_is_refused() -> None:
    with pytest.raises(QmgItemError, match="both as grade and as measurement: ptosis") as info:
        merge_grades({"ptosis": 1}, {"ptosis": 61}, sex=None)
    assert info.value.items == ("ptosis",)


def test_mixed_input_still_has_to_be_complete() -> None:
    with pytest.raises(QmgItemError, match=r"missing QMG item\(s\): swallowing$"):
        score_mixed({}, FULL_MEASUREMENTS, sex="female", thresholds=COMMONLY_CITED_THRESHOLDS)


def test_mixed_input_with_an_unset_threshold_is_refused_not_guessed() -> None:
    with pytest.raises(QmgThresholdUnsetError, match="vital_capacity"):
        score_mixed({"swallowing": 2}, FULL_MEASUREMENTS, sex="female")


def test_mixed_grade_out_of_range_is_refused_by_name() -> None:
    with pytest.raises(QmgItemError, match="QMG item swallowing must be 0-3, got 5"):
        score_mixed(
            {"swallowing": 5}, FULL_MEASUREMENTS, sex="male", thresholds=COMMONLY_CITED_THRESHOLDS
        )


# --- cross-check against the instruments.md 2.1 table ---------------------------------------


def _qmg_table() -> dict[str, list[str]]:
    """instruments.md 2.1 rows: first cell -> [grade 0, 1, 2, 3] cells."""
    text = INSTRUMENTS_MD.read_text(encoding="utf-8")
    section = text.split("### 2.1", 1)[1].split("###", 1)[0]
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        if not line.startswith("|") or line.startswith(("| Item", "|---")):
            continue
        label, *cells = (cell.strip() for cell in line.strip().strip("|").split("|"))
        rows[label] = cells
    return rows


def _band(cell: str, grade: int) -> tuple[int, float]:
    """A printed cell as an inclusive integer range (upper may be infinite)."""
    cell = cell.replace("**[U]**", "").strip()
    if match := re.fullmatch(r"none at #(\d+)", cell):
        return int(match.group(1)), int(match.group(1))  # the count ends at #50
    cell = re.sub(r"^(dysarthria )?at #", "", cell)
    if cell == "spontaneous":
        return 0, 0
    if match := re.fullmatch(r"(\d+)–(\d+)", cell):
        return int(match.group(1)), int(match.group(2))
    if match := re.fullmatch(r"(\d+) or before", cell):
        return 1, int(match.group(1))
    if match := re.fullmatch(r"≥(\d+)", cell):
        return int(match.group(1)), math.inf
    if match := re.fullmatch(r"<(\d+)", cell):
        return 0, int(match.group(1)) - 1
    if match := re.fullmatch(r"\d+", cell):
        value = int(cell)
        # Grade 0 printed as one number is the test's ceiling ("61" = 61 s or more).
        return (value, math.inf) if grade == 0 else (value, value)
    raise AssertionError(f"unparsed cell {cell!r}")


@needs_md
def test_table_rows_are_the_rows_these_tests_cite() -> None:
    assert sorted(_qmg_table()) == sorted(ROW_ITEM)


@needs_md
def test_labels_and_descriptive_anchors_match_instruments_md() -> None:
    """instruments.md 2.1: item labels (first cell without unit) and descriptive cells."""
    table = _qmg_table()
    by_key = {item.key: item for item in ITEMS}
    for row, (key, _) in ROW_ITEM.items():
        assert row.startswith(by_key[key].label), row
    for key, row in (("facial_muscles", FACIAL), ("swallowing", SWALLOWING), ("speech", SPEECH)):
        assert by_key[key].anchors == tuple(table[row]), key


@needs_md
@pytest.mark.parametrize("row", [row for row in ROW_ITEM if row not in (FACIAL, SWALLOWING)])
def test_conversion_matches_every_printed_band(row: str) -> None:
    """Each numeric row of instruments.md 2.1, parsed at test time: both ends of every band
    convert to that band's grade; rows tagged [U] only with the commonly cited thresholds, and
    the default thresholds refuse at least one value of them."""
    cells = _qmg_table()[row]
    key, sex = ROW_ITEM[row]
    uncertain = any("[U]" in cell for cell in cells)
    thresholds = COMMONLY_CITED_THRESHOLDS if uncertain else DEFAULT_THRESHOLDS
    for grade, cell in enumerate(cells):
        low, high = _band(cell, grade)
        ends = [low, high if math.isfinite(high) else low + 1000]
        for value in ends:
            assert _convert(key, value, sex=sex, thresholds=thresholds) == grade, (cell, value)
    if uncertain:
        refused = 0
        for grade, cell in enumerate(cells):
            for value in _band(cell, grade):
                if not math.isfinite(value):
                    continue
                try:
                    _convert(key, value, sex=sex)
                except QmgThresholdUnsetError:
                    refused += 1
        assert refused > 0
