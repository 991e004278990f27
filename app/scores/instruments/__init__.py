"""Pure, versioned instrument scorers and their registry (instruments.md sections 1-4).

``SCORERS[name](items)`` scores one complete entry of an instrument and returns an
``InstrumentScore`` (``instrument``, ``total``, ``subscores``, ``instrument_version``);
``ITEM_KEYS[name]`` lists the item keys it takes, in instrument order. Each scorer refuses an
incomplete or out-of-range entry with a ``ValueError`` subclass naming the items.

MG-ADL keeps its own API (``mg_adl.score`` -> ``MgAdlScore``); here it is adapted, with its four
instruments.md 1.3 domains as subscores. QMG measurements are converted to grades with
``qmg.grade_from_measurements`` / ``qmg.merge_grades`` before they reach the registry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from app.scores.instruments import mg_adl, mg_qol15, mg_qol15r, mgc, qmg
from app.scores.instruments._common import InstrumentItemError, InstrumentScore

__all__ = [
    "ITEM_KEYS",
    "SCORERS",
    "TOTAL_MAX",
    "InstrumentItemError",
    "InstrumentScore",
    "UnknownInstrumentError",
    "score_mg_adl",
    "score_instrument",
]


def score_mg_adl(items: Mapping[str, int]) -> InstrumentScore:
    """``mg_adl.score`` in the common shape; subscores are the instruments.md 1.3 domains."""
    result = mg_adl.score(items)
    return InstrumentScore(
        instrument=mg_adl.INSTRUMENT,
        total=result.total,
        instrument_version=result.instrument_version,
        subscores={
            "ocular": result.ocular,
            "bulbar": result.bulbar,
            "respiratory": result.respiratory,
            "limb": result.limb,
        },
    )


SCORERS: Final[dict[str, Callable[[Mapping[str, int]], InstrumentScore]]] = {
    mg_adl.INSTRUMENT: score_mg_adl,
    qmg.INSTRUMENT: qmg.score,
    mgc.INSTRUMENT: mgc.score,
    mg_qol15r.INSTRUMENT: mg_qol15r.score,
    mg_qol15.INSTRUMENT: mg_qol15.score,
}

ITEM_KEYS: Final[dict[str, tuple[str, ...]]] = {
    mg_adl.INSTRUMENT: mg_adl.ITEM_KEYS,
    qmg.INSTRUMENT: qmg.ITEM_KEYS,
    mgc.INSTRUMENT: mgc.ITEM_KEYS,
    mg_qol15r.INSTRUMENT: mg_qol15r.ITEM_KEYS,
    mg_qol15.INSTRUMENT: mg_qol15.ITEM_KEYS,
}

TOTAL_MAX: Final[dict[str, int]] = {
    mg_adl.INSTRUMENT: mg_adl.TOTAL_MAX,
    qmg.INSTRUMENT: qmg.TOTAL_MAX,
    mgc.INSTRUMENT: mgc.TOTAL_MAX,
    mg_qol15r.INSTRUMENT: mg_qol15r.TOTAL_MAX,
    mg_qol15.INSTRUMENT: mg_qol15.TOTAL_MAX,
}
"""Highest possible total per instrument (every total starts at 0)."""


class UnknownInstrumentError(ValueError):
    """An instrument name the registry does not score."""


def score_instrument(instrument: str, items: Mapping[str, int]) -> InstrumentScore:
    """Score ``items`` with the registered scorer of ``instrument``."""
    scorer = SCORERS.get(instrument)
    if scorer is None:
        raise UnknownInstrumentError(f"no scorer for instrument {instrument!r}")
    return scorer(items)
