"""MG-QOL15: original 15-item myasthenia gravis quality-of-life scale (instruments.md section 4).

Primary reference: Burns TM, Conaway MR, Cutter GR, Sanders DB; Muscle Study Group. *Less is more,
or almost as much: a 15-item quality-of-life instrument for myasthenia gravis.* Muscle Nerve
2008;38(2):957-63 [C, S23]. NCT06836973 registers it with its 0-60 range (trials.md 1).

15 patient-reported items, each 0-4, total 0-60, higher is worse [C, S24]. The authors now
recommend the revised MG-QOL15r (``mg_qol15r``) [C, S25, S23b]; the two totals are on different
scales and are never mixed. No official subscales exist, so none are computed.

Item labels: instruments.md gives only the MG-QOL15r paraphrases (4.1). Three items were revised
and which three is [U] (recalled: item 2 on using the eyes, item 10 on driving). The labels here
are therefore the MG-QOL15r paraphrases, every one tagged [U] for this instrument; the recalled
original wording is not shown.

Pure module: no database, no web framework.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from app.scores.instruments._common import InstrumentItemError, InstrumentScore, check_items
from app.scores.instruments.mg_qol15r import LABELS, QolItem, Tag

INSTRUMENT: Final = "mg_qol15"
VERSION: Final = "mg-qol15-burns-2008.v1"
"""Stored with every score so a later change of items or scoring is a new version."""

ITEM_MIN: Final = 0
ITEM_MAX: Final = 4
TOTAL_MAX: Final = 60

ITEMS: Final[tuple[QolItem, ...]] = tuple(
    QolItem(key=f"q{number}", number=number, label=label, tag="U")
    for number, label in enumerate(LABELS, start=1)
)
"""MG-QOL15r paraphrases (instruments.md 4.1); [U] as the original's wording."""
ITEM_KEYS: Final[tuple[str, ...]] = tuple(item.key for item in ITEMS)

RESPONSE_LABELS: Final[tuple[str, str, str, str, str]] = (
    "not at all",
    "a little bit",
    "somewhat",
    "quite a bit",
    "very much",
)
"""Response labels for 0-4: [U] in instruments.md 4 (section 12, item 5)."""
RESPONSE_LABELS_TAG: Final[Tag] = "U"


class MgQol15ItemError(InstrumentItemError):
    """An MG-QOL15 entry that cannot be scored; ``items`` names the offending item keys."""


def score(items: Mapping[str, int]) -> InstrumentScore:
    """Score one complete original MG-QOL15 (Burns 2008; instruments.md 4).

    Every item ``q1``..``q15`` must be present with an integer 0-4; the total is their sum,
    0-60. Missing items, unknown keys, booleans, floats, strings and out-of-range answers raise
    ``MgQol15ItemError`` naming the item.
    """
    answers = check_items(
        items, ITEM_KEYS, name="MG-QOL15", maximum=ITEM_MAX, error=MgQol15ItemError
    )
    return InstrumentScore(
        instrument=INSTRUMENT, total=sum(answers.values()), instrument_version=VERSION
    )
