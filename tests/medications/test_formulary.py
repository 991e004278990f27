"""The built-in formulary against instruments.md section 8 (and 6.1, 7.1) and trials.md."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.medications.formulary import (
    FORMULARY,
    PREDNISONE_EQUIVALENCE_SOURCE,
    ROUTES,
    UNITS,
    FormularyEntry,
    lookup,
    prednisone_equivalent_mg,
)

# instruments.md 8 table [tags per row]: code -> (route(s), first diary unit, source tag).
SECTION_8: dict[str, tuple[tuple[str, ...], str, str]] = {
    "pyridostigmine": (("PO",), "mg", "C"),
    "prednisone": (("PO",), "mg", "C"),
    "prednisolone": (("PO",), "mg", "C"),
    "methylprednisolone": (("PO", "IV"), "mg", "C"),  # IV pulse, prednisone row
    "azathioprine": (("PO",), "mg", "C"),
    "mycophenolate_mofetil": (("PO",), "mg", "S"),
    "tacrolimus": (("PO",), "mg", "S"),
    "methotrexate": (("PO", "SC"), "mg", "U"),
    "cyclosporine": (("PO",), "mg", "U"),
    "ivig": (("IV",), "g", "C"),
    "plasma_exchange": (("extracorporeal",), "session", "U"),
    "efgartigimod": (("IV",), "mg/kg", "C"),
    "efgartigimod_hyaluronidase": (("SC",), "mg", "C"),
    "eculizumab": (("IV",), "mg", "S"),
    "ravulizumab": (("IV",), "mg", "C"),
    "rozanolixizumab": (("SC",), "mg", "C"),
    "zilucoplan": (("SC",), "mg", "C"),
    "rituximab": (("IV",), "mg", "S"),
    "blinatumomab": (("IV",), "mcg/day", "C"),
}

STUDY_PRODUCTS = {"blinatumomab", "car_t_cd19_bcma", "hn2301", "car_nk_cd19"}
CORTICOSTEROIDS = {
    "prednisone",
    "prednisolone",
    "methylprednisolone",
    "dexamethasone",
    "hydrocortisone",
    "deflazacort",
}


@pytest.mark.parametrize("code", sorted(SECTION_8))
def test_every_section_8_drug_has_its_route_unit_and_tag(code: str) -> None:
    """instruments.md 8: route and diary unit columns, and the row's [C]/[S]/[U] tag."""
    routes, unit, tag = SECTION_8[code]
    entry = FORMULARY[code]
    assert entry.routes == routes
    assert entry.usual_units[0] == unit
    assert entry.source == tag
    assert entry.diary_unit


def test_diary_units_follow_section_8() -> None:
    """instruments.md 8 "Diary unit": the distinctive ones (per week, per course, sessions)."""
    assert FORMULARY["methotrexate"].diary_unit == "mg/week"
    assert FORMULARY["ivig"].usual_units == ("g", "g/kg")
    assert FORMULARY["plasma_exchange"].usual_units == ("session", "mL")
    assert FORMULARY["blinatumomab"].diary_unit == "mcg/day continuous"
    assert FORMULARY["pyridostigmine"].diary_unit.startswith("mg per dose")


def test_extra_entries_the_issue_asks_for() -> None:
    """instruments.md 7.1 (dexamethasone premedication IV), 6.1 (tocilizumab), trials.md 2-5."""
    assert {"dexamethasone", "hydrocortisone", "deflazacort"} <= set(FORMULARY)
    assert {"paracetamol", "tocilizumab"} <= set(FORMULARY)
    assert STUDY_PRODUCTS <= set(FORMULARY)
    assert "IV" in FORMULARY["dexamethasone"].routes
    assert FORMULARY["car_nk_cd19"].routes == ("IV",)  # trials.md 4: "intravenously"
    assert FORMULARY["paracetamol"].antipyretic is True
    assert FORMULARY["tocilizumab"].anti_cytokine is True
    assert not any(
        e.antipyretic or e.anti_cytokine
        for e in FORMULARY.values()
        if e.code not in {"paracetamol", "tocilizumab"}
    )


def test_study_drugs() -> None:
    """trials.md 1-5: blinatumomab and the three cell/in vivo products are study drugs."""
    assert {code for code, e in FORMULARY.items() if e.is_study_drug} == STUDY_PRODUCTS


def test_every_unit_and_route_is_in_the_accepted_lists() -> None:
    for entry in FORMULARY.values():
        assert entry.usual_units, entry.code
        assert entry.routes, entry.code
        assert set(entry.usual_units) <= set(UNITS), entry.code
        assert set(entry.routes) <= set(ROUTES), entry.code
        assert entry.source in {"C", "S", "U"}
        assert entry.code == entry.code.lower()
    for unit in ("mg", "mcg", "g", "mL", "IU", "U", "mg/kg", "g/kg", "mcg/day", "cells"):
        assert unit in UNITS
    for unit in ("tablet", "capsule", "session"):
        assert unit in UNITS
    assert set(ROUTES) == {
        "PO",
        "IV",
        "SC",
        "IM",
        "inhaled",
        "topical",
        "rectal",
        "nasal",
        "extracorporeal",
        "other",
    }
    assert len(UNITS) == len(set(UNITS))


# --- lookup -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code"),
    [
        # brands printed in instruments.md 8 / 7
        ("Mestinon", "pyridostigmine"),
        ("Vyvgart", "efgartigimod"),
        ("Vyvgart Hytrulo", "efgartigimod_hyaluronidase"),
        ("Soliris", "eculizumab"),
        ("Ultomiris", "ravulizumab"),
        ("Rystiggo", "rozanolixizumab"),
        ("Zilbrysq", "zilucoplan"),
        ("Blincyto", "blinatumomab"),
        ("BLINCYTO", "blinatumomab"),
        # case, spacing, separators, marks
        ("mestinon", "pyridostigmine"),
        ("  MESTINON ", "pyridostigmine"),
        ("vyvgart   hytrulo", "efgartigimod_hyaluronidase"),
        ("Soliris\u00ae", "eculizumab"),
        ("Prednisone", "prednisone"),
        ("mycophenolate-mofetil", "mycophenolate_mofetil"),
        ("Mycophenolate Mofetil", "mycophenolate_mofetil"),
        ("car-t-cd19-bcma", "car_t_cd19_bcma"),
        # generic names and synonyms
        ("efgartigimod alfa", "efgartigimod"),
        ("Efgartigimod + hyaluronidase", "efgartigimod_hyaluronidase"),
        ("IVIG", "ivig"),
        ("IVIg", "ivig"),
        ("intravenous immunoglobulin", "ivig"),
        ("PLEX", "plasma_exchange"),
        ("plasmapheresis", "plasma_exchange"),
        ("IVMP", "methylprednisolone"),
        ("acetaminophen", "paracetamol"),
        ("ciclosporin", "cyclosporine"),
        ("MMF", "mycophenolate_mofetil"),
        # protocol dosing product names (app/studies/builtin.py)
        ("CD19-BCMA CAR-T", "car_t_cd19_bcma"),
        ("HN2301", "hn2301"),
        ("CD19 CAR-NK", "car_nk_cd19"),
        ("blinatumomab", "blinatumomab"),
        # washout therapy names (trials.md 4)
        ("IV methylprednisolone", "methylprednisolone"),
        ("plasma exchange", "plasma_exchange"),
        ("rituximab", "rituximab"),
    ],
)
def test_lookup_by_code_generic_brand_and_synonym(text: str, code: str) -> None:
    entry = lookup(text)
    assert entry is not None
    assert entry.code == code


@pytest.mark.parametrize(
    "text", ["", "   ", "Vyvgart Hytrulo SC", "mestinon 60", "aspirin", "vyv", "live vaccine"]
)
def test_lookup_without_a_whole_name_match_is_free_text(text: str) -> None:
    assert lookup(text) is None


def test_every_name_finds_its_own_entry() -> None:
    for entry in FORMULARY.values():
        for name in (entry.code, entry.generic_name, *entry.brand_names, *entry.synonyms):
            assert lookup(name) is entry, name
            assert lookup(name.upper()) is entry, name


# --- prednisone equivalence ---------------------------------------------------------------


def test_only_corticosteroids_carry_an_equivalence() -> None:
    """Corticosteroids carry their factor; nothing else does."""
    assert {c for c, e in FORMULARY.items() if e.is_corticosteroid} == CORTICOSTEROIDS
    for entry in FORMULARY.values():
        assert (entry.prednisone_equivalence is not None) is entry.is_corticosteroid
    assert PREDNISONE_EQUIVALENCE_SOURCE == "U"


@pytest.mark.parametrize(
    ("code", "factor"),
    [
        ("prednisone", 1.0),
        ("prednisolone", 1.0),
        ("methylprednisolone", 1.25),
        ("dexamethasone", 6.67),
        ("hydrocortisone", 0.25),
        ("deflazacort", 0.83),
    ],
)
def test_equivalence_factors(code: str, factor: float) -> None:
    """[U] standard conversion (instruments.md gives none): the issue's factors, to 2 decimals."""
    equivalence = FORMULARY[code].prednisone_equivalence
    assert equivalence is not None
    assert round(equivalence, 2) == factor


@pytest.mark.parametrize(
    ("code", "amount", "expected"),
    [
        ("prednisone", 20, 20),
        ("prednisolone", 12.5, 12.5),
        ("methylprednisolone", 4, 5),
        ("methylprednisolone", 1000, 1250),  # IV pulse (instruments.md 8)
        ("dexamethasone", 0.75, 5),
        ("dexamethasone", 20, 133.3333),  # premedication dose (instruments.md 7.1)
        ("dexamethasone", 8, 53.3333),
        ("hydrocortisone", 20, 5),
        ("hydrocortisone", 100, 25),
        ("deflazacort", 6, 5),
        ("deflazacort", 30, 25),
        ("prednisone", 0, 0),
    ],
)
def test_prednisone_equivalent_examples(code: str, amount: float, expected: float) -> None:
    """[U] standard conversion: 5 mg prednisone = 4 mg methylprednisolone = 0.75 mg
    dexamethasone = 20 mg hydrocortisone = 6 mg deflazacort."""
    assert prednisone_equivalent_mg(code, amount) == expected


@pytest.mark.parametrize("code", ["pyridostigmine", "tocilizumab", "unknown", "Prednisone"])
def test_non_corticosteroid_or_unknown_code_has_no_equivalent(code: str) -> None:
    """By code only: "Prednisone" (a name) is not a code; resolve names with lookup() first."""
    assert prednisone_equivalent_mg(code, 10) is None


@pytest.mark.parametrize("amount", [-1, -0.01, math.nan, math.inf])
def test_invalid_amount_is_refused(amount: float) -> None:
    with pytest.raises(ValueError, match="amount_mg"):
        prednisone_equivalent_mg("prednisone", amount)


@given(st.sampled_from(sorted(CORTICOSTEROIDS)), st.floats(0, 2000), st.floats(0, 2000))
def test_equivalent_is_monotonic(code: str, a: float, b: float) -> None:
    """A larger steroid dose never converts to a smaller prednisone equivalent."""
    low, high = sorted((a, b))
    low_eq = prednisone_equivalent_mg(code, low)
    high_eq = prednisone_equivalent_mg(code, high)
    assert low_eq is not None
    assert high_eq is not None
    assert 0 <= low_eq <= high_eq


def test_entries_are_frozen() -> None:
    entry: FormularyEntry = FORMULARY["prednisone"]
    with pytest.raises(AttributeError):
        entry.prednisone_equivalence = 2.0  # type: ignore[misc]
