"""ASTCT 2019 consensus grading of CRS and ICANS, and the ICE score, from clinician inputs.

Pure module: no database, no web framework. Sources are instruments.md 6.1 (CRS: PMC8021214
Table 1 [C, S31], grade 5 [C, S33]) and 6.2 (ICANS and ICE: PMC9327779 Table 2 [C, S32]).
Stored grades carry ``GRADING_VERSION``, so a later change of these rules is visible in the data.

Decisions where the source is silent or unconfirmed:

- **No CRS is grade 0.** Without fever (and before antipyretic or anti-cytokine therapy) there
  is no CRS to grade (6.1 "Fever >= 38.0 C: yes" in every grade); the functions answer 0, never
  None, and the adverse-event service refuses a CRS record whose inputs grade 0. After
  tocilizumab or steroids, an afebrile patient with neither hypotension nor hypoxia also grades 0:
  rule 2 grades on hypotension and/or hypoxia only, and there is none.
- **Death is grade 5** [C, S33], whatever the other inputs.
- **ICANS = the most severe domain.** instruments.md marks that rule [U] (6.2, section 12 item
  6). It is the only combination implemented; ``ICANS_COMBINATION`` names it and is stored with
  the grade so a confirmed different rule becomes a new version rather than a silent change.
- **ICE score 0 is grade 3 unless the patient is unarousable (unable to perform the ICE), then
  grade 4**: the G4 parenthetical "(unarousable / unable to perform ICE)" is [U] in 6.2; the
  distinction is the one the table draws and is the clinician's explicit input.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Final, Literal

GRADING_VERSION: Final = "astct-2019.1"

Hypotension = Literal["none", "fluids_only", "one_vasopressor", "multiple_vasopressors"]
OxygenSupport = Literal["none", "low_flow", "high_flow", "positive_pressure"]
Consciousness = Literal[
    "alert",
    "awakens_spontaneously",
    "awakens_to_voice",
    "awakens_only_to_tactile",
    "vigorous_tactile_or_unarousable",
]
Seizure = Literal["none", "rapid_resolution", "prolonged_or_non_resolving"]
MotorFindings = Literal["none", "deep_focal_weakness"]
RaisedIcp = Literal["none", "focal_edema", "diffuse_edema_or_signs"]
IcansCombination = Literal["most_severe_domain"]

#: instruments.md 6.2: "The ICANS grade is the most severe domain" [U]; the only rule implemented.
ICANS_COMBINATION: Final[IcansCombination] = "most_severe_domain"

#: instruments.md 6.1 [C, S31]: hypotension "none" (G1), "not requiring vasopressors" (G2),
#: "requiring one vasopressor, with or without vasopressin" (G3), "requiring multiple
#: vasopressors (excluding vasopressin)" (G4).
HYPOTENSION_GRADE: Final[dict[Hypotension, int]] = {
    "none": 1,
    "fluids_only": 2,
    "one_vasopressor": 3,
    "multiple_vasopressors": 4,
}
#: instruments.md 6.1 [C, S31]: hypoxia "none" (G1), low-flow nasal cannula <= 6 L/min or
#: blow-by (G2), high-flow nasal cannula > 6 L/min, facemask, non-rebreather or Venturi mask (G3),
#: positive pressure: CPAP, BiPAP, intubation and mechanical ventilation (G4).
OXYGEN_GRADE: Final[dict[OxygenSupport, int]] = {
    "none": 1,
    "low_flow": 2,
    "high_flow": 3,
    "positive_pressure": 4,
}
#: instruments.md 6.2 [C, S32], depressed consciousness: awakens spontaneously (G1), to voice
#: (G2), only to tactile stimulus (G3), only to vigorous tactile stimuli or unarousable (G4).
CONSCIOUSNESS_GRADE: Final[dict[Consciousness, int]] = {
    "alert": 0,
    "awakens_spontaneously": 1,
    "awakens_to_voice": 2,
    "awakens_only_to_tactile": 3,
    "vigorous_tactile_or_unarousable": 4,
}
#: instruments.md 6.2 [C, S32], seizure: any seizure with rapid clinical resolution or with
#: intervention on EEG tracings (G3); prolonged (> 5 min), non-resolving or life-threatening (G4).
SEIZURE_GRADE: Final[dict[Seizure, int]] = {
    "none": 0,
    "rapid_resolution": 3,
    "prolonged_or_non_resolving": 4,
}
#: instruments.md 6.2 [C, S32], motor findings: deep focal motor weakness (G4).
MOTOR_GRADE: Final[dict[MotorFindings, int]] = {"none": 0, "deep_focal_weakness": 4}
#: instruments.md 6.2 [C, S32], raised ICP / cerebral edema: focal edema on imaging (G3); diffuse
#: edema, decerebrate/decorticate posturing, CN VI palsy or Cushing's triad (G4).
ICP_GRADE: Final[dict[RaisedIcp, int]] = {
    "none": 0,
    "focal_edema": 3,
    "diffuse_edema_or_signs": 4,
}

#: instruments.md 6.2 [C, S32]: the ICE parts and their maximum points (10 in all).
ICE_PARTS: Final[dict[str, int]] = {
    "orientation": 4,
    "naming": 3,
    "commands": 1,
    "writing": 1,
    "attention": 1,
}


class GradingInputError(ValueError):
    """Inputs outside their ranges; ``field`` names the offending input."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def _check_choice(value: str, allowed: Collection[str], field: str) -> None:
    choices = tuple(allowed)
    if value not in allowed:
        raise GradingInputError(f"{field} must be one of {', '.join(choices)}", field)


@dataclass(frozen=True, slots=True)
class CrsInputs:
    """The clinician's CRS findings (instruments.md 6.1).

    ``fever``: temperature >= 38.0 C not attributable to another cause (rule 1);
    ``after_antipyretic_or_anticytokine``: tocilizumab, steroids or antipyretics were given, so
    fever is no longer required (rule 2); ``death``: the patient died of CRS (grade 5).
    """

    fever: bool
    hypotension: Hypotension = "none"
    oxygen: OxygenSupport = "none"
    after_antipyretic_or_anticytokine: bool = False
    death: bool = False

    def __post_init__(self) -> None:
        _check_choice(self.hypotension, HYPOTENSION_GRADE, "hypotension")
        _check_choice(self.oxygen, OXYGEN_GRADE, "oxygen")


def crs_grade(inputs: CrsInputs) -> int:
    """The ASTCT 2019 CRS grade, 0 (no CRS) to 5.

    instruments.md 6.1 [C, S31]: every grade needs fever >= 38.0 C, except after antipyretic or
    anti-cytokine therapy (rule 2); fever alone is grade 1; otherwise the more severe of
    hypotension and hypoxia decides (rule 3: febrile, one vasopressor and low-flow oxygen is
    grade 3). Death is grade 5 [C, S33]. Organ toxicities do not change it (rule 4): they are not
    inputs here.
    """
    if inputs.death:
        return 5
    worse = max(HYPOTENSION_GRADE[inputs.hypotension], OXYGEN_GRADE[inputs.oxygen])
    if inputs.fever:
        return worse
    if inputs.after_antipyretic_or_anticytokine and worse >= 2:
        return worse
    return 0


def ice_score(*, orientation: int, naming: int, commands: int, writing: int, attention: int) -> int:
    """The ICE score, 0-10 (10 = normal), from its five parts (instruments.md 6.2 [C, S32]):
    orientation to year, month, city and hospital 0-4; naming 3 objects 0-3; following simple
    commands 0-1; writing a standard sentence 0-1; counting backwards from 100 by 10 0-1."""
    parts = {
        "orientation": orientation,
        "naming": naming,
        "commands": commands,
        "writing": writing,
        "attention": attention,
    }
    for name, points in parts.items():
        if isinstance(points, bool) or not isinstance(points, int):
            raise GradingInputError(f"{name} must be an integer", name)
        if not 0 <= points <= ICE_PARTS[name]:
            raise GradingInputError(f"{name} must be 0-{ICE_PARTS[name]}", name)
    return sum(parts.values())


def ice_domain_grade(score: int, *, unarousable: bool = False) -> int:
    """ICANS grade of the ICE domain (instruments.md 6.2 [C, S32]): 10 -> 0, 7-9 -> 1,
    3-6 -> 2, 0-2 -> 3; 0 with the patient unarousable (unable to perform the ICE) -> 4 (that
    parenthetical is [U])."""
    if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= 10:
        raise GradingInputError("ice_score must be an integer 0-10", "ice_score")
    if unarousable:
        if score != 0:
            raise GradingInputError(
                "an unarousable patient cannot perform the ICE: ice_score must be 0", "ice_score"
            )
        return 4
    if score == 10:
        return 0
    if score >= 7:
        return 1
    if score >= 3:
        return 2
    return 3


@dataclass(frozen=True, slots=True)
class IcansInputs:
    """The clinician's ICANS findings by domain (instruments.md 6.2)."""

    ice_score: int
    consciousness: Consciousness = "alert"
    seizure: Seizure = "none"
    motor: MotorFindings = "none"
    raised_icp: RaisedIcp = "none"
    #: Unarousable and so unable to perform the ICE (ICE domain grade 4; [U]).
    unarousable: bool = False

    def __post_init__(self) -> None:
        _check_choice(self.consciousness, CONSCIOUSNESS_GRADE, "consciousness")
        _check_choice(self.seizure, SEIZURE_GRADE, "seizure")
        _check_choice(self.motor, MOTOR_GRADE, "motor")
        _check_choice(self.raised_icp, ICP_GRADE, "raised_icp")
        ice_domain_grade(self.ice_score, unarousable=self.unarousable)


def icans_domain_grades(inputs: IcansInputs) -> dict[str, int]:
    """Each domain's grade (0 = none) per instruments.md 6.2 [C, S32]."""
    return {
        "ice_score": ice_domain_grade(inputs.ice_score, unarousable=inputs.unarousable),
        "consciousness": CONSCIOUSNESS_GRADE[inputs.consciousness],
        "seizure": SEIZURE_GRADE[inputs.seizure],
        "motor": MOTOR_GRADE[inputs.motor],
        "raised_icp": ICP_GRADE[inputs.raised_icp],
    }


def icans_grade(inputs: IcansInputs, *, combination: IcansCombination = ICANS_COMBINATION) -> int:
    """The ICANS grade, 0 (no ICANS) to 4: the most severe domain.

    instruments.md 6.2: "the most severe domain" is [U] (section 12 item 6); it is the only
    ``combination`` implemented, named so that the assumption is explicit where it is used.
    """
    if combination != "most_severe_domain":
        raise ValueError(f"unsupported ICANS combination {combination!r}")
    return max(icans_domain_grades(inputs).values())
