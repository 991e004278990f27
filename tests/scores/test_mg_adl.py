"""MG-ADL scoring against shared/domain/instruments.md section 1 (Wolfe 1999)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.scores.instruments import mg_adl
from app.scores.instruments.mg_adl import (
    DOMAINS,
    INSTRUMENT,
    ITEM_KEYS,
    ITEMS,
    VERSION,
    MgAdlItemError,
    MgAdlScore,
    ocular_share_ok,
    score,
)

INSTRUMENTS_MD = Path("/work/shared/domain/instruments.md")

# Issue text: item keys, in order.
EXPECTED_KEYS = (
    "talking",
    "chewing",
    "swallowing",
    "breathing",
    "brushing_teeth_or_combing_hair",
    "arising_from_chair",
    "double_vision",
    "eyelid_droop",
)


def _items(**grades: int) -> dict[str, Any]:
    return {key: grades.get(key, 0) for key in EXPECTED_KEYS}


def _anchor_table() -> dict[int, list[str]]:
    """Rows of the instruments.md 1.2 table: number -> [item, grade 0, 1, 2, 3]."""
    text = INSTRUMENTS_MD.read_text(encoding="utf-8")
    section = text.split("### 1.2", 1)[1].split("###", 1)[0]
    rows: dict[int, list[str]] = {}
    for line in section.splitlines():
        match = re.match(r"^\|\s*(\d)\s*\|(.*)\|\s*$", line)
        if match:
            rows[int(match.group(1))] = [cell.strip() for cell in match.group(2).split("|")]
    return rows


# --- instruments.md 1.2: anchors -----------------------------------------------------------


@pytest.mark.skipif(not INSTRUMENTS_MD.exists(), reason="shared/domain/instruments.md not present")
def test_labels_and_anchors_match_instruments_md_table_exactly() -> None:
    """instruments.md 1.2 [C, S1]: every item label and all 32 anchors, word for word."""
    table = _anchor_table()
    assert sorted(table) == list(range(1, 9))
    for item in ITEMS:
        label, *anchors = table[item.number]
        assert item.label == label
        assert list(item.anchors) == anchors, item.key


def test_items_are_the_eight_issue_keys_in_order_numbered_1_to_8() -> None:
    assert ITEM_KEYS == EXPECTED_KEYS
    assert [item.number for item in ITEMS] == list(range(1, 9))
    assert all(len(item.anchors) == 4 for item in ITEMS)


def test_grade_0_of_items_5_to_8_is_normal_not_none() -> None:
    """instruments.md 1.2 note: some reproductions say "None"; S1 says "Normal"."""
    assert {item.anchors[0] for item in ITEMS} == {"Normal"}


def test_swallowing_anchors_are_not_the_cliot_package_wording() -> None:
    """instruments.md 1.2 note: do not copy the cliot swallowing anchors (S5)."""
    swallowing = next(item for item in ITEMS if item.key == "swallowing")
    assert "Fatigue with some foods" not in swallowing.anchors
    assert "Incomplete swallowing/choking" not in swallowing.anchors


def test_instrument_and_version_constants() -> None:
    assert INSTRUMENT == "mg_adl"
    assert VERSION == "mg-adl-wolfe-1999.v1"
    assert mg_adl.DEFAULT_RECALL_PERIOD_DAYS == 7  # instruments.md 1.1 (MDCalc example, S2)


# --- instruments.md 1.3: domains ------------------------------------------------------------


def test_domains_partition_the_items() -> None:
    """instruments.md 1.3: ocular 7-8, bulbar 1-3, respiratory 4, limb 5-6."""
    numbers = {item.key: item.number for item in ITEMS}
    assert {domain: [numbers[key] for key in keys] for domain, keys in DOMAINS.items()} == {
        "bulbar": [1, 2, 3],
        "respiratory": [4],
        "limb": [5, 6],
        "ocular": [7, 8],
    }
    assert sorted(key for keys in DOMAINS.values() for key in keys) == sorted(EXPECTED_KEYS)


@pytest.mark.parametrize(
    ("grades", "expected"),
    [
        ({"talking": 1, "chewing": 2, "swallowing": 3}, {"bulbar": 6}),
        ({"breathing": 2}, {"respiratory": 2}),
        ({"brushing_teeth_or_combing_hair": 3, "arising_from_chair": 1}, {"limb": 4}),
        ({"double_vision": 2, "eyelid_droop": 3}, {"ocular": 5}),
    ],
)
def test_each_domain_scores_only_its_own_items(
    grades: dict[str, int], expected: dict[str, int]
) -> None:
    """instruments.md 1.3: a grade counts in its own domain and nowhere else."""
    result = score(_items(**grades))
    subscores = {
        "bulbar": result.bulbar,
        "respiratory": result.respiratory,
        "limb": result.limb,
        "ocular": result.ocular,
    }
    assert subscores == {**dict.fromkeys(subscores, 0), **expected}
    assert result.total == sum(expected.values())


def test_total_zero() -> None:
    """instruments.md 1.1: total 0 = all normal; the ocular share is undefined (None)."""
    assert score(_items()) == MgAdlScore(
        total=0,
        ocular=0,
        bulbar=0,
        respiratory=0,
        limb=0,
        instrument_version=VERSION,
        ocular_share=None,
    )


def test_total_24_is_the_maximum() -> None:
    """instruments.md 1.1: 8 items x 3 = 24."""
    result = score(dict.fromkeys(EXPECTED_KEYS, 3))
    assert (result.total, result.bulbar, result.respiratory, result.limb, result.ocular) == (
        24,
        9,
        3,
        6,
        6,
    )
    assert result.ocular_share == pytest.approx(0.25)


def test_mixed_entry() -> None:
    """instruments.md 1.1/1.3: a worked example, every item graded differently."""
    result = score(
        {
            "talking": 1,
            "chewing": 0,
            "swallowing": 2,
            "breathing": 1,
            "brushing_teeth_or_combing_hair": 2,
            "arising_from_chair": 1,
            "double_vision": 3,
            "eyelid_droop": 0,
        }
    )
    assert (result.total, result.bulbar, result.respiratory, result.limb, result.ocular) == (
        10,
        3,
        1,
        3,
        3,
    )
    assert result.ocular_share == pytest.approx(0.3)


@given(st.fixed_dictionaries({key: st.integers(0, 3) for key in EXPECTED_KEYS}))
def test_total_is_the_sum_and_subscores_partition_it(items: dict[str, int]) -> None:
    """instruments.md 1.1: total = sum of items; 1.3: the four domains partition the total."""
    result = score(items)
    assert result.total == sum(items.values())
    assert result.bulbar + result.respiratory + result.limb + result.ocular == result.total
    assert result.ocular == items["double_vision"] + items["eyelid_droop"]
    assert 0 <= result.total <= 24
    if result.total:
        assert result.ocular_share == result.ocular / result.total
    else:
        assert result.ocular_share is None


# --- invalid entries: no imputation ---------------------------------------------------------


@pytest.mark.parametrize("key", EXPECTED_KEYS)
def test_each_missing_item_is_refused_by_name(key: str) -> None:
    items = _items()
    del items[key]
    with pytest.raises(MgAdlItemError, match=rf"missing MG-ADL item\(s\): {key}$") as info:
        score(items)
    assert info.value.items == (key,)


def test_all_missing_items_are_named() -> None:
    with pytest.raises(ValueError, match="missing") as info:
        score({"talking": 0})
    assert isinstance(info.value, MgAdlItemError)
    assert info.value.items == EXPECTED_KEYS[1:]


def test_empty_entry_is_refused() -> None:
    with pytest.raises(MgAdlItemError, match="missing"):
        score({})


@pytest.mark.parametrize(
    "key", ["brushing_teeth", "combing_hair", "Talking", "qmg_total", "item_9"]
)
def test_unknown_key_is_refused_by_name(key: str) -> None:
    """instruments.md 1.2: brushing teeth and combing hair are ONE item, not two inputs."""
    with pytest.raises(MgAdlItemError, match=f"unknown MG-ADL item\\(s\\): {key}") as info:
        score({**_items(), key: 0})
    assert info.value.items == (key,)


@pytest.mark.parametrize("key", EXPECTED_KEYS)
@pytest.mark.parametrize("value", [-1, 4, 24, -100])
def test_out_of_range_grade_is_refused_by_name(key: str, value: int) -> None:
    """instruments.md 1.1: each item is 0-3."""
    with pytest.raises(MgAdlItemError, match=f"item {key} must be 0-3, got {value}") as info:
        score(_items(**{key: value}))
    assert info.value.items == (key,)


@pytest.mark.parametrize("key", EXPECTED_KEYS)
@pytest.mark.parametrize("value", [True, False, 1.0, 2.5, "2", None, float("nan")])
def test_non_integer_grade_is_refused_by_name(key: str, value: Any) -> None:
    """No coercion: a bool, float, string or null is not a grade."""
    with pytest.raises(MgAdlItemError, match=f"item {key} must be an integer 0-3") as info:
        score({**_items(), key: value})
    assert info.value.items == (key,)


def test_non_mapping_is_refused() -> None:
    with pytest.raises(MgAdlItemError, match="mapping"):
        score([0] * 8)  # type: ignore[arg-type]


# --- instruments.md 1.4: ocular share -------------------------------------------------------


def _entry(ocular: int, non_ocular: int) -> MgAdlScore:
    """An entry with the given ocular and non-ocular points (non-ocular <= 18, ocular <= 6)."""
    grades: dict[str, int] = {}
    remaining = non_ocular
    for key in EXPECTED_KEYS[:6]:
        grades[key] = min(3, remaining)
        remaining -= grades[key]
    grades["double_vision"] = min(3, ocular)
    grades["eyelid_droop"] = ocular - grades["double_vision"]
    result = score(grades)
    assert (result.ocular, result.total) == (ocular, ocular + non_ocular)
    return result


@pytest.mark.parametrize(("ocular", "non_ocular"), [(3, 3), (1, 1), (6, 6), (2, 2)])
def test_exact_50_percent_fails_the_strict_rule_and_passes_the_inclusive_one(
    ocular: int, non_ocular: int
) -> None:
    """instruments.md 1.4: ">50 % non-ocular" (ADAPT, NCT05067348, NCT07243366) fails at exactly
    50 %; "no more than 50 %" (NCT06371040) passes."""
    entry = _entry(ocular, non_ocular)
    assert entry.ocular_share == 0.5
    assert ocular_share_ok(entry, max_share=0.5, inclusive=False) is False
    assert ocular_share_ok(entry, max_share=0.5, inclusive=True) is True


@pytest.mark.parametrize("inclusive", [False, True])
def test_just_below_and_just_above_50_percent(inclusive: bool) -> None:
    """instruments.md 1.4: away from the boundary both readings agree."""
    below = _entry(ocular=2, non_ocular=3)  # 40 %; also the ADAPT-eligible MG-ADL 5
    above = _entry(ocular=3, non_ocular=2)  # 60 %
    near_below = _entry(ocular=5, non_ocular=6)  # 45.5 %
    near_above = _entry(ocular=6, non_ocular=5)  # 54.5 %
    assert ocular_share_ok(below, max_share=0.5, inclusive=inclusive) is True
    assert ocular_share_ok(near_below, max_share=0.5, inclusive=inclusive) is True
    assert ocular_share_ok(above, max_share=0.5, inclusive=inclusive) is False
    assert ocular_share_ok(near_above, max_share=0.5, inclusive=inclusive) is False


def test_all_ocular_and_no_ocular() -> None:
    """instruments.md 1.4: purely ocular MG fails; no ocular points passes."""
    for inclusive in (False, True):
        assert ocular_share_ok(_entry(6, 0), max_share=0.5, inclusive=inclusive) is False
        assert ocular_share_ok(_entry(0, 5), max_share=0.5, inclusive=inclusive) is True


def test_other_boundaries_are_exact_too() -> None:
    """instruments.md 1.4: the boundary is configurable per protocol; 3/10 against 0.3."""
    entry = _entry(ocular=3, non_ocular=7)
    assert ocular_share_ok(entry, max_share=0.3, inclusive=False) is False
    assert ocular_share_ok(entry, max_share=0.3, inclusive=True) is True
    assert ocular_share_ok(_entry(6, 0), max_share=1.0, inclusive=True) is True


@pytest.mark.parametrize("inclusive", [False, True])
def test_total_zero_has_no_ocular_share_and_fails(inclusive: bool) -> None:
    """instruments.md 1.4: 0/0 is undefined; decision: the rule is not met (returns False)."""
    assert ocular_share_ok(score(_items()), max_share=0.5, inclusive=inclusive) is False
    assert ocular_share_ok(score(_items()), max_share=1.0, inclusive=True) is False


@pytest.mark.parametrize("max_share", [0, -0.5, 1.5, float("nan"), float("inf")])
def test_max_share_outside_0_to_1_is_refused(max_share: float) -> None:
    with pytest.raises(ValueError, match="max_share"):
        ocular_share_ok(_entry(1, 4), max_share=max_share, inclusive=False)


@given(
    st.fixed_dictionaries({key: st.integers(0, 3) for key in EXPECTED_KEYS}),
    st.sampled_from([0.25, 0.3, 0.5, 0.75]),
    st.booleans(),
)
def test_ocular_share_rule_matches_integer_arithmetic(
    items: dict[str, int], max_share: float, inclusive: bool
) -> None:
    """instruments.md 1.4: ocular / total against the boundary, cross-checked without floats."""
    result = score(items)
    numerator, denominator = {0.25: (1, 4), 0.3: (3, 10), 0.5: (1, 2), 0.75: (3, 4)}[max_share]
    left, right = result.ocular * denominator, numerator * result.total
    expected = result.total > 0 and (left <= right if inclusive else left < right)
    assert ocular_share_ok(result, max_share=max_share, inclusive=inclusive) is expected
