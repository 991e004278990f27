"""Request and response shapes of adverse events, their reports and the CTCAE vocabulary."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StrictBool, StrictInt, model_validator

from app.core.schemas import Reason, RequestModel, ResponseModel
from app.safety.ctcae import TermCode
from app.safety.grading import (
    ICE_PARTS,
    Consciousness,
    Hypotension,
    MotorFindings,
    OxygenSupport,
    RaisedIcp,
    Seizure,
)

Relatedness = Literal["not_related", "unlikely", "possible", "probable", "definite"]
SeriousnessCriterion = Literal[
    "death",
    "life_threatening",
    "hospitalisation",
    "disability",
    "congenital_anomaly",
    "important_medical_event",
]
Outcome = Literal[
    "recovered", "recovering", "not_recovered", "recovered_with_sequelae", "fatal", "unknown"
]
ActionTaken = Literal["none", "dose_reduced", "interrupted", "withdrawn", "not_applicable"]
Grade = Annotated[StrictInt, Field(ge=1, le=5)]


class CrsInputsIn(RequestModel):
    """ASTCT 2019 CRS findings (instruments.md 6.1); the grade is computed from them."""

    fever: StrictBool = Field(
        description="Temperature >= 38.0 C not attributable to another cause."
    )
    hypotension: Hypotension = Field(
        default="none",
        description="`fluids_only`: not requiring vasopressors; `one_vasopressor`: with or "
        "without vasopressin; `multiple_vasopressors`: excluding vasopressin.",
    )
    oxygen: OxygenSupport = Field(
        default="none",
        description="`low_flow`: nasal cannula <= 6 L/min or blow-by; `high_flow`: > 6 L/min, "
        "facemask, non-rebreather or Venturi; `positive_pressure`: CPAP, BiPAP, intubation.",
    )
    after_antipyretic_or_anticytokine: StrictBool = Field(
        default=False,
        description="Tocilizumab, steroids or antipyretics given: fever is no longer required.",
    )
    death: StrictBool = Field(default=False, description="Death from CRS (grade 5).")


class IceParts(RequestModel):
    """The ICE score's parts (instruments.md 6.2)."""

    orientation: Annotated[StrictInt, Field(ge=0, le=ICE_PARTS["orientation"])]
    naming: Annotated[StrictInt, Field(ge=0, le=ICE_PARTS["naming"])]
    commands: Annotated[StrictInt, Field(ge=0, le=ICE_PARTS["commands"])]
    writing: Annotated[StrictInt, Field(ge=0, le=ICE_PARTS["writing"])]
    attention: Annotated[StrictInt, Field(ge=0, le=ICE_PARTS["attention"])]


class IcansInputsIn(RequestModel):
    """ASTCT 2019 ICANS findings by domain (instruments.md 6.2); give `ice_score` or
    `ice_parts`. The grade is the most severe domain (a documented assumption)."""

    ice_score: Annotated[StrictInt, Field(ge=0, le=10)] | None = None
    ice_parts: IceParts | None = None
    unarousable: StrictBool = Field(
        default=False, description="Unarousable, unable to perform the ICE (ICE score 0)."
    )
    consciousness: Consciousness = "alert"
    seizure: Seizure = "none"
    motor: MotorFindings = "none"
    raised_icp: RaisedIcp = "none"

    @model_validator(mode="after")
    def _one_ice(self) -> IcansInputsIn:
        if self.ice_parts is not None:
            total = sum(self.ice_parts.model_dump().values())
            if self.ice_score is not None and self.ice_score != total:
                raise ValueError(
                    f"ice_score {self.ice_score} is not the sum of ice_parts ({total})"
                )
            self.ice_score = total
        if self.ice_score is None:
            if not self.unarousable:
                raise ValueError("give ice_score or ice_parts (or unarousable)")
            self.ice_score = 0
        return self


class AdverseEventFields(RequestModel):
    term: TermCode = Field(description="CTCAE v5.0 term code (GET /vocabularies/ctcae-terms).")
    grade: Grade | None = Field(
        default=None,
        description="CTCAE grade. For CRS (and Encephalopathy with `icans_inputs`) it is computed "
        "from the inputs; when given it must agree.",
    )
    crs_inputs: CrsInputsIn | None = None
    icans_inputs: IcansInputsIn | None = None
    serious: StrictBool
    seriousness_criteria: list[SeriousnessCriterion] = Field(default_factory=list, max_length=6)
    relatedness: Relatedness = Field(description="Relationship to the study drug.")
    expected: StrictBool
    onset_date: date
    resolution_date: date | None = None
    outcome: Outcome
    action_taken: ActionTaken = Field(description="Action taken with the study drug.")

    @model_validator(mode="after")
    def _unique_criteria(self) -> AdverseEventFields:
        self.seriousness_criteria = sorted(set(self.seriousness_criteria))
        return self


class AdverseEventCreate(AdverseEventFields):
    signal_id: uuid.UUID | None = Field(
        default=None, description="The participant's safety signal this event is converted from."
    )


class AdverseEventUpdate(RequestModel):
    """A new version: the fields given replace the current version's, the rest are kept."""

    term: TermCode | None = None
    grade: Grade | None = None
    crs_inputs: CrsInputsIn | None = None
    icans_inputs: IcansInputsIn | None = None
    serious: StrictBool | None = None
    seriousness_criteria: list[SeriousnessCriterion] | None = Field(default=None, max_length=6)
    relatedness: Relatedness | None = None
    expected: StrictBool | None = None
    onset_date: date | None = None
    resolution_date: date | None = None
    outcome: Outcome | None = None
    action_taken: ActionTaken | None = None
    reason: Reason


class AdverseEventOut(ResponseModel):
    id: uuid.UUID
    participant_id: uuid.UUID
    study_id: uuid.UUID
    site_id: uuid.UUID
    signal_id: uuid.UUID | None
    version: int
    term: str
    ctcae_term: str
    meddra_code: str
    ctcae_version: str
    grade: int
    crs_inputs: dict[str, Any] | None
    astct_grade: int | None
    icans_inputs: dict[str, Any] | None
    icans_grade: int | None
    grading_version: str | None
    serious: bool
    seriousness_criteria: list[str]
    relatedness: str
    expected: bool
    onset_date: date
    resolution_date: date | None
    outcome: str
    action_taken: str
    reason: str | None
    recorded_by: str
    recorded_at: datetime


class AdverseEventRow(ResponseModel):
    """A study listing row."""

    id: uuid.UUID
    participant_id: uuid.UUID
    subject_code: str
    site_id: uuid.UUID
    version: int
    term: str
    ctcae_term: str
    meddra_code: str
    grade: int
    relatedness: str
    related: bool
    serious: bool
    seriousness_criteria: list[str]
    onset_date: date
    resolution_date: date | None
    outcome: str


class GradeCount(ResponseModel):
    grade: int
    #: Participants whose maximum grade (for the term, or overall) is this grade.
    participants: int
    incidence: float | None
    #: Events of this grade.
    events: int


class IncidenceRow(ResponseModel):
    participants: int
    incidence: float | None
    events: int
    related_participants: int
    related_events: int
    serious_participants: int
    serious_events: int
    by_max_grade: list[GradeCount]


class TermIncidence(IncidenceRow):
    term: str
    ctcae_term: str
    meddra_code: str


class AdverseEventSummary(ResponseModel):
    study_id: uuid.UUID
    ctcae_version: str
    #: The denominator: the study's participants at the caller's sites.
    participants: int
    any_event: IncidenceRow
    terms: list[TermIncidence]
    notes: list[str]


class CtcaeTermOut(ResponseModel):
    code: str
    term: str
    meddra_code: str
    grades: list[int]
    grades_source: str
    grading: str


class CtcaeVocabulary(ResponseModel):
    ctcae_version: str
    terms: list[CtcaeTermOut]
