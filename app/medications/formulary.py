"""Built-in formulary: MG medications, study products and the drugs around CRS.

Rows follow instruments.md section 8 (common MG medications: class, diary unit, route), with
dexamethasone (premedication, instruments.md 7.1), the study products of trials.md, paracetamol
(premedication in the Duesseldorf case report, trials.md 5) and tocilizumab (anti-cytokine therapy
for CRS, instruments.md 6.1). ``source`` is the instruments.md tag of the row's facts: [C]
confirmed, [S] secondary, [U] unconfirmed. Typical regimens are not encoded: doses are recorded
as taken, never checked against a label range here.

Brand names beyond those instruments.md prints (Imuran, CellCept, Prograf, Neoral, Rituxan,
Blincyto ...) are general knowledge [U], used only so that ``lookup`` finds what a patient types.

A medication outside the formulary is recorded as free text; ``lookup`` returns None for it.

Pure module: no database, no web framework.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

SourceTag = Literal["C", "S", "U"]

UNITS: Final[tuple[str, ...]] = (
    "mg",
    "mcg",
    "g",
    "mL",
    "IU",
    "U",
    "mg/kg",
    "g/kg",
    "mg/m2",
    "mcg/day",
    "mcg/m2/day",
    "cells",
    "cells/kg",
    "tablet",
    "capsule",
    "session",
    "dose",
    "puff",
    "drop",
)
"""Dose units a diary entry may use (instruments.md 8 "Diary unit" column, plus count units)."""

ROUTES: Final[tuple[str, ...]] = (
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
)

PREDNISONE_EQUIVALENCE_SOURCE: Final = "U"
"""Tag of the prednisone-equivalence factors: [U] standard conversion, verify per protocol.

instruments.md does not give corticosteroid equivalences. The factors are the usual
anti-inflammatory equivalences, each expressed as mg prednisone per mg of the drug, from the dose
equal to 5 mg prednisone: prednisone 5 mg, prednisolone 5 mg, methylprednisolone 4 mg,
dexamethasone 0.75 mg, hydrocortisone 20 mg, deflazacort 6 mg. So dexamethasone is 5/0.75 = 6.67
and deflazacort 5/6 = 0.83, kept as exact ratios rather than the rounded figures.
"""


@dataclass(frozen=True, slots=True)
class FormularyEntry:
    """A formulary medication.

    ``usual_units`` and ``routes`` come first-choice first; ``diary_unit`` is instruments.md 8's
    wording of what the diary records. ``prednisone_equivalence`` (corticosteroids only) is mg of
    prednisone per mg of this drug ([U], see ``PREDNISONE_EQUIVALENCE_SOURCE``). ``antipyretic``
    and ``anti_cytokine`` mark treatments after which the ASTCT CRS grade no longer needs a fever
    (instruments.md 6.1 rule 2; corticosteroids are found through ``is_corticosteroid``).
    """

    code: str
    generic_name: str
    brand_names: tuple[str, ...]
    drug_class: str
    usual_units: tuple[str, ...]
    routes: tuple[str, ...]
    source: SourceTag
    reference: str
    diary_unit: str = ""
    synonyms: tuple[str, ...] = ()
    is_study_drug: bool = False
    is_corticosteroid: bool = False
    prednisone_equivalence: float | None = None
    antipyretic: bool = False
    anti_cytokine: bool = False


def _steroid(
    code: str,
    *,
    equivalent_to_5mg_prednisone: float,
    routes: tuple[str, ...],
    source: SourceTag,
    reference: str,
    brand_names: tuple[str, ...] = (),
    synonyms: tuple[str, ...] = (),
    diary_unit: str = "mg/day",
) -> FormularyEntry:
    return FormularyEntry(
        code=code,
        generic_name=code,
        brand_names=brand_names,
        drug_class="corticosteroid",
        usual_units=("mg",),
        routes=routes,
        source=source,
        reference=reference,
        diary_unit=diary_unit,
        synonyms=synonyms,
        is_corticosteroid=True,
        prednisone_equivalence=5 / equivalent_to_5mg_prednisone,
    )


_ENTRIES: tuple[FormularyEntry, ...] = (
    FormularyEntry(
        code="pyridostigmine",
        generic_name="pyridostigmine",
        brand_names=("Mestinon",),
        synonyms=("pyridostigmine bromide",),
        drug_class="acetylcholinesterase inhibitor",
        usual_units=("mg", "tablet", "mL"),
        routes=("PO",),
        diary_unit="mg per dose + doses/day (also ER tablet)",
        source="C",
        reference="instruments.md 8 (S53, S54, S55, S56)",
    ),
    _steroid(
        "prednisone",
        equivalent_to_5mg_prednisone=5,
        routes=("PO",),
        diary_unit="mg/day (record alternate-day)",
        source="C",
        reference="instruments.md 8 (S53, S54, S57)",
    ),
    _steroid(
        "prednisolone",
        equivalent_to_5mg_prednisone=5,
        routes=("PO",),
        diary_unit="mg/day (record alternate-day)",
        source="C",
        reference="instruments.md 8 (S53, S54, S57)",
    ),
    _steroid(
        "methylprednisolone",
        equivalent_to_5mg_prednisone=4,
        routes=("PO", "IV"),
        brand_names=("Medrol", "Solu-Medrol"),
        synonyms=("IVMP", "IV methylprednisolone"),
        diary_unit="mg/day; IV pulse mg/day for 1-3 days",
        source="C",
        reference="instruments.md 8, prednisone row: IV pulse 500-1000 mg/day (S53, S54, S57)",
    ),
    _steroid(
        "dexamethasone",
        equivalent_to_5mg_prednisone=0.75,
        routes=("PO", "IV"),
        brand_names=("Decadron",),
        diary_unit="mg per dose",
        source="C",
        reference="instruments.md 7.1: premedication 20 mg IV; CRS 8 mg every 8 h (S38, S47)",
    ),
    _steroid(
        "hydrocortisone",
        equivalent_to_5mg_prednisone=20,
        routes=("PO", "IV"),
        brand_names=("Cortef", "Solu-Cortef"),
        source="U",
        reference="not in instruments.md",
    ),
    _steroid(
        "deflazacort",
        equivalent_to_5mg_prednisone=6,
        routes=("PO",),
        brand_names=("Emflaza",),
        source="U",
        reference="not in instruments.md",
    ),
    FormularyEntry(
        code="azathioprine",
        generic_name="azathioprine",
        brand_names=("Imuran",),
        drug_class="antimetabolite",
        usual_units=("mg", "tablet"),
        routes=("PO",),
        diary_unit="mg/day",
        source="C",
        reference="instruments.md 8 (S53)",
    ),
    FormularyEntry(
        code="mycophenolate_mofetil",
        generic_name="mycophenolate mofetil",
        brand_names=("CellCept",),
        synonyms=("MMF",),
        drug_class="antimetabolite",
        usual_units=("mg", "g"),
        routes=("PO",),
        diary_unit="mg/day (usually split twice daily)",
        source="S",
        reference="instruments.md 8 (S58)",
    ),
    FormularyEntry(
        code="tacrolimus",
        generic_name="tacrolimus",
        brand_names=("Prograf",),
        drug_class="calcineurin inhibitor",
        usual_units=("mg", "capsule"),
        routes=("PO",),
        diary_unit="mg/day (+ trough ng/mL)",
        source="S",
        reference="instruments.md 8 (S59, S60)",
    ),
    FormularyEntry(
        code="methotrexate",
        generic_name="methotrexate",
        brand_names=(),
        drug_class="antimetabolite",
        usual_units=("mg",),
        routes=("PO", "SC"),
        diary_unit="mg/week",
        source="U",
        reference="instruments.md 8 (dose not verified)",
    ),
    FormularyEntry(
        code="cyclosporine",
        generic_name="cyclosporine",
        brand_names=("Neoral", "Sandimmune"),
        synonyms=("ciclosporin",),
        drug_class="calcineurin inhibitor",
        usual_units=("mg", "mg/kg"),
        routes=("PO",),
        diary_unit="mg/day (mg/kg/day), split twice daily",
        source="U",
        reference="instruments.md 8 (dose not verified)",
    ),
    FormularyEntry(
        code="ivig",
        generic_name="intravenous immunoglobulin",
        brand_names=(),
        synonyms=("IV immunoglobulin", "immune globulin intravenous"),
        drug_class="immunoglobulin",
        usual_units=("g", "g/kg"),
        routes=("IV",),
        diary_unit="g/kg per course (record g and kg)",
        source="C",
        reference="instruments.md 8 (S54 induction [C]; S61 maintenance [S])",
    ),
    FormularyEntry(
        code="plasma_exchange",
        generic_name="plasma exchange",
        brand_names=(),
        synonyms=("PLEX", "plasmapheresis", "therapeutic plasma exchange", "TPE"),
        drug_class="procedure",
        usual_units=("session", "mL"),
        routes=("extracorporeal",),
        diary_unit="sessions / exchange volume",
        source="U",
        reference="instruments.md 8 (regimen not verified)",
    ),
    FormularyEntry(
        code="efgartigimod",
        generic_name="efgartigimod alfa",
        brand_names=("Vyvgart",),
        drug_class="FcRn blocker",
        usual_units=("mg/kg", "mg"),
        routes=("IV",),
        diary_unit="mg/kg per infusion; cycle = 4 weekly doses",
        source="C",
        reference="instruments.md 8 (S7, S62)",
    ),
    FormularyEntry(
        code="efgartigimod_hyaluronidase",
        generic_name="efgartigimod alfa and hyaluronidase",
        brand_names=("Vyvgart Hytrulo",),
        synonyms=("efgartigimod + hyaluronidase", "efgartigimod alfa + hyaluronidase"),
        drug_class="FcRn blocker",
        usual_units=("mg",),
        routes=("SC",),
        diary_unit="fixed mg per injection",
        source="C",
        reference="instruments.md 8 (S7)",
    ),
    FormularyEntry(
        code="eculizumab",
        generic_name="eculizumab",
        brand_names=("Soliris",),
        drug_class="C5 inhibitor",
        usual_units=("mg",),
        routes=("IV",),
        diary_unit="mg per infusion",
        source="S",
        reference="instruments.md 8 (S63 [S]; S64 [C])",
    ),
    FormularyEntry(
        code="ravulizumab",
        generic_name="ravulizumab",
        brand_names=("Ultomiris",),
        drug_class="C5 inhibitor",
        usual_units=("mg",),
        routes=("IV",),
        diary_unit="mg per infusion",
        source="C",
        reference="instruments.md 8 (S65 [C]; weight bands S66 [S])",
    ),
    FormularyEntry(
        code="rozanolixizumab",
        generic_name="rozanolixizumab",
        brand_names=("Rystiggo",),
        drug_class="FcRn blocker",
        usual_units=("mg",),
        routes=("SC",),
        diary_unit="mg per weekly infusion (SC pump); cycle = 6 doses",
        source="C",
        reference="instruments.md 8 (S67)",
    ),
    FormularyEntry(
        code="zilucoplan",
        generic_name="zilucoplan",
        brand_names=("Zilbrysq",),
        drug_class="C5 inhibitor (peptide)",
        usual_units=("mg",),
        routes=("SC",),
        diary_unit="mg per daily injection",
        source="C",
        reference="instruments.md 8 (S68)",
    ),
    FormularyEntry(
        code="rituximab",
        generic_name="rituximab",
        brand_names=("Rituxan", "MabThera"),
        drug_class="anti-CD20",
        usual_units=("mg", "mg/m2"),
        routes=("IV",),
        diary_unit="mg per infusion (or mg/m2)",
        source="S",
        reference="instruments.md 8 (S63)",
    ),
    FormularyEntry(
        code="blinatumomab",
        generic_name="blinatumomab",
        brand_names=("Blincyto",),
        drug_class="CD19xCD3 bispecific T-cell engager",
        usual_units=("mcg/day", "mcg/m2/day", "mcg"),
        routes=("IV",),
        diary_unit="mcg/day continuous",
        source="C",
        reference="instruments.md 7 and 8; study drug of NCT06836973 (trials.md 1, 5)",
        is_study_drug=True,
    ),
    # Study products (trials.md 2-4). Their doses are set per protocol dose level.
    FormularyEntry(
        code="car_t_cd19_bcma",
        generic_name="CD19-BCMA CAR-T cells",
        brand_names=(),
        synonyms=("CD19-BCMA CAR-T",),
        drug_class="CAR-T cell therapy",
        usual_units=("cells", "cells/kg"),
        routes=("IV",),
        diary_unit="single infusion, cells per protocol dose level",
        source="U",
        reference="trials.md 2 (NCT06371040: single infusion; dose unit not in registry text)",
        is_study_drug=True,
    ),
    FormularyEntry(
        code="hn2301",
        generic_name="HN2301 (in vivo CAR-T)",
        brand_names=(),
        synonyms=("HN2301", "HN-2301"),
        drug_class="in vivo CAR-T",
        usual_units=("dose",),
        routes=("IV",),
        diary_unit="administration per protocol",
        source="U",
        reference="trials.md 3 (regimen, route and dose unit not in registry text)",
        is_study_drug=True,
    ),
    FormularyEntry(
        code="car_nk_cd19",
        generic_name="allogeneic CD19 CAR-NK cells",
        brand_names=(),
        synonyms=("CD19 CAR-NK", "CD19-CAR-NK"),
        drug_class="CAR-NK cell therapy",
        usual_units=("cells",),
        routes=("IV",),
        diary_unit="fixed dose every 2 weeks",
        source="C",
        reference="trials.md 4 (NCT07243366 registry text: fixed dose intravenously)",
        is_study_drug=True,
    ),
    # Around CRS.
    FormularyEntry(
        code="paracetamol",
        generic_name="paracetamol",
        brand_names=("Tylenol", "Panadol"),
        synonyms=("acetaminophen",),
        drug_class="analgesic and antipyretic",
        usual_units=("mg", "g", "tablet"),
        routes=("PO", "IV", "rectal"),
        diary_unit="mg per dose",
        source="U",
        reference="trials.md 5 (premedication against CRS in the case report); units [U]",
        antipyretic=True,
    ),
    FormularyEntry(
        code="tocilizumab",
        generic_name="tocilizumab",
        brand_names=("Actemra", "RoActemra"),
        drug_class="IL-6 receptor antagonist",
        usual_units=("mg", "mg/kg"),
        routes=("IV", "SC"),
        diary_unit="mg per dose",
        source="U",
        reference="instruments.md 6.1 rule 2 (anti-cytokine therapy); 1.4 (NCT05067348); "
        "dose and route [U]",
        anti_cytokine=True,
    ),
)

FORMULARY: Final[dict[str, FormularyEntry]] = {entry.code: entry for entry in _ENTRIES}


def _normalise(text: str) -> str:
    text = text.replace("\u00ae", "").replace("\u2122", "")  # (R), (TM)
    return re.sub(r"[\s_\-]+", " ", text.casefold()).strip()


def _build_index() -> dict[str, FormularyEntry]:
    index: dict[str, FormularyEntry] = {}
    for entry in _ENTRIES:
        for name in (entry.code, entry.generic_name, *entry.brand_names, *entry.synonyms):
            key = _normalise(name)
            other = index.get(key)
            if other is not None and other is not entry:
                raise RuntimeError(f"formulary name {name!r} is claimed by {other.code}")
            index[key] = entry
    return index


_INDEX: Final = MappingProxyType(_build_index())


def lookup(code_or_text: str) -> FormularyEntry | None:
    """The formulary entry whose code, generic name, brand name or synonym matches.

    Case, surrounding spaces, ``_``/``-``/space differences and (R)/(TM) marks are ignored
    ("MESTINON", "Vyvgart Hytrulo", "car-t-cd19-bcma"). Only whole names match: "Vyvgart" is the
    IV product and "Vyvgart Hytrulo" the SC one. Anything else is None (record it as free text).
    """
    if not isinstance(code_or_text, str):
        return None
    return _INDEX.get(_normalise(code_or_text))


def prednisone_equivalent_mg(code: str, amount_mg: float) -> float | None:
    """Prednisone-equivalent mg of ``amount_mg`` of corticosteroid ``code``.

    Uses ``FormularyEntry.prednisone_equivalence``: a standard conversion tagged [U] (instruments.md
    gives none; see ``PREDNISONE_EQUIVALENCE_SOURCE``), to verify against each protocol. E.g.
    4 mg methylprednisolone -> 5 mg, 0.75 mg dexamethasone -> 5 mg. Returns None for a code that
    is not a formulary corticosteroid. The result is rounded to 0.0001 mg to drop floating-point
    noise. Raises ValueError for a negative, infinite or NaN amount.
    """
    if isinstance(amount_mg, bool) or not isinstance(amount_mg, int | float):
        raise ValueError("amount_mg must be a number")
    if not math.isfinite(amount_mg) or amount_mg < 0:
        raise ValueError(f"amount_mg must be a finite number >= 0, got {amount_mg}")
    entry = FORMULARY.get(code)
    if entry is None or entry.prednisone_equivalence is None:
        return None
    return round(amount_mg * entry.prednisone_equivalence, 4)
