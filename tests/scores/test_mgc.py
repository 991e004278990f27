"""MG Composite scoring against shared/domain/instruments.md section 3 (Burns 2010; S14, S21)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.scores.instruments import mgc
from app.scores.instruments.mgc import (
    INSTRUMENT,
    ITEM_KEYS,
    ITEMS,
    VERSION,
    MgcItemError,
    points,
    score,
)

INSTRUMENTS_MD = Path("/work/shared/domain/instruments.md")
needs_md = pytest.mark.skipif(
    not INSTRUMENTS_MD.exists(), reason="shared/domain/instruments.md not present"
)

# instruments.md 3, one row per item (api-contract.md keys, table order): level 0-3 -> points.
WEIGHTS: dict[str, tuple[int, int, int, int]] = {
    "ptosis": (0, 1, 2, 3),  # Ptosis, upward gaze: >45 s 0; 11-45 s 1; 1-10 s 2; immediate 3
    "diplopia": (0, 1, 3, 4),  # Double vision: >45 s 0; 11-45 s 1; 1-10 s 3; immediate 4
    "eye_closure": (0, 0, 1, 2),  # Eye closure: normal 0; mild 0; moderate 1; severe 2
    "talking": (0, 2, 4, 6),  # Talking: normal 0; intermittent 2; constant 4; difficult 6
    "chewing": (0, 2, 4, 6),  # Chewing: normal 0; solid food 2; soft food 4; gastric tube 6
    "swallowing": (0, 2, 5, 6),  # Swallowing: normal 0; rare 2; frequent 5; gastric tube 6
    "breathing": (0, 2, 4, 9),  # Breathing: normal 0; exertion 2; rest 4; ventilator 9
    "neck": (0, 1, 3, 4),  # Neck flexion or extension: normal 0; mild 1; moderate 3; severe 4
    "shoulder_abduction": (0, 2, 4, 5),  # Shoulder abduction: 0; 2; 4; 5
    "hip_flexion": (0, 2, 4, 5),  # Hip flexion: 0; 2; 4; 5
}
EXPECTED_KEYS = tuple(WEIGHTS)

WEIGHT_CASES = [
    pytest.param(key, level, weight, id=f"{key}-level{level}-{weight}pt")
    for key, row in WEIGHTS.items()
    for level, weight in enumerate(row)
]


def _levels(**levels: int) -> dict[str, Any]:
    return {key: levels.get(key, 0) for key in EXPECTED_KEYS}


def test_items_are_the_ten_contract_keys_in_table_order() -> None:
    assert ITEM_KEYS == EXPECTED_KEYS
    assert [item.number for item in ITEMS] == list(range(1, 11))


def test_instrument_and_version_constants() -> None:
    assert INSTRUMENT == "mgc"
    assert VERSION == "mgc-burns-2010.v1"
    assert mgc.TOTAL_MAX == 50


# --- instruments.md 3: every weight row, every level ----------------------------------------


@pytest.mark.parametrize(("key", "level", "weight"), WEIGHT_CASES)
def test_every_level_of_every_item_scores_its_weight(key: str, level: int, weight: int) -> None:
    """instruments.md 3, the item's row (see WEIGHTS): the level scores the printed points,
    alone in an otherwise normal examination."""
    assert points(key, level) == weight
    result = score(_levels(**{key: level}))
    assert result.total == weight
    assert result.instrument_version == VERSION


def test_maxima_add_up_to_50() -> None:
    """instruments.md 3: 3+4+2+6+6+6+9+4+5+5 = 50."""
    assert [row[3] for row in WEIGHTS.values()] == [3, 4, 2, 6, 6, 6, 9, 4, 5, 5]
    assert score(dict.fromkeys(EXPECTED_KEYS, 3)).total == 50
    assert score(_levels()).total == 0


@pytest.mark.parametrize(
    ("key", "lower", "higher", "jump"),
    [
        ("diplopia", 1, 2, 2),  # instruments.md 3: diplopia 1 -> 3
        ("swallowing", 1, 2, 3),  # swallowing 2 -> 5
        ("breathing", 2, 3, 5),  # breathing 4 -> 9
        ("eye_closure", 0, 1, 0),  # normal and mild weakness both score 0
    ],
)
def test_weights_are_a_lookup_not_level_times_constant(
    key: str, lower: int, higher: int, jump: int
) -> None:
    """instruments.md 3 note: implement the jumps as a lookup table."""
    assert points(key, higher) - points(key, lower) == jump


def test_no_subscores_are_invented() -> None:
    """instruments.md 3 defines no MGC subscores; MG-ADL's 1.3 grouping is not carried over."""
    assert score(dict.fromkeys(EXPECTED_KEYS, 2)).subscores == {}


def test_worked_example() -> None:
    """Levels (not points) in; points of instruments.md 3 summed."""
    levels = {
        "ptosis": 1,  # 1
        "diplopia": 2,  # 3
        "eye_closure": 1,  # 0
        "talking": 0,  # 0
        "chewing": 1,  # 2
        "swallowing": 2,  # 5
        "breathing": 3,  # 9
        "neck": 2,  # 3
        "shoulder_abduction": 1,  # 2
        "hip_flexion": 3,  # 5
    }
    assert score(levels).total == 30


@given(st.fixed_dictionaries({key: st.integers(0, 3) for key in EXPECTED_KEYS}))
def test_total_is_the_sum_of_looked_up_points_and_in_range(levels: dict[str, int]) -> None:
    total = score(levels).total
    assert total == sum(WEIGHTS[key][level] for key, level in levels.items())
    assert 0 <= total <= 50


@given(
    st.fixed_dictionaries({key: st.integers(0, 3) for key in EXPECTED_KEYS}),
    st.sampled_from(EXPECTED_KEYS),
    st.integers(1, 3),
)
def test_raising_one_item_raises_the_total_by_exactly_its_points(
    levels: dict[str, int], key: str, step: int
) -> None:
    """Raising one level never lowers the total and adds exactly the points difference."""
    raised = {**levels, key: min(3, levels[key] + step)}
    before, after = score(levels).total, score(raised).total
    assert after - before == WEIGHTS[key][raised[key]] - WEIGHTS[key][levels[key]]
    assert after >= before


# --- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize("key", EXPECTED_KEYS)
def test_each_missing_item_is_refused_by_name(key: str) -> None:
    levels = _levels()
    del levels[key]
    with pytest.raises(MgcItemError, match=rf"missing MGC item\(s\): {key}$") as info:
        score(levels)
    assert info.value.items == (key,)


@pytest.mark.parametrize("key", ["eyelid_closure", "neck_flexion", "Ptosis", "limb"])
def test_unknown_key_is_refused_by_name(key: str) -> None:
    with pytest.raises(MgcItemError, match=rf"unknown MGC item\(s\): {key}$") as info:
        score({**_levels(), key: 0})
    assert info.value.items == (key,)


@pytest.mark.parametrize("key", EXPECTED_KEYS)
@pytest.mark.parametrize("value", [-1, 4, 5, 9])
def test_out_of_range_level_is_refused_by_name(key: str, value: int) -> None:
    """Levels are 0-3; a points value such as 9 (ventilator) is not a level."""
    with pytest.raises(MgcItemError, match=f"MGC item {key} must be 0-3, got {value}$") as info:
        score(_levels(**{key: value}))
    assert info.value.items == (key,)


@pytest.mark.parametrize("key", EXPECTED_KEYS)
@pytest.mark.parametrize("value", [True, False, 1.0, 2.5, "2", None, float("nan")])
def test_non_integer_level_is_refused_by_name(key: str, value: Any) -> None:
    with pytest.raises(MgcItemError, match=f"MGC item {key} must be an integer 0-3") as info:
        score({**_levels(), key: value})
    assert info.value.items == (key,)


def test_non_mapping_is_refused() -> None:
    with pytest.raises(MgcItemError, match="mapping"):
        score([0] * 10)  # type: ignore[arg-type]


@pytest.mark.parametrize(("key", "level"), [("neck", 4), ("neck", True), ("neck", 1.0), ("x", 1)])
def test_points_refuses_unknown_items_and_bad_levels(key: str, level: Any) -> None:
    with pytest.raises(MgcItemError, match=key):
        points(key, level)


def test_errors_are_value_errors() -> None:
    assert issubclass(MgcItemError, ValueError)


# --- cross-check against the instruments.md 3 table -----------------------------------------


def _mgc_table() -> list[tuple[str, list[tuple[str, int]]]]:
    """instruments.md 3 rows: (item label, [(anchor, points) for levels 0-3])."""
    text = INSTRUMENTS_MD.read_text(encoding="utf-8")
    section = text.split("## 3. MG Composite", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if not line.startswith("|") or line.startswith(("| Item", "|---")):
            continue
        label, levels = (cell.strip() for cell in line.strip().strip("|").split("|"))
        parsed = []
        for part in levels.split(";"):
            match = re.fullmatch(r"(.*?)\s*(?:=\s*)?\**(\d+)\**", part.strip())
            assert match, part
            parsed.append((match.group(1), int(match.group(2))))
        rows.append((label, parsed))
    return rows


@needs_md
def test_weights_labels_and_anchors_match_instruments_md() -> None:
    """instruments.md 3, parsed at test time: every row's label, four anchors and points."""
    table = _mgc_table()
    assert len(table) == len(ITEMS) == 10
    for item, (label, levels) in zip(ITEMS, table, strict=True):
        assert item.label == label
        assert list(item.anchors) == [anchor for anchor, _ in levels], item.key
        assert list(item.points) == [weight for _, weight in levels], item.key
        assert list(WEIGHTS[item.key]) == [weight for _, weight in levels], item.key
