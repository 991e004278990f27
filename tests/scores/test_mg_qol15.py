"""MG-QOL15 (0-4 per item, 0-60) and MG-QOL15r (0-2 per item, 0-30) against
shared/domain/instruments.md section 4."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.scores.instruments import mg_qol15, mg_qol15r
from app.scores.instruments._common import InstrumentItemError

INSTRUMENTS_MD = Path("/work/shared/domain/instruments.md")
needs_md = pytest.mark.skipif(
    not INSTRUMENTS_MD.exists(), reason="shared/domain/instruments.md not present"
)

EXPECTED_KEYS = tuple(f"q{number}" for number in range(1, 16))

# instruments.md 4: (module, display name, item maximum, total maximum, version, error class)
INSTRUMENTS = [
    pytest.param(
        mg_qol15r,
        "MG-QOL15r",
        2,
        30,
        "mg-qol15r-burns-2016.v1",
        mg_qol15r.MgQol15rItemError,
        id="mg_qol15r",  # Burns 2016: 3-response version, 0-2, total 0-30 [C, S25]
    ),
    pytest.param(
        mg_qol15,
        "MG-QOL15",
        4,
        60,
        "mg-qol15-burns-2008.v1",
        mg_qol15.MgQol15ItemError,
        id="mg_qol15",  # Burns 2008: 0-4, total 0-60 [C, S23, S24]
    ),
]
SIGNATURE = ("module", "name", "item_max", "total_max", "version", "error")

LEVEL_CASES = [
    pytest.param(module, item_max, key, level, id=f"{module.INSTRUMENT}-{key}-{level}")
    for module, item_max in ((mg_qol15r, 2), (mg_qol15, 4))
    for key in EXPECTED_KEYS
    for level in range(item_max + 1)
]


def _answers(**answers: int) -> dict[str, Any]:
    return {key: answers.get(key, 0) for key in EXPECTED_KEYS}


@pytest.mark.parametrize(SIGNATURE, INSTRUMENTS)
def test_constants(
    module: ModuleType, name: str, item_max: int, total_max: int, version: str, error: type
) -> None:
    """instruments.md 4: item and total ranges per version."""
    assert module.ITEM_KEYS == EXPECTED_KEYS
    assert [item.number for item in module.ITEMS] == list(range(1, 16))
    assert (module.ITEM_MIN, module.ITEM_MAX, module.TOTAL_MAX) == (0, item_max, total_max)
    assert module.VERSION == version
    assert issubclass(error, InstrumentItemError)
    assert issubclass(error, ValueError)


@pytest.mark.parametrize(("module", "item_max", "key", "level"), LEVEL_CASES)
def test_every_level_of_every_item_counts_its_value(
    module: ModuleType, item_max: int, key: str, level: int
) -> None:
    """instruments.md 4: each item 0-2 (15r) or 0-4 (15); the total is the sum."""
    result = module.score(_answers(**{key: level}))
    assert result.total == level
    assert result.instrument == module.INSTRUMENT
    assert result.instrument_version == module.VERSION


@pytest.mark.parametrize(SIGNATURE, INSTRUMENTS)
def test_total_zero_and_maximum(
    module: ModuleType, name: str, item_max: int, total_max: int, version: str, error: type
) -> None:
    """instruments.md 4: 15 x 2 = 30 (15r), 15 x 4 = 60 (15); no official subscales."""
    assert module.score(_answers()).total == 0
    result = module.score(dict.fromkeys(EXPECTED_KEYS, item_max))
    assert result.total == total_max
    assert result.subscores == {}


def test_the_revised_scale_refuses_the_original_answers_3_and_4() -> None:
    """instruments.md 4: MG-QOL15r is the 3-response version; 3 and 4 exist only on MG-QOL15."""
    for value in (3, 4):
        assert mg_qol15.score(_answers(q1=value)).total == value
        with pytest.raises(mg_qol15r.MgQol15rItemError, match=f"q1 must be 0-2, got {value}"):
            mg_qol15r.score(_answers(q1=value))


def test_worked_examples() -> None:
    answers = dict(zip(EXPECTED_KEYS, [2, 1, 0, 2, 1, 0, 2, 1, 0, 2, 1, 0, 2, 1, 0], strict=True))
    assert mg_qol15r.score(answers).total == 15
    original = dict(zip(EXPECTED_KEYS, [4, 3, 2, 1, 0] * 3, strict=True))
    assert mg_qol15.score(original).total == 30


@pytest.mark.parametrize(("module", "item_max"), [(mg_qol15r, 2), (mg_qol15, 4)])
@given(data=st.data())
def test_total_in_range_and_raising_an_item_adds_exactly_its_points(
    module: ModuleType, item_max: int, data: st.DataObject
) -> None:
    answers = data.draw(
        st.fixed_dictionaries({key: st.integers(0, item_max) for key in EXPECTED_KEYS})
    )
    key = data.draw(st.sampled_from(EXPECTED_KEYS))
    step = data.draw(st.integers(1, item_max))
    before = module.score(answers).total
    assert before == sum(answers.values())
    assert 0 <= before <= module.TOTAL_MAX
    raised = {**answers, key: min(item_max, answers[key] + step)}
    after = module.score(raised).total
    assert after - before == raised[key] - answers[key] >= 0


# --- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(SIGNATURE, INSTRUMENTS)
@pytest.mark.parametrize("key", EXPECTED_KEYS)
def test_each_missing_item_is_refused_by_name(
    module: ModuleType,
    name: str,
    item_max: int,
    total_max: int,
    version: str,
    error: type[InstrumentItemError],
    key: str,
) -> None:
    answers = _answers()
    del answers[key]
    with pytest.raises(error, match=rf"missing {name} item\(s\): {key}$") as info:
        module.score(answers)
    assert info.value.items == (key,)


@pytest.mark.parametrize(SIGNATURE, INSTRUMENTS)
@pytest.mark.parametrize("key", ["q0", "q16", "Q1", "1", "frustration"])
def test_unknown_key_is_refused_by_name(
    module: ModuleType,
    name: str,
    item_max: int,
    total_max: int,
    version: str,
    error: type[InstrumentItemError],
    key: str,
) -> None:
    with pytest.raises(error, match=rf"unknown {name} item\(s\): {key}$") as info:
        module.score({**_answers(), key: 0})
    assert info.value.items == (key,)


@pytest.mark.parametrize(SIGNATURE, INSTRUMENTS)
@pytest.mark.parametrize("key", EXPECTED_KEYS)
def test_out_of_range_answer_is_refused_by_name(
    module: ModuleType,
    name: str,
    item_max: int,
    total_max: int,
    version: str,
    error: type[InstrumentItemError],
    key: str,
) -> None:
    for value in (-1, item_max + 1, 100):
        with pytest.raises(error, match=f"{name} item {key} must be 0-{item_max}, got {value}$"):
            module.score(_answers(**{key: value}))


@pytest.mark.parametrize(SIGNATURE, INSTRUMENTS)
@pytest.mark.parametrize("value", [True, False, 1.0, 0.5, "1", None, float("nan")])
def test_non_integer_answer_is_refused_by_name(
    module: ModuleType,
    name: str,
    item_max: int,
    total_max: int,
    version: str,
    error: type[InstrumentItemError],
    value: Any,
) -> None:
    for key in EXPECTED_KEYS:
        with pytest.raises(error, match=f"{name} item {key} must be an integer") as info:
            module.score({**_answers(), key: value})
        assert info.value.items == (key,)


@pytest.mark.parametrize("module", [mg_qol15r, mg_qol15])
def test_non_mapping_is_refused(module: ModuleType) -> None:
    with pytest.raises(ValueError, match="mapping"):
        module.score([0] * 15)


# --- labels (instruments.md 4.1) ------------------------------------------------------------


def test_labels_are_tagged_as_instruments_md_tags_them() -> None:
    """instruments.md 4.1: the paraphrases come from an analysis script [S, S26]; as the
    original MG-QOL15's wording they are [U] (three items were revised, which ones is [U]).
    Response labels of both versions are [U] (section 4; section 12 item 5)."""
    assert {item.tag for item in mg_qol15r.ITEMS} == {"S"}
    assert {item.tag for item in mg_qol15.ITEMS} == {"U"}
    assert mg_qol15r.RESPONSE_LABELS_TAG == "U"
    assert mg_qol15.RESPONSE_LABELS_TAG == "U"
    assert mg_qol15r.RESPONSE_LABELS == ("not at all", "somewhat", "very much")
    assert mg_qol15.RESPONSE_LABELS == (
        "not at all",
        "a little bit",
        "somewhat",
        "quite a bit",
        "very much",
    )


def test_recalled_original_wording_is_not_shown() -> None:
    """instruments.md 4.1: the original item 10 on driving is from memory; do not show it."""
    assert not any("driv" in item.label.lower() for item in mg_qol15.ITEMS)


@needs_md
@pytest.mark.parametrize("module", [mg_qol15r, mg_qol15])
def test_labels_match_instruments_md_4_1(module: ModuleType) -> None:
    """instruments.md 4.1, parsed at test time: items 1-15 in the instrument's order."""
    text = INSTRUMENTS_MD.read_text(encoding="utf-8")
    section = text.split("### 4.1", 1)[1].split("\n## ", 1)[0]
    listed = dict(re.findall(r"^(\d+)\. (.+)$", section, flags=re.MULTILINE))
    assert [int(number) for number in listed] == list(range(1, 16))
    assert [item.label for item in module.ITEMS] == list(listed.values())
