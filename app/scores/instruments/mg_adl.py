"""MG-ADL: Myasthenia Gravis Activities of Daily Living profile (instruments.md section 1).

Primary reference: Wolfe GI, Herbelin L, Nations SP, Foster B, Bryan WW, Barohn RJ.
*Myasthenia gravis activities of daily living profile.* Neurology 1999;52(7):1487-9,
doi:10.1212/wnl.52.7.1487.

Eight patient-reported items, each graded 0-3 (0 = normal); the total is their sum, 0-24, higher
is worse (instruments.md 1.1 [C]). The anchors below are the published table (instruments.md 1.2,
BMC Neurology 2020 Table 2 [C, S1]) word for word; brushing teeth and combing hair are **one**
item, as there (not the two inputs of the ``cliot`` R package, whose anchors also differ).

Pure module: no database, no web framework.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

INSTRUMENT: Final = "mg_adl"
VERSION: Final = "mg-adl-wolfe-1999.v1"
"""Stored with every score so a later change of anchors or scoring is a new version."""

ITEM_MIN: Final = 0
ITEM_MAX: Final = 3
TOTAL_MAX: Final = 24

DEFAULT_RECALL_PERIOD_DAYS: Final = 7
"""Recall window shown with the questions ("over the past 7 days").

instruments.md 1.1: MDCalc advises the same recall window at every administration and gives
"the past 7 days" as the example [C, S2]; the 1999 paper's own recall period is not stated [U].
A protocol may set another window; the service records the one used with each entry.
"""

Domain = Literal["bulbar", "respiratory", "limb", "ocular"]


@dataclass(frozen=True, slots=True)
class MgAdlItem:
    """One MG-ADL item: its stable key, 1-based number, label and the anchors for grades 0-3."""

    key: str
    number: int
    label: str
    domain: Domain
    anchors: tuple[str, str, str, str]


# instruments.md 1.2 table [C, S1], item order 1-8; domains per instruments.md 1.3.
ITEMS: Final[tuple[MgAdlItem, ...]] = (
    MgAdlItem(
        key="talking",
        number=1,
        label="Talking",
        domain="bulbar",
        anchors=(
            "Normal",
            "Intermittent slurring or nasal speech",
            "Constant slurring or nasal, but can be understood",
            "Difficult to understand speech",
        ),
    ),
    MgAdlItem(
        key="chewing",
        number=2,
        label="Chewing",
        domain="bulbar",
        anchors=("Normal", "Fatigue with solid food", "Fatigue with soft food", "Gastric tube"),
    ),
    MgAdlItem(
        key="swallowing",
        number=3,
        label="Swallowing",
        domain="bulbar",
        anchors=(
            "Normal",
            "Rare episode of choking",
            "Frequent choking necessitating changes in diet",
            "Gastric tube",
        ),
    ),
    MgAdlItem(
        key="breathing",
        number=4,
        label="Breathing",
        domain="respiratory",
        anchors=(
            "Normal",
            "Shortness of breath with exertion",
            "Shortness of breath at rest",
            "Ventilator dependence",
        ),
    ),
    MgAdlItem(
        key="brushing_teeth_or_combing_hair",
        number=5,
        label="Impairment of ability to brush teeth or comb hair",
        domain="limb",
        anchors=(
            "Normal",
            "Extra effort, but no rest periods needed",
            "Rest periods needed",
            "Cannot do one of these functions",
        ),
    ),
    MgAdlItem(
        key="arising_from_chair",
        number=6,
        label="Impairment of ability to arise from chair",
        domain="limb",
        anchors=(
            "Normal",
            "Mild, sometimes uses arms",
            "Moderate, always uses arms",
            "Severe, requires assistance",
        ),
    ),
    MgAdlItem(
        key="double_vision",
        number=7,
        label="Double vision",
        domain="ocular",
        anchors=("Normal", "Occurs, but not daily", "Daily, but not constant", "Constant"),
    ),
    MgAdlItem(
        key="eyelid_droop",
        number=8,
        label="Eyelid droop",
        domain="ocular",
        anchors=("Normal", "Occurs, but not daily", "Daily, but not constant", "Constant"),
    ),
)

ITEM_KEYS: Final[tuple[str, ...]] = tuple(item.key for item in ITEMS)
ITEMS_BY_KEY: Final[Mapping[str, MgAdlItem]] = MappingProxyType({i.key: i for i in ITEMS})

DOMAINS: Final[Mapping[Domain, tuple[str, ...]]] = MappingProxyType(
    {
        domain: tuple(item.key for item in ITEMS if item.domain == domain)
        for domain in ("bulbar", "respiratory", "limb", "ocular")
    }
)
"""Item keys per domain (instruments.md 1.3).

Ocular = items 7-8 is how trials split the score [C, S7, S8]. Bulbar = items 1-3, respiratory =
item 4, limb = items 5-6 is the usual grouping; no primary source defines these formally [U].
"""


class MgAdlItemError(ValueError):
    """An MG-ADL entry that cannot be scored; ``items`` names the offending item keys."""

    def __init__(self, message: str, items: tuple[str, ...]) -> None:
        super().__init__(message)
        self.items = items


@dataclass(frozen=True, slots=True)
class MgAdlScore:
    """A scored MG-ADL entry. ``ocular_share`` is ocular / total, None when the total is 0."""

    total: int
    ocular: int
    bulbar: int
    respiratory: int
    limb: int
    instrument_version: str
    ocular_share: float | None


def score(items: Mapping[str, int]) -> MgAdlScore:
    """Score one complete MG-ADL entry (Wolfe 1999; instruments.md 1.1-1.3).

    Every one of the 8 items must be present with an integer grade 0-3. Missing items, unknown
    keys, booleans, floats (even ``2.0``), strings and out-of-range grades raise
    ``MgAdlItemError`` (a ``ValueError``) naming the item: no imputation, no coercion, because a
    partial MG-ADL is not an MG-ADL.
    """
    if not isinstance(items, Mapping):
        raise MgAdlItemError("MG-ADL items must be a mapping of item key to grade", ())
    unknown = tuple(sorted(str(key) for key in items if key not in ITEMS_BY_KEY))
    if unknown:
        raise MgAdlItemError(f"unknown MG-ADL item(s): {', '.join(unknown)}", unknown)
    missing = tuple(key for key in ITEM_KEYS if key not in items)
    if missing:
        raise MgAdlItemError(f"missing MG-ADL item(s): {', '.join(missing)}", missing)
    for key in ITEM_KEYS:
        value = items[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise MgAdlItemError(
                f"MG-ADL item {key} must be an integer {ITEM_MIN}-{ITEM_MAX}, "
                f"got {type(value).__name__}",
                (key,),
            )
        if not ITEM_MIN <= value <= ITEM_MAX:
            raise MgAdlItemError(
                f"MG-ADL item {key} must be {ITEM_MIN}-{ITEM_MAX}, got {value}", (key,)
            )

    def subtotal(domain: Domain) -> int:
        return sum(items[key] for key in DOMAINS[domain])

    ocular = subtotal("ocular")
    bulbar = subtotal("bulbar")
    respiratory = subtotal("respiratory")
    limb = subtotal("limb")
    total = ocular + bulbar + respiratory + limb
    return MgAdlScore(
        total=total,
        ocular=ocular,
        bulbar=bulbar,
        respiratory=respiratory,
        limb=limb,
        instrument_version=VERSION,
        ocular_share=ocular / total if total else None,
    )


def ocular_share_ok(score: MgAdlScore, *, max_share: float, inclusive: bool) -> bool:
    """Whether the ocular items are a small enough part of the total (instruments.md 1.4).

    ``ocular_share = (item 7 + item 8) / total``. The rule passes when ``ocular_share < max_share``,
    or ``<=`` when ``inclusive``:

    - ADAPT and NCT05067348 ">50 % non-ocular" [C, S7, S8] and NCT07243366 "ocular sub-score
      < 50 %": ``max_share=0.5, inclusive=False``, so an exact 50 % fails;
    - NCT06371040 "the eye score accounts for no more than 50 %" [C, S9]:
      ``max_share=0.5, inclusive=True``, so an exact 50 % passes.

    A total of 0 has no ocular share (0 / 0); the rule then returns **False**. Every trial above
    applies it to a score that must already be >= 5, and a score of 0 has no non-ocular part to
    be the majority, so "undefined" cannot count as eligible.

    The share is compared as a correctly rounded float: for the small integers of MG-ADL, an
    exact boundary such as 3/6 against 0.5 compares equal, never off by a rounding error.
    """
    if isinstance(max_share, bool) or not isinstance(max_share, int | float):
        raise ValueError("max_share must be a number")
    if not math.isfinite(max_share) or not 0 < max_share <= 1:
        raise ValueError(f"max_share must be in (0, 1], got {max_share}")
    if score.total == 0 or score.ocular_share is None:
        return False
    share = score.ocular / score.total
    return share <= max_share if inclusive else share < max_share
