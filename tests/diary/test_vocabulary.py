"""The diary symptom vocabulary against the issue's symptom list and instruments.md 6.4 / 9.2."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.diary.vocabulary import (
    CRS_MEDDRA_CODE,
    MEDDRA_CODES,
    SEVERITY_LABELS,
    SEVERITY_MAX,
    SEVERITY_MIN,
    SYMPTOMS,
    VOCABULARY_VERSION,
    SymptomTerm,
)

INSTRUMENTS_MD = Path("/work/shared/domain/instruments.md")

# The issue's wording -> the code that must carry it.
ISSUE_SYMPTOMS: dict[str, str] = {
    # MG symptoms
    "double vision": "double_vision",
    "drooping eyelid": "eyelid_droop",
    "trouble swallowing": "dysphagia",
    "chewing": "chewing_difficulty",
    "speaking": "dysarthria",
    "breathing": "breathing_difficulty",
    "weak arms": "arm_weakness",
    "legs": "leg_weakness",
    "neck": "neck_weakness",
    # CRS/ICANS-like symptoms
    "fever or feeling hot": "fever",
    "chills": "chills",
    "fatigue": "fatigue",
    "headache": "headache",
    "nausea": "nausea",
    "vomiting": "vomiting",
    "diarrhoea": "diarrhoea",
    "muscle aches": "myalgia",
    "palpitations": "palpitations",
    "dizziness or fainting": "dizziness_or_fainting",
    "shortness of breath": "shortness_of_breath",
    "cough": "cough",
    "confusion": "confusion",
    "trouble finding words": "word_finding_difficulty",
    "tremor": "tremor",
    "handwriting change": "handwriting_change",
    "unusual sleepiness": "somnolence",
    "seizure": "seizure",
    "rash": "rash",
    "joint pain": "arthralgia",
}

# instruments.md 6.4 (table and list) and 9.2 [C, S43]: the CTCAE v5.0 term of each symptom that
# has one there. Every other symptom has no term and no MedDRA code.
EXPECTED_CTCAE: dict[str, tuple[str, str]] = {
    "fever": ("Fever", "10016558"),
    "chills": ("Chills", "10008531"),
    "fatigue": ("Fatigue", "10016256"),
    "headache": ("Headache", "10019211"),
    "nausea": ("Nausea", "10028813"),
    "vomiting": ("Vomiting", "10047700"),
    "diarrhoea": ("Diarrhea", "10012727"),
    "myalgia": ("Myalgia", "10028411"),
    "shortness_of_breath": ("Dyspnea", "10013963"),
    "breathing_difficulty": ("Dyspnea", "10013963"),
    "confusion": ("Confusion", "10010300"),
    "tremor": ("Tremor", "10044565"),
    "seizure": ("Seizure", "10039906"),
    "dysphagia": ("Dysphagia", "10013950"),
    "dysarthria": ("Dysarthria", "10013887"),
}


def _meddra_codes_in_instruments_md() -> dict[str, str]:
    """CTCAE term -> MedDRA code from the instruments.md 6.4 table, its list, and 9.2."""
    text = INSTRUMENTS_MD.read_text(encoding="utf-8")
    section = text.split("### 6.4", 1)[1].split("\n## ", 1)[0]
    codes: dict[str, str] = {}
    for line in section.splitlines():
        row = re.match(r"^\|\s*([A-Za-z][A-Za-z ]+?)\s*\|\s*(\d{8})\s*\|", line)
        item = re.match(r"^- ([A-Za-z][A-Za-z ]+?) (\d{8})\s*$", line)
        for match in (row, item):
            if match:
                codes[match.group(1)] = match.group(2)
    section_92 = text.split("### 9.2", 1)[1].split("\n## ", 1)[0]
    for term, code in re.findall(r'MedDRA "([^"]+)": (\d{8})', section_92):
        codes[term] = code
    return codes


def test_every_symptom_the_issue_lists_has_a_code() -> None:
    assert set(ISSUE_SYMPTOMS.values()) <= set(SYMPTOMS)


def test_no_symptom_beyond_the_issue_list() -> None:
    """The vocabulary is controlled: adding a code is a new vocabulary version."""
    assert set(SYMPTOMS) == set(ISSUE_SYMPTOMS.values())
    assert VOCABULARY_VERSION == "mgdiary-symptoms-2026.1"


def test_codes_are_unique_stable_snake_case_and_match_their_keys() -> None:
    assert all(re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", code) for code in SYMPTOMS)
    assert all(term.code == code for code, term in SYMPTOMS.items())
    assert len({term.label.casefold() for term in SYMPTOMS.values()}) == len(SYMPTOMS)


def test_labels_are_plain_patient_facing_text() -> None:
    for term in SYMPTOMS.values():
        assert term.label, term.code
        assert term.label[0].isupper(), term.code
        assert "_" not in term.label, term.code
    assert SYMPTOMS["fever"].label == "Fever or feeling hot"


def test_ctcae_terms_and_meddra_codes_exactly_where_instruments_md_gives_them() -> None:
    """instruments.md 6.4 and 9.2: a MedDRA code where the reference gives one, else None."""
    actual = {
        code: (term.ctcae_term, term.meddra_code)
        for code, term in SYMPTOMS.items()
        if term.ctcae_term is not None or term.meddra_code is not None
    }
    assert actual == EXPECTED_CTCAE
    for term in SYMPTOMS.values():
        assert term.meddra_source == ("C" if term.meddra_code else None), term.code


def test_symptoms_without_a_reference_code_stay_unmapped() -> None:
    """instruments.md 6.4 note: HR and BP findings are not symptoms; unverified terms stay out."""
    for code in ("palpitations", "dizziness_or_fainting", "cough", "rash", "arthralgia"):
        assert SYMPTOMS[code].ctcae_term is None
        assert SYMPTOMS[code].meddra_code is None


def test_crs_meddra_code() -> None:
    """instruments.md 9.2 [C, S43]: MedDRA "Cytokine release syndrome" = 10052015."""
    assert CRS_MEDDRA_CODE == "10052015"
    assert MEDDRA_CODES["Cytokine release syndrome"] == "10052015"


@pytest.mark.skipif(not INSTRUMENTS_MD.exists(), reason="shared/domain/instruments.md not present")
def test_meddra_table_is_the_one_in_instruments_md() -> None:
    """instruments.md 6.4 table + list and 9.2, read at test time: every code, none extra."""
    parsed = _meddra_codes_in_instruments_md()
    assert parsed["Cytokine release syndrome"] == "10052015"
    assert len(parsed) == 22
    assert dict(MEDDRA_CODES) == parsed
    for term in SYMPTOMS.values():
        if term.ctcae_term is not None:
            assert parsed[term.ctcae_term] == term.meddra_code, term.code


def test_categories() -> None:
    """instruments.md 1.3 (MG body regions), 6.1/6.3/7.2 (CRS features), 6.2 (ICANS domains)."""
    by_category: dict[str, set[str]] = {}
    for term in SYMPTOMS.values():
        by_category.setdefault(term.category, set()).add(term.code)
    assert by_category == {
        "mg": {
            "double_vision",
            "eyelid_droop",
            "dysphagia",
            "chewing_difficulty",
            "dysarthria",
            "breathing_difficulty",
            "arm_weakness",
            "leg_weakness",
            "neck_weakness",
        },
        "crs": {
            "fever",
            "chills",
            "fatigue",
            "headache",
            "nausea",
            "vomiting",
            "diarrhoea",
            "myalgia",
            "palpitations",
            "dizziness_or_fainting",
            "shortness_of_breath",
        },
        "icans": {
            "confusion",
            "word_finding_difficulty",
            "tremor",
            "handwriting_change",
            "somnolence",
            "seizure",
        },
        "general": {"cough", "rash", "arthralgia"},
    }


def _flagged(flag: str) -> set[str]:
    return {code for code, term in SYMPTOMS.items() if getattr(term, flag)}


def test_fever_is_fever_like() -> None:
    """instruments.md 6.1: fever >= 38.0 C is the CRS entry point; feeling feverish prompts it."""
    assert SYMPTOMS["fever"].fever_like is True
    assert _flagged("fever_like") == {"fever", "chills"}


def test_safety_flags() -> None:
    """instruments.md 6.1 (hypotension, hypoxia), 6.2 (ICANS), 1.3/1.8 (bulbar items 1-3)."""
    assert _flagged("hypotension_evidence") == {"dizziness_or_fainting"}
    assert _flagged("hypoxia_evidence") == {"shortness_of_breath", "breathing_difficulty"}
    assert _flagged("bulbar") == {"dysphagia", "chewing_difficulty", "dysarthria"}
    assert _flagged("icans_like") == {
        code for code, term in SYMPTOMS.items() if term.category == "icans"
    }


def test_terms_are_frozen() -> None:
    term: SymptomTerm = SYMPTOMS["fever"]
    with pytest.raises(AttributeError):
        term.fever_like = False  # type: ignore[misc]


def test_severity_scale_is_1_to_3() -> None:
    assert (SEVERITY_MIN, SEVERITY_MAX) == (1, 3)
    assert sorted(SEVERITY_LABELS) == [1, 2, 3]
