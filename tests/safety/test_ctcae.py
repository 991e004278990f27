"""The controlled CTCAE v5.0 term list (app.safety.ctcae) against shared/domain/instruments.md
6.4 and 9.2 [C, S43]."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest

from app.diary.vocabulary import MEDDRA_CODES
from app.safety.ctcae import BY_CODE, BY_MEDDRA, CTCAE_VERSION, TERMS, TermCode

INSTRUMENTS_MD = Path("/work/shared/domain/instruments.md")
needs_md = pytest.mark.skipif(
    not INSTRUMENTS_MD.exists(), reason="shared/domain/instruments.md not present"
)

# instruments.md 6.4 table [C, S43]: term -> (MedDRA, lowest grade, highest grade); '-' cells
# are grades that do not exist.
TABLE = {
    "Fever": ("10016558", 1, 5),
    "Cytokine release syndrome": ("10052015", 1, 5),
    "Sinus tachycardia": ("10040752", 1, 3),
    "Hypotension": ("10021097", 1, 5),
    "Headache": ("10019211", 1, 3),
    "Fatigue": ("10016256", 1, 3),
    "Diarrhea": ("10012727", 1, 5),
    "Hypoxia": ("10021143", 2, 5),
}
# instruments.md 6.4 "Other v5.0 terms a diary may need" [C, S43]: no grade text, 1-5 [U].
OTHERS = {
    "Chills": "10008531",
    "Nausea": "10028813",
    "Vomiting": "10047700",
    "Myalgia": "10028411",
    "Dyspnea": "10013963",
    "Infusion related reaction": "10051792",
    "Encephalopathy": "10014625",
    "Confusion": "10010300",
    "Tremor": "10044565",
    "Seizure": "10039906",
    "Dysphagia": "10013950",
    "Dysarthria": "10013887",
    "Generalized muscle weakness": "10062572",
    "Respiratory failure": "10038695",
}


def test_version_is_pinned() -> None:
    assert CTCAE_VERSION == "5.0"


def test_exactly_the_terms_of_instruments_md() -> None:
    assert [t.term for t in TERMS] == [*TABLE, *OTHERS]
    assert set(get_args(TermCode)) == set(BY_CODE)
    assert len(BY_MEDDRA) == len(TERMS)


@pytest.mark.parametrize(("term", "expected"), TABLE.items())
def test_table_terms_have_the_graded_range(term: str, expected: tuple[str, int, int]) -> None:
    """instruments.md 6.4 [C, S43]: e.g. Hypoxia 2-5, Headache 1-3, Sinus tachycardia 1-3."""
    row = next(t for t in TERMS if t.term == term)
    assert (row.meddra_code, row.min_grade, row.max_grade) == expected
    assert row.grades_source == "C"


@pytest.mark.parametrize(("term", "meddra"), OTHERS.items())
def test_other_terms_allow_1_to_5_marked_unconfirmed(term: str, meddra: str) -> None:
    row = next(t for t in TERMS if t.term == term)
    assert (row.meddra_code, list(row.grades), row.grades_source) == (meddra, [1, 2, 3, 4, 5], "U")


def test_codes_are_those_of_the_diary_vocabulary() -> None:
    """One source of MedDRA codes: app.diary.vocabulary.MEDDRA_CODES (instruments.md 6.4)."""
    assert {t.term: t.meddra_code for t in TERMS} == dict(MEDDRA_CODES)


def test_crs_and_encephalopathy_are_graded_by_astct() -> None:
    """instruments.md 6.1 / 6.2: CRS by ASTCT 2019; ICANS reported under Encephalopathy."""
    assert BY_CODE["cytokine_release_syndrome"].grading == "astct_crs"
    assert BY_MEDDRA["10052015"].code == "cytokine_release_syndrome"  # 9.2 [C, S43]
    assert BY_CODE["encephalopathy"].grading == "astct_icans"
    assert {
        t.grading for t in TERMS if t.code not in ("cytokine_release_syndrome", "encephalopathy")
    } == {"ctcae"}


@needs_md
def test_table_matches_the_reference_text() -> None:
    """Parse instruments.md 6.4 itself: MedDRA codes and '-' cells."""
    text = INSTRUMENTS_MD.read_text(encoding="utf-8")
    section = text[text.index("### 6.4") : text.index("## 7.")]
    parsed = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and re.fullmatch(r"\d{8}", cells[1]):
            grades = [g for g, cell in enumerate(cells[2:], start=1) if cell != "-"]
            parsed[cells[0]] = (cells[1], min(grades), max(grades))
    assert parsed == TABLE
    others = dict(re.findall(r"^- ([A-Z][a-z ]+?) (\d{8})$", section, flags=re.M))
    assert others == OTHERS
