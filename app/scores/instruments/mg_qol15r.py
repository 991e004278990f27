"""MG-QOL15r: revised 15-item myasthenia gravis quality-of-life scale (instruments.md section 4).

Primary reference: Burns TM et al. *International clinimetric evaluation of the MG-QOL15,
resulting in slight revision and subsequent validation of the MG-QOL15r.* Muscle Nerve
2016;54:1015-1022 [C, S25]. The authors recommend it over the original [C, S25, S23b]; ePROVIDE
lists the MG-QOL15 as public domain [C, S23b].

15 patient-reported items, each 0-2 (the 3-response version), total 0-30, higher is worse
[C, S25]. The standard range is scored even where a registry prints another (HN2301 prints
0-100; trials.md 3). No official subscales exist: the physical/social/emotional grouping in
instruments.md 4.1 is one research group's analysis [S], so no subscores are computed.

Pure module: no database, no web framework.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from app.scores.instruments._common import InstrumentItemError, InstrumentScore, check_items

INSTRUMENT: Final = "mg_qol15r"
VERSION: Final = "mg-qol15r-burns-2016.v1"
"""Stored with every score so a later change of items or scoring is a new version."""

ITEM_MIN: Final = 0
ITEM_MAX: Final = 2
TOTAL_MAX: Final = 30

Tag = Literal["C", "S", "U"]


@dataclass(frozen=True, slots=True)
class QolItem:
    """One MG-QOL15(r) item: key ``q1``..``q15``, number, short paraphrase and the
    instruments.md tag of that paraphrase. Not the licensed wording: a paraphrase to label data."""

    key: str
    number: int
    label: str
    tag: Tag


LABELS: Final[tuple[str, ...]] = (
    "Frustration with MG",
    "Trouble with the eyes",
    "Trouble eating",
    "Limited social activity",
    "MG limits hobbies and fun activities",
    "Trouble meeting family needs",
    "Having to plan around MG",
    "Bothered by limits on work (including work at home)",
    "Difficulty speaking",
    "Lost some personal independence",
    "Depressed about MG",
    "Trouble walking",
    "Trouble getting around in public places",
    "Feeling overwhelmed by MG",
    "Trouble with personal grooming",
)
"""instruments.md 4.1, items 1-15 in the instrument's order (labels of a published MG-QOL15r
analysis script [S, S26])."""

ITEMS: Final[tuple[QolItem, ...]] = tuple(
    QolItem(key=f"q{number}", number=number, label=label, tag="S")
    for number, label in enumerate(LABELS, start=1)
)
ITEM_KEYS: Final[tuple[str, ...]] = tuple(item.key for item in ITEMS)

RESPONSE_LABELS: Final[tuple[str, str, str]] = ("not at all", "somewhat", "very much")
"""Response labels for 0, 1, 2: [U] in instruments.md 4 (section 12, item 5); confirm against the
form before showing them."""
RESPONSE_LABELS_TAG: Final[Tag] = "U"


class MgQol15rItemError(InstrumentItemError):
    """An MG-QOL15r entry that cannot be scored; ``items`` names the offending item keys."""


def score(items: Mapping[str, int]) -> InstrumentScore:
    """Score one complete MG-QOL15r (Burns 2016; instruments.md 4).

    Every item ``q1``..``q15`` must be present with an integer 0-2; the total is their sum,
    0-30. Missing items, unknown keys, booleans, floats, strings and out-of-range answers
    (including 3 and 4, valid only on the original MG-QOL15) raise ``MgQol15rItemError``
    naming the item.
    """
    answers = check_items(
        items, ITEM_KEYS, name="MG-QOL15r", maximum=ITEM_MAX, error=MgQol15rItemError
    )
    return InstrumentScore(
        instrument=INSTRUMENT, total=sum(answers.values()), instrument_version=VERSION
    )
