"""Controlled vocabulary of diary symptoms, mapped to CTCAE v5.0 terms and MedDRA codes.

Covers the MG symptoms a patient reports between visits and the CRS/ICANS-like symptoms to watch
for after T-cell engagers and CAR-T/NK products (instruments.md sections 1 and 6).

Mapping policy: a symptom carries a CTCAE v5.0 term and its MedDRA code only where
instruments.md gives that term and code (section 6.4 table and list, section 9.2; all [C] from
NCI CTCAE v5.0 as packaged in oncohub/CTCAE5, S43). Where instruments.md has no term, both are
None, even when CTCAE v5.0 probably has one (palpitations, dizziness, cough, rash, arthralgia,
somnolence ...): those are unverified here and must be checked against the NCI release before
they are added. A symptom is not a diagnosis: "Sinus tachycardia" and "Hypotension" are measured
findings, so palpitations and dizziness are not mapped to them.

Pure module: no database, no web framework.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

VOCABULARY_VERSION: Final = "mgdiary-symptoms-2026.1"

SymptomCategory = Literal["mg", "crs", "icans", "general"]
SourceTag = Literal["C", "S", "U"]

SEVERITY_MIN: Final = 1
SEVERITY_MAX: Final = 3
SEVERITY_LABELS: Final = MappingProxyType({1: "Mild", 2: "Moderate", 3: "Severe"})
"""Patient-rated severity 1-3 (product choice; not a CTCAE grade, which the clinician assigns)."""

MEDDRA_CODES: Final = MappingProxyType(
    {
        # instruments.md 6.4 table [C, S43]
        "Fever": "10016558",
        "Cytokine release syndrome": "10052015",  # also instruments.md 9.2 [C, S43]
        "Sinus tachycardia": "10040752",
        "Hypotension": "10021097",
        "Headache": "10019211",
        "Fatigue": "10016256",
        "Diarrhea": "10012727",
        "Hypoxia": "10021143",
        # instruments.md 6.4 "Other v5.0 terms a diary may need" [C, S43]
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
)
"""CTCAE v5.0 term -> MedDRA code, exactly as instruments.md 6.4 and 9.2 give them [C, S43].

CTCAE v5.0 terms are MedDRA lowest-level terms (CTCAE v5 front matter, S44). Includes terms no
diary symptom maps to (CRS, hypotension, hypoxia ...) for adverse-event export.
"""

CRS_MEDDRA_CODE: Final = MEDDRA_CODES["Cytokine release syndrome"]


@dataclass(frozen=True, slots=True)
class SymptomTerm:
    """A diary symptom.

    ``label`` is shown to the patient. ``ctcae_term`` / ``meddra_code`` follow the module's
    mapping policy; ``meddra_source`` is the instruments.md tag of the code (None without code).

    Flags for the safety rules (instruments.md 6.1-6.2); each is evidence to prompt or escalate,
    never a grade:

    - ``fever_like``: the patient feels feverish (fever or feeling hot, chills). A rule asks for
      a measured temperature; only >= 38.0 C counts as the fever of ASTCT CRS (6.1).
    - ``icans_like``: a neurological symptom of the kind ICANS grading looks for (6.2: ICE-score
      content such as orientation, naming and writing; depressed consciousness; seizure; motor
      findings) or an early neurotoxicity sign such as tremor.
    - ``hypotension_evidence``: the diary's nearest sign of low blood pressure (6.1).
    - ``hypoxia_evidence``: the diary's nearest sign of hypoxia (6.1).
    - ``bulbar``: an MG bulbar symptom, MG-ADL items 1-3 (1.3, 1.8).
    """

    code: str
    label: str
    category: SymptomCategory
    ctcae_term: str | None = None
    meddra_code: str | None = None
    meddra_source: SourceTag | None = None
    fever_like: bool = False
    icans_like: bool = False
    hypotension_evidence: bool = False
    hypoxia_evidence: bool = False
    bulbar: bool = False


def _term(
    code: str,
    label: str,
    category: SymptomCategory,
    ctcae_term: str | None = None,
    *,
    fever_like: bool = False,
    icans_like: bool = False,
    hypotension_evidence: bool = False,
    hypoxia_evidence: bool = False,
    bulbar: bool = False,
) -> SymptomTerm:
    return SymptomTerm(
        code=code,
        label=label,
        category=category,
        ctcae_term=ctcae_term,
        meddra_code=MEDDRA_CODES[ctcae_term] if ctcae_term is not None else None,
        meddra_source="C" if ctcae_term is not None else None,
        fever_like=fever_like,
        icans_like=icans_like,
        hypotension_evidence=hypotension_evidence,
        hypoxia_evidence=hypoxia_evidence,
        bulbar=bulbar,
    )


_TERMS: tuple[SymptomTerm, ...] = (
    # MG symptoms (instruments.md 1.2-1.3: the body regions MG-ADL asks about).
    _term("double_vision", "Double vision", "mg"),
    _term("eyelid_droop", "Drooping eyelid", "mg"),
    _term("dysphagia", "Trouble swallowing", "mg", "Dysphagia", bulbar=True),
    _term("chewing_difficulty", "Trouble chewing", "mg", bulbar=True),
    _term(
        "dysarthria", "Trouble speaking (slurred or nasal speech)", "mg", "Dysarthria", bulbar=True
    ),
    # Trouble breathing is also the diary's sign of hypoxia: with a fever it escalates (6.1).
    _term("breathing_difficulty", "Trouble breathing", "mg", "Dyspnea", hypoxia_evidence=True),
    _term("arm_weakness", "Weak arms", "mg"),
    _term("leg_weakness", "Weak legs", "mg"),
    _term("neck_weakness", "Weak neck (hard to hold your head up)", "mg"),
    # CRS-like symptoms (instruments.md 6.1, 6.3, 7.2; trials.md 5).
    _term("fever", "Fever or feeling hot", "crs", "Fever", fever_like=True),
    _term("chills", "Chills or shivering", "crs", "Chills", fever_like=True),
    _term("fatigue", "Tiredness or exhaustion (fatigue)", "crs", "Fatigue"),
    _term("headache", "Headache", "crs", "Headache"),
    _term("nausea", "Feeling sick (nausea)", "crs", "Nausea"),
    _term("vomiting", "Vomiting (being sick)", "crs", "Vomiting"),
    _term("diarrhoea", "Diarrhoea (loose or watery stools)", "crs", "Diarrhea"),
    _term("myalgia", "Muscle aches", "crs", "Myalgia"),
    _term("palpitations", "Racing or pounding heartbeat", "crs"),
    _term(
        "dizziness_or_fainting",
        "Dizziness, light-headedness or fainting",
        "crs",
        hypotension_evidence=True,
    ),
    _term("shortness_of_breath", "Shortness of breath", "crs", "Dyspnea", hypoxia_evidence=True),
    # ICANS-like symptoms (instruments.md 6.2).
    _term("confusion", "Confusion", "icans", "Confusion", icans_like=True),
    _term("word_finding_difficulty", "Trouble finding words", "icans", icans_like=True),
    _term("tremor", "Shaking or trembling (tremor)", "icans", "Tremor", icans_like=True),
    _term("handwriting_change", "Change in your handwriting", "icans", icans_like=True),
    _term("somnolence", "Unusual sleepiness", "icans", icans_like=True),
    _term("seizure", "Seizure (fit)", "icans", "Seizure", icans_like=True),
    # Other symptoms worth recording.
    _term("cough", "Cough", "general"),
    _term("rash", "Rash", "general"),
    _term("arthralgia", "Joint pain", "general"),
)

SYMPTOMS: Final[dict[str, SymptomTerm]] = {term.code: term for term in _TERMS}
"""All diary symptoms by code. Codes are stable: never rename one, add a new code instead."""
