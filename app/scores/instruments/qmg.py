"""QMG: Quantitative Myasthenia Gravis score (instruments.md section 2).

Primary reference: Barohn RJ et al. *Reliability testing of the quantitative myasthenia gravis
score.* Ann N Y Acad Sci 1998 (instruments.md 2: not retrieved [U]); the table is also printed in
Jaretzki et al., Neurology 2000;55:16-23 [U]. This is the classic QMG, not the MGNet
QMG-Revised (Guptill 2023 [C, S18]): a protocol using the revision needs another version.

13 clinician-examined items, each graded 0-3 (0 = none), total 0-39, higher is worse
(instruments.md 2 [C, S16, S17]). The source defines no subscores, so none are computed.

Raw measurements are converted to grades with the instruments.md 2.1 table, whose only source is a
forum reproduction of the MGFA table [S, S19]. Rows or boundaries tagged [U] there (all of vital
capacity; the leg 30/31 s boundary) are **not** built in: they come from ``QmgThresholds``, which
a protocol sets, and a measurement that needs an unset one is refused rather than guessed.

Reading of the table (instruments.md 2.1), for every numeric row:

- A band printed ``N-M`` in whole units covers ``N <= value < M + 1``; a single number for grade 0
  (``61``, ``240``, ``120``, ``100``) and ``>=N`` mean ``value >= N``; ``<N`` means
  ``value < N``. Each grade is therefore "value >= the lower bound of its band", the bands of a
  row meet without gap or overlap, and a fractional reading falls in the band of its completed
  whole unit (10.9 s is in 1-10, 14.5 kg in 5-14, 79.5 % in 65-79).
- "spontaneous" (diplopia, ptosis) is 0 s: the sign is present at once. A reading under 1 s is
  below the 1-10 band and is graded 3 too.
- Speech: the measurement is the number at which dysarthria began (1-49), or 50 when the count
  reached #50 without it ("none at #50"). The table has no row for dysarthria first heard at #50
  itself; give the grade for that case.
- Facial muscles and swallowing are descriptive: their "measurement" is the grade.
- Grip uses the sex-specific row, scored once per hand (instruments.md 2.1 caveats).

Pure module: no database, no web framework.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

from app.scores.instruments._common import InstrumentItemError, InstrumentScore, check_items

INSTRUMENT: Final = "qmg"
VERSION: Final = "qmg-barohn-1998.v1"
"""Stored with every score so a later change of scoring is a new version."""

THRESHOLDS_VERSION: Final = "qmg-thresholds-s19.v1"
"""The measurement-to-grade table built in here (instruments.md 2.1, S19); store it, and the
``QmgThresholds`` used, beside grades converted from measurements."""

ITEM_MIN: Final = 0
ITEM_MAX: Final = 3
TOTAL_MAX: Final = 39

Unit = Literal["s", "count", "kg", "% predicted", "grade"]
Sex = Literal["female", "male"]
Bounds = tuple[float, float, float]
"""Lower bounds of grades 0, 1 and 2 of a numeric row; a value below the last is grade 3."""


@dataclass(frozen=True, slots=True)
class QmgItem:
    """One QMG item: key, 1-based number, label, unit of its raw measurement and, for the items
    graded by description or count, the table's four cells (grades 0-3)."""

    key: str
    number: int
    label: str
    unit: Unit
    anchors: tuple[str, str, str, str] | None = None


# instruments.md 2.1 rows, in the order of the 13 scored items (2.1 caveats); labels are the
# table's first cell without its unit.
ITEMS: Final[tuple[QmgItem, ...]] = (
    QmgItem("diplopia", 1, "Double vision on lateral gaze, right or left", "s"),
    QmgItem("ptosis", 2, "Ptosis on upward gaze", "s"),
    QmgItem(
        "facial_muscles",
        3,
        "Facial muscles (eyelid closure)",
        "grade",
        (
            "normal lid closure",
            "complete, weak, some resistance",
            "complete, without resistance",
            "incomplete",
        ),
    ),
    QmgItem(
        "swallowing",
        4,
        "Swallowing 4 oz (½ cup) water",
        "grade",
        (
            "normal",
            "minimal coughing or throat clearing",
            "severe coughing, choking or nasal regurgitation",
            "cannot swallow",
        ),
    ),
    QmgItem(
        "speech",
        5,
        "Speech after counting aloud 1→50 (onset of dysarthria)",
        "count",
        ("none at #50", "dysarthria at #30–49", "at #10–29", "at #9 or before"),
    ),
    QmgItem("right_arm", 6, "Right arm outstretched, 90° sitting", "s"),
    QmgItem("left_arm", 7, "Left arm outstretched, 90° sitting", "s"),
    QmgItem("vital_capacity", 8, "Vital capacity", "% predicted"),
    QmgItem("right_grip", 9, "Right-hand grip", "kg"),
    QmgItem("left_grip", 10, "Left-hand grip", "kg"),
    QmgItem("head_lift", 11, "Head lifted 45° supine", "s"),
    QmgItem("right_leg", 12, "Right leg outstretched 45° supine", "s"),
    QmgItem("left_leg", 13, "Left leg outstretched 45° supine", "s"),
)

ITEM_KEYS: Final[tuple[str, ...]] = tuple(item.key for item in ITEMS)
ITEMS_BY_KEY: Final[Mapping[str, QmgItem]] = MappingProxyType({i.key: i for i in ITEMS})

SECONDS_BOUNDS: Final[Mapping[str, Bounds]] = MappingProxyType(
    {
        "diplopia": (61, 11, 1),  # 61 | 11-60 | 1-10 | spontaneous [S, S19]
        "ptosis": (61, 11, 1),  # 61 | 11-60 | 1-10 | spontaneous [S, S19]
        "right_arm": (240, 90, 10),  # 240 | 90-239 | 10-89 | 0-9 [S, S19]
        "left_arm": (240, 90, 10),  # 240 | 90-239 | 10-89 | 0-9 [S, S19]
        "head_lift": (120, 30, 1),  # 120 | 30-119 | 1-29 | 0 [S, S19]
    }
)
"""Timed rows of instruments.md 2.1 whose every boundary is [S] (legs: ``LEG_SECONDS``)."""

LEG_SECONDS: Final = (100, 1)
"""Leg rows (instruments.md 2.1): grade 0 from 100 s, grade 2 from 1 s, grade 3 at 0 s [S, S19].
Grade 1 starts at 30 s (the forum's "30-99") or 31 s (the widely quoted "31-99") [U]; 30 s is
the only reading the two disagree on, and ``QmgThresholds.leg_grade_1_min_seconds`` decides it."""

GRIP_KG_BOUNDS: Final[Mapping[tuple[str, Sex], Bounds]] = MappingProxyType(
    {
        ("right_grip", "male"): (45, 15, 5),  # >=45 | 15-44 | 5-14 | 0-4 [S, S19]
        ("right_grip", "female"): (30, 10, 5),  # >=30 | 10-29 | 5-9 | 0-4 [S, S19]
        ("left_grip", "male"): (35, 15, 5),  # >=35 | 15-34 | 5-14 | 0-4 [S, S19]
        ("left_grip", "female"): (25, 10, 5),  # >=25 | 10-24 | 5-9 | 0-4 [S, S19]
    }
)

SPEECH_COUNT_BOUNDS: Final[Bounds] = (50, 30, 10)
"""none at #50 | #30-49 | #10-29 | #9 or before (instruments.md 2.1 [S, S19])."""
SPEECH_COUNT_MIN: Final = 1
SPEECH_COUNT_MAX: Final = 50


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class QmgItemError(InstrumentItemError):
    """A QMG entry or measurement that cannot be scored; ``items`` names the offending keys."""


class QmgThresholdUnsetError(QmgItemError):
    """A measurement needs a threshold that is [U] in instruments.md and the protocol left unset."""


@dataclass(frozen=True, slots=True)
class QmgThresholds:
    """The [U] parts of the instruments.md 2.1 table, set per protocol (section 12, item 2).

    ``vital_capacity_percent``: lower bounds (% predicted) of grades 0, 1 and 2, strictly
    descending; a value below the last is grade 3. The commonly cited cut-offs are
    ``(80, 65, 50)`` (>=80 | 65-79 | 50-64 | <50) [U]; the row is missing from the only source.

    ``leg_grade_1_min_seconds``: 31 for the widely quoted 31-99 / 1-30 split, 30 for the forum's
    30-99 (its 1-30 then ends at 29) [U].

    Left as None (the default), a measurement that needs the threshold raises
    ``QmgThresholdUnsetError``; the grade itself can still be given.
    """

    vital_capacity_percent: tuple[float, float, float] | None = None
    leg_grade_1_min_seconds: Literal[30, 31] | None = None

    def __post_init__(self) -> None:
        bounds = self.vital_capacity_percent
        if bounds is not None:
            if (
                not isinstance(bounds, tuple)
                or len(bounds) != 3
                or not all(_is_number(bound) and math.isfinite(bound) for bound in bounds)
            ):
                raise ValueError("vital_capacity_percent must be three finite numbers")
            if not bounds[0] > bounds[1] > bounds[2] > 0:
                raise ValueError(
                    "vital_capacity_percent must be strictly descending lower bounds "
                    f"of grades 0, 1, 2 above 0, got {bounds}"
                )
        leg = self.leg_grade_1_min_seconds
        if leg is not None and (type(leg) is not int or leg not in (30, 31)):
            raise ValueError(f"leg_grade_1_min_seconds must be 30, 31 or None, got {leg!r}")


DEFAULT_THRESHOLDS: Final = QmgThresholds()
"""Nothing [U] is assumed: vital capacity and a leg hold of exactly 30 s cannot be converted."""

COMMONLY_CITED_THRESHOLDS: Final = QmgThresholds(
    vital_capacity_percent=(80, 65, 50), leg_grade_1_min_seconds=31
)
"""The values instruments.md 2.1 prints as commonly cited [U]; a protocol opts in explicitly."""


def _grade(value: float, bounds: Bounds) -> int:
    for grade, lower in enumerate(bounds):
        if value >= lower:
            return grade
    return 3


def score(items: Mapping[str, int]) -> InstrumentScore:
    """Score one complete QMG examination from its 13 grades (instruments.md 2 and 2.1).

    Every item must be present with an integer grade 0-3; the total is their sum, 0-39. Missing
    items, unknown keys, booleans, floats, strings and out-of-range grades raise
    ``QmgItemError`` naming the item. There are no subscores (none is defined in the source).
    """
    grades = check_items(items, ITEM_KEYS, name="QMG", maximum=ITEM_MAX, error=QmgItemError)
    return InstrumentScore(
        instrument=INSTRUMENT, total=sum(grades.values()), instrument_version=VERSION
    )


def grade_from_measurements(
    measurements: Mapping[str, float],
    *,
    sex: Sex | None,
    thresholds: QmgThresholds = DEFAULT_THRESHOLDS,
) -> dict[str, int]:
    """Convert raw QMG measurements to grades with the instruments.md 2.1 table.

    ``measurements`` may hold any subset of the 13 items, in the unit of ``ITEMS[...].unit``:
    seconds (diplopia, ptosis, arms, head lift, legs), % predicted (vital capacity), kg (grips,
    graded with the row for ``sex``), the count at which dysarthria began (speech, integer 1-50)
    or the grade itself (facial muscles, swallowing: integer 0-3). Seconds, kg and % are
    non-negative finite numbers (int or float, not bool). The reading of the table's boundaries
    is in the module docstring.

    Returns the grades of the items given. Raises ``QmgItemError`` naming the item for an
    unknown key or an invalid value, for a grip without ``sex``, and ``QmgThresholdUnsetError``
    when the value needs a [U] threshold that ``thresholds`` leaves unset.
    """
    if not isinstance(measurements, Mapping):
        raise QmgItemError("QMG measurements must be a mapping of item key to value", ())
    if sex is not None and sex not in ("female", "male"):
        raise ValueError(f"sex must be 'female', 'male' or None, got {sex!r}")
    unknown = tuple(sorted(str(key) for key in measurements if key not in ITEMS_BY_KEY))
    if unknown:
        raise QmgItemError(f"unknown QMG measurement(s): {', '.join(unknown)}", unknown)
    return {
        item.key: _convert(item, measurements[item.key], sex=sex, thresholds=thresholds)
        for item in ITEMS
        if item.key in measurements
    }


def _convert(item: QmgItem, value: object, *, sex: Sex | None, thresholds: QmgThresholds) -> int:
    key = item.key
    if item.unit == "grade":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= ITEM_MAX:
            raise QmgItemError(
                f"QMG measurement {key} is descriptive: give its grade as an integer 0-3, "
                f"got {value!r}",
                (key,),
            )
        return value
    if item.unit == "count":
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not SPEECH_COUNT_MIN <= value <= SPEECH_COUNT_MAX
        ):
            raise QmgItemError(
                f"QMG measurement {key} must be the integer count {SPEECH_COUNT_MIN}-"
                f"{SPEECH_COUNT_MAX} at which dysarthria began (50 = none at #50), got {value!r}",
                (key,),
            )
        return _grade(value, SPEECH_COUNT_BOUNDS)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise QmgItemError(
            f"QMG measurement {key} must be a number of {item.unit}, got {type(value).__name__}",
            (key,),
        )
    if not math.isfinite(value) or value < 0:
        raise QmgItemError(
            f"QMG measurement {key} must be a finite number of {item.unit} >= 0, got {value}",
            (key,),
        )
    if key in SECONDS_BOUNDS:
        return _grade(value, SECONDS_BOUNDS[key])
    if item.unit == "kg":
        if sex is None:
            raise QmgItemError(
                f"QMG measurement {key}: grip thresholds are sex-specific (instruments.md 2.1); "
                "give sex, or give the grade",
                (key,),
            )
        return _grade(value, GRIP_KG_BOUNDS[(key, sex)])
    if key == "vital_capacity":
        if thresholds.vital_capacity_percent is None:
            raise QmgThresholdUnsetError(
                f"QMG measurement {key}: the vital-capacity thresholds are unconfirmed "
                "(instruments.md 2.1 [U]) and not set for this protocol; set "
                "QmgThresholds.vital_capacity_percent, or give the grade",
                (key,),
            )
        return _grade(value, thresholds.vital_capacity_percent)
    # right_leg, left_leg
    grade_0_min, grade_2_min = LEG_SECONDS
    grade_1_min = thresholds.leg_grade_1_min_seconds
    if grade_1_min is None:
        if 30 <= value < 31:
            raise QmgThresholdUnsetError(
                f"QMG measurement {key}: 30 s is grade 1 (30-99) or grade 2 (1-30) depending on "
                "the reading of the leg row (instruments.md 2.1 [U]), not set for this protocol; "
                "set QmgThresholds.leg_grade_1_min_seconds, or give the grade",
                (key,),
            )
        grade_1_min = 31
    return _grade(value, (grade_0_min, grade_1_min, grade_2_min))


def merge_grades(
    grades: Mapping[str, int],
    measurements: Mapping[str, float],
    *,
    sex: Sex | None,
    thresholds: QmgThresholds = DEFAULT_THRESHOLDS,
) -> dict[str, int]:
    """Combine items given as grades with items given as measurements (converted as in
    ``grade_from_measurements``). An item given both ways is refused, not silently preferred;
    the result is not checked for completeness (``score`` does that)."""
    if not isinstance(grades, Mapping):
        raise QmgItemError("QMG items must be a mapping of item key to grade", ())
    converted = grade_from_measurements(measurements, sex=sex, thresholds=thresholds)
    both = tuple(key for key in ITEM_KEYS if key in grades and key in converted)
    if both:
        raise QmgItemError(
            f"QMG item(s) given both as grade and as measurement: {', '.join(both)}", both
        )
    return {**grades, **converted}


def score_mixed(
    grades: Mapping[str, int],
    measurements: Mapping[str, float],
    *,
    sex: Sex | None,
    thresholds: QmgThresholds = DEFAULT_THRESHOLDS,
) -> InstrumentScore:
    """Score a QMG examination whose items come partly as grades, partly as measurements."""
    return score(merge_grades(grades, measurements, sex=sex, thresholds=thresholds))
