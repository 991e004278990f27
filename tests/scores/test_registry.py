"""The instrument registry: one scorer and one key list per instrument (instruments.md 1-4)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.scores.instruments import (
    ITEM_KEYS,
    SCORERS,
    TOTAL_MAX,
    InstrumentItemError,
    InstrumentScore,
    UnknownInstrumentError,
    mg_adl,
    mg_qol15,
    mg_qol15r,
    mgc,
    qmg,
    score_instrument,
    score_mg_adl,
)

API_CONTRACT = Path("/work/shared/api-contract.md")

# Highest item value per instrument (instruments.md 1.1, 2, 3 (levels), 4) and highest total.
ITEM_MAX = {"mg_adl": 3, "qmg": 3, "mgc": 3, "mg_qol15r": 2, "mg_qol15": 4}
EXPECTED_TOTAL_MAX = {"mg_adl": 24, "qmg": 39, "mgc": 50, "mg_qol15r": 30, "mg_qol15": 60}
MODULES = {"mg_adl": mg_adl, "qmg": qmg, "mgc": mgc, "mg_qol15r": mg_qol15r, "mg_qol15": mg_qol15}


def test_registry_covers_the_five_contract_instruments() -> None:
    assert set(SCORERS) == set(ITEM_KEYS) == set(TOTAL_MAX) == set(MODULES)
    assert TOTAL_MAX == EXPECTED_TOTAL_MAX


@pytest.mark.skipif(not API_CONTRACT.exists(), reason="shared/api-contract.md not present")
def test_every_scored_trend_instrument_is_registered() -> None:
    text = API_CONTRACT.read_text(encoding="utf-8")
    for name in MODULES:
        assert f"`{name}`" in text


@pytest.mark.parametrize("name", list(MODULES))
def test_item_keys_are_the_modules_keys(name: str) -> None:
    assert ITEM_KEYS[name] == MODULES[name].ITEM_KEYS
    assert len(set(ITEM_KEYS[name])) == len(ITEM_KEYS[name])


def test_item_counts() -> None:
    """instruments.md: MG-ADL 8, QMG 13, MGC 10, MG-QOL15(r) 15 items."""
    assert {name: len(keys) for name, keys in ITEM_KEYS.items()} == {
        "mg_adl": 8,
        "qmg": 13,
        "mgc": 10,
        "mg_qol15r": 15,
        "mg_qol15": 15,
    }


@pytest.mark.parametrize("name", list(MODULES))
def test_lowest_and_highest_entries(name: str) -> None:
    lowest = score_instrument(name, dict.fromkeys(ITEM_KEYS[name], 0))
    highest = score_instrument(name, dict.fromkeys(ITEM_KEYS[name], ITEM_MAX[name]))
    assert isinstance(lowest, InstrumentScore)
    assert (lowest.instrument, lowest.total) == (name, 0)
    assert highest.total == EXPECTED_TOTAL_MAX[name]
    assert highest.instrument_version == MODULES[name].VERSION


def test_versions_are_distinct() -> None:
    versions = [module.VERSION for module in MODULES.values()]
    assert len(set(versions)) == len(versions)


@pytest.mark.parametrize("name", list(MODULES))
def test_incomplete_entries_are_refused_naming_the_item(name: str) -> None:
    first, *rest = ITEM_KEYS[name]
    with pytest.raises(ValueError, match="missing") as info:
        score_instrument(name, dict.fromkeys(rest, 0))
    assert info.value.items == (first,)  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", list(MODULES))
@pytest.mark.parametrize("value", [True, 1.0, -1, 5])
def test_bad_values_are_refused_naming_the_item(name: str, value: Any) -> None:
    key = ITEM_KEYS[name][-1]
    with pytest.raises(ValueError, match=f"item {key} must be") as info:
        score_instrument(name, {**dict.fromkeys(ITEM_KEYS[name], 0), key: value})
    assert info.value.items == (key,)  # type: ignore[attr-defined]


def test_new_instrument_errors_share_a_base() -> None:
    for error in (
        qmg.QmgItemError,
        mgc.MgcItemError,
        mg_qol15r.MgQol15rItemError,
        mg_qol15.MgQol15ItemError,
    ):
        assert issubclass(error, InstrumentItemError)


@pytest.mark.parametrize("name", ["MG-ADL", "qmg_r", "mg_qol", "steps", ""])
def test_unknown_instrument_is_refused(name: str) -> None:
    with pytest.raises(UnknownInstrumentError, match="no scorer for instrument"):
        score_instrument(name, {})


@given(st.fixed_dictionaries({key: st.integers(0, 3) for key in mg_adl.ITEM_KEYS}))
def test_mg_adl_adapter_keeps_mg_adl_results(items: dict[str, int]) -> None:
    """mg_adl's own API is unchanged; the adapter carries its total, version and the four
    instruments.md 1.3 domains as subscores."""
    original = mg_adl.score(items)
    adapted = score_mg_adl(items)
    assert SCORERS["mg_adl"] is score_mg_adl
    assert adapted == InstrumentScore(
        instrument="mg_adl",
        total=original.total,
        instrument_version=original.instrument_version,
        subscores={
            "ocular": original.ocular,
            "bulbar": original.bulbar,
            "respiratory": original.respiratory,
            "limb": original.limb,
        },
    )
    assert sum(adapted.subscores.values()) == adapted.total


@given(st.data())
def test_every_registered_total_stays_in_range(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(SCORERS)))
    items = data.draw(
        st.fixed_dictionaries({key: st.integers(0, ITEM_MAX[name]) for key in ITEM_KEYS[name]})
    )
    result = SCORERS[name](items)
    assert 0 <= result.total <= TOTAL_MAX[name]
    assert result.instrument == name
