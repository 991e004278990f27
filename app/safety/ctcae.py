"""The controlled CTCAE v5.0 terms an investigator records adverse events with.

Pure module. Exactly the terms of instruments.md 6.4 (the graded table and the list of other
terms) and 9.2, with the MedDRA codes given there [C, S43] (``app.diary.vocabulary.MEDDRA_CODES``
holds the same codes; this module reuses it and invents none).

Allowed grades:

- The 6.4 table gives each grade's text [C, S43]; a '-' cell means that grade does not exist for
  the term (Hypoxia has no grade 1; Sinus tachycardia, Headache and Fatigue stop at grade 3).
- For the other terms instruments.md gives no grade text: grades 1-5 are allowed and the range
  is tagged ``[U]`` (``grades_source``), to be narrowed once checked against the NCI release.

``grading`` names the rule that computes a term's grade from structured inputs: Cytokine release
syndrome is graded by ASTCT 2019 (instruments.md 6.1) from ``crs_inputs``; Encephalopathy, the
CTCAE v5.0 term ICANS is reported under, takes an ASTCT ICANS grade (6.2) from ``icans_inputs``
when they are given. Other terms take the investigator's CTCAE grade.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from app.diary.vocabulary import MEDDRA_CODES

CTCAE_VERSION: Final = "5.0"

Grading = Literal["ctcae", "astct_crs", "astct_icans"]


@dataclass(frozen=True, slots=True)
class CtcaeTerm:
    #: A stable code for the term (identifier-safe: alerts and webhooks carry codes only).
    code: str
    #: The CTCAE v5.0 term, exactly.
    term: str
    meddra_code: str
    min_grade: int
    max_grade: int
    #: instruments.md tag of the allowed grade range: ``C`` read in 6.4, ``U`` assumed 1-5.
    grades_source: Literal["C", "U"]
    grading: Grading = "ctcae"

    @property
    def grades(self) -> range:
        return range(self.min_grade, self.max_grade + 1)


def _code(term: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", term.lower()).strip("_")


def _term(
    term: str, grades: tuple[int, int], source: Literal["C", "U"], grading: Grading = "ctcae"
) -> CtcaeTerm:
    return CtcaeTerm(
        code=_code(term),
        term=term,
        meddra_code=MEDDRA_CODES[term],
        min_grade=grades[0],
        max_grade=grades[1],
        grades_source=source,
        grading=grading,
    )


TERMS: Final[tuple[CtcaeTerm, ...]] = (
    # instruments.md 6.4 table [C, S43]: the grades with text ('-' = no such grade).
    _term("Fever", (1, 5), "C"),
    _term("Cytokine release syndrome", (1, 5), "C", "astct_crs"),  # also 9.2
    _term("Sinus tachycardia", (1, 3), "C"),
    _term("Hypotension", (1, 5), "C"),
    _term("Headache", (1, 3), "C"),
    _term("Fatigue", (1, 3), "C"),
    _term("Diarrhea", (1, 5), "C"),
    _term("Hypoxia", (2, 5), "C"),
    # instruments.md 6.4 "Other v5.0 terms" [C, S43] for the codes; no grade text: 1-5 [U].
    _term("Chills", (1, 5), "U"),
    _term("Nausea", (1, 5), "U"),
    _term("Vomiting", (1, 5), "U"),
    _term("Myalgia", (1, 5), "U"),
    _term("Dyspnea", (1, 5), "U"),
    _term("Infusion related reaction", (1, 5), "U"),
    _term("Encephalopathy", (1, 5), "U", "astct_icans"),
    _term("Confusion", (1, 5), "U"),
    _term("Tremor", (1, 5), "U"),
    _term("Seizure", (1, 5), "U"),
    _term("Dysphagia", (1, 5), "U"),
    _term("Dysarthria", (1, 5), "U"),
    _term("Generalized muscle weakness", (1, 5), "U"),
    _term("Respiratory failure", (1, 5), "U"),
)
BY_CODE: Final[dict[str, CtcaeTerm]] = {t.code: t for t in TERMS}
BY_MEDDRA: Final[dict[str, CtcaeTerm]] = {t.meddra_code: t for t in TERMS}

TermCode = Literal[
    "fever",
    "cytokine_release_syndrome",
    "sinus_tachycardia",
    "hypotension",
    "headache",
    "fatigue",
    "diarrhea",
    "hypoxia",
    "chills",
    "nausea",
    "vomiting",
    "myalgia",
    "dyspnea",
    "infusion_related_reaction",
    "encephalopathy",
    "confusion",
    "tremor",
    "seizure",
    "dysphagia",
    "dysarthria",
    "generalized_muscle_weakness",
    "respiratory_failure",
]
