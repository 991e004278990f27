"""MG Composite (MGC) (instruments.md section 3).

Primary reference: Burns TM, Conaway M, Sanders DB. *The MG Composite: a valid and reliable outcome
measure for myasthenia gravis.* Neurology 2010;74(18):1434-40 [C, S14]; construction: Burns et
al., Muscle Nerve 2008;38:1553-62 [C, S22]. Weights as reproduced in UpToDate [C, S21].

10 items; each is entered as its response **level** 0-3 (0 = normal, 3 = worst) and scored with
the weighted lookup table of instruments.md 3, total 0-50, higher is worse. The weights jump
(diplopia 1 -> 3, swallowing 2 -> 5, breathing 4 -> 9) and eye closure gives 0 points for both
normal and mild weakness, so points are looked up, never computed as level x constant.

"Moderate" (neck, shoulder, hip) means roughly 50 % +/- 15 % of expected normal strength; milder
is "mild", weaker is "severe" [C, S21].

instruments.md 3 defines no subscores (ocular, bulbar, respiratory, limb) for the MGC, so none are
computed here: the MG-ADL grouping of instruments.md 1.3 is not carried over.

Pure module: no database, no web framework.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from app.scores.instruments._common import InstrumentItemError, InstrumentScore, check_items

INSTRUMENT: Final = "mgc"
VERSION: Final = "mgc-burns-2010.v1"
"""Stored with every score so a later change of weights or scoring is a new version."""

LEVEL_MIN: Final = 0
LEVEL_MAX: Final = 3
TOTAL_MAX: Final = 50


@dataclass(frozen=True, slots=True)
class MgcItem:
    """One MGC item: key, 1-based number, the table's label (with who assesses it), and for
    response levels 0-3 the anchor and the points it scores."""

    key: str
    number: int
    label: str
    anchors: tuple[str, str, str, str]
    points: tuple[int, int, int, int]


# instruments.md 3 table [C, S14, S21], rows in order; anchors as printed there.
ITEMS: Final[tuple[MgcItem, ...]] = (
    MgcItem(
        "ptosis",
        1,
        "Ptosis, upward gaze (physician)",
        (">45 s", "11–45 s", "1–10 s", "immediate"),
        (0, 1, 2, 3),
    ),
    MgcItem(
        "diplopia",
        2,
        "Double vision on lateral gaze, left or right (physician)",
        (">45 s", "11–45 s", "1–10 s", "immediate"),
        (0, 1, 3, 4),
    ),
    MgcItem(
        "eye_closure",
        3,
        "Eye closure (physician)",
        (
            "normal",
            "mild weakness, can be forced open with effort",
            "moderate, can be forced open easily",
            "severe, unable to keep eyes closed",
        ),
        (0, 0, 1, 2),
    ),
    MgcItem(
        "talking",
        4,
        "Talking (patient history)",
        (
            "normal",
            "intermittent slurring or nasal speech",
            "constant slurring or nasal but can be understood",
            "difficult to understand speech",
        ),
        (0, 2, 4, 6),
    ),
    MgcItem(
        "chewing",
        5,
        "Chewing (patient history)",
        ("normal", "fatigue with solid food", "fatigue with soft food", "gastric tube"),
        (0, 2, 4, 6),
    ),
    MgcItem(
        "swallowing",
        6,
        "Swallowing (patient history)",
        (
            "normal",
            "rare episode of choking or trouble swallowing",
            "frequent trouble swallowing, e.g. necessitating change in diet",
            "gastric tube",
        ),
        (0, 2, 5, 6),
    ),
    MgcItem(
        "breathing",
        7,
        "Breathing (thought to be caused by MG)",
        (
            "normal",
            "short of breath with exertion",
            "short of breath at rest",
            "ventilator dependence",
        ),
        (0, 2, 4, 9),
    ),
    MgcItem(
        "neck",
        8,
        "Neck flexion or extension, whichever is weaker (physician)",
        ("normal", "mild", "moderate (~50% weak ±15%)", "severe"),
        (0, 1, 3, 4),
    ),
    MgcItem(
        "shoulder_abduction",
        9,
        "Shoulder abduction (physician)",
        ("normal", "mild", "moderate", "severe"),
        (0, 2, 4, 5),
    ),
    MgcItem(
        "hip_flexion",
        10,
        "Hip flexion (physician)",
        ("normal", "mild", "moderate", "severe"),
        (0, 2, 4, 5),
    ),
)

ITEM_KEYS: Final[tuple[str, ...]] = tuple(item.key for item in ITEMS)
ITEMS_BY_KEY: Final[Mapping[str, MgcItem]] = MappingProxyType({i.key: i for i in ITEMS})
POINTS: Final[Mapping[str, tuple[int, int, int, int]]] = MappingProxyType(
    {item.key: item.points for item in ITEMS}
)
"""Response level -> points, per item (instruments.md 3)."""


class MgcItemError(InstrumentItemError):
    """An MGC entry that cannot be scored; ``items`` names the offending item keys."""


def points(key: str, level: int) -> int:
    """Points of one item's response level (instruments.md 3 lookup table)."""
    if key not in POINTS:
        raise MgcItemError(f"unknown MGC item(s): {key}", (key,))
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= LEVEL_MAX:
        raise MgcItemError(f"MGC item {key} must be a level 0-{LEVEL_MAX}, got {level!r}", (key,))
    return POINTS[key][level]


def score(items: Mapping[str, int]) -> InstrumentScore:
    """Score one complete MGC examination (Burns 2010; instruments.md 3).

    ``items`` maps each of the 10 item keys to its response **level** 0-3 (not its points); the
    total is the sum of the looked-up points, 0-50. Missing items, unknown keys, booleans,
    floats, strings and out-of-range levels raise ``MgcItemError`` naming the item.
    """
    levels = check_items(items, ITEM_KEYS, name="MGC", maximum=LEVEL_MAX, error=MgcItemError)
    total = sum(POINTS[key][level] for key, level in levels.items())
    return InstrumentScore(instrument=INSTRUMENT, total=total, instrument_version=VERSION)
