"""The ENTRY envelope and the ``data`` of each kind (api-contract.md), validated strictly.

Numbers must be real JSON numbers (no strings, no booleans), finite (``1e999`` overflows to
infinity and is refused), and inside plausible ranges; text refuses NUL and control characters.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StrictInt,
    model_validator,
)

from app.core.schemas import (
    IsoAwareDatetime,
    IsoDate,
    NoControl,
    Reason,
    RequestModel,
    ResponseModel,
)
from app.core.time import IanaTimeZone
from app.diary.vocabulary import SYMPTOMS
from app.medications.formulary import ROUTES, UNITS

MAX_SYNC_ENTRIES = 500
MAX_NOTE_LENGTH = 2000
MAX_SYMPTOM_NOTE_LENGTH = 500
MAX_STEP_INTERVALS = 1440


Text40 = Annotated[str, Strict(), Field(min_length=1, max_length=40), NoControl]
Text120 = Annotated[str, Strict(), Field(min_length=1, max_length=120), NoControl]
SymptomNote = Annotated[
    str, Strict(), Field(min_length=1, max_length=MAX_SYMPTOM_NOTE_LENGTH), NoControl
]
NoteText = Annotated[str, Strict(), Field(min_length=1, max_length=MAX_NOTE_LENGTH), NoControl]


Number = Annotated[float, Strict(), Field(allow_inf_nan=False)]
Item = Annotated[StrictInt, Field(ge=0, le=3)]


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MgAdlData(Payload):
    """MG-ADL items, 0-3 each; all eight required (instruments.md 1.2). No imputation."""

    talking: Item
    chewing: Item
    swallowing: Item
    breathing: Item
    brushing_teeth_or_combing_hair: Item
    arising_from_chair: Item
    double_vision: Item
    eyelid_droop: Item


class VitalsData(Payload):
    """At least one measurement; temperature in Celsius, or Fahrenheit stored as Celsius."""

    temperature_c: Annotated[Number, Field(ge=30, le=45)] | None = None
    temperature_f: Annotated[Number, Field(ge=86, le=113)] | None = None
    heart_rate_bpm: Annotated[StrictInt, Field(ge=20, le=250)] | None = None
    spo2_percent: Annotated[Number, Field(ge=50, le=100)] | None = None
    systolic_mmhg: Annotated[StrictInt, Field(ge=50, le=260)] | None = None
    diastolic_mmhg: Annotated[StrictInt, Field(ge=20, le=160)] | None = None
    measured_at: IsoAwareDatetime | None = None
    method: Text40 | None = None

    @model_validator(mode="after")
    def _rules(self) -> VitalsData:
        measurements = (
            self.temperature_c,
            self.temperature_f,
            self.heart_rate_bpm,
            self.spo2_percent,
            self.systolic_mmhg,
            self.diastolic_mmhg,
        )
        if all(m is None for m in measurements):
            raise ValueError(
                "give at least one of temperature_c, temperature_f, heart_rate_bpm, "
                "spo2_percent, systolic_mmhg, diastolic_mmhg"
            )
        if self.temperature_c is not None and self.temperature_f is not None:
            raise ValueError("give the temperature once: temperature_c or temperature_f")
        if (self.systolic_mmhg is None) != (self.diastolic_mmhg is None):
            raise ValueError("blood pressure needs both systolic_mmhg and diastolic_mmhg")
        if (
            self.systolic_mmhg is not None
            and self.diastolic_mmhg is not None
            and self.systolic_mmhg <= self.diastolic_mmhg
        ):
            raise ValueError("systolic_mmhg must be higher than diastolic_mmhg")
        return self

    def celsius(self) -> float | None:
        if self.temperature_c is not None:
            return round(self.temperature_c, 2)
        if self.temperature_f is not None:
            return round((self.temperature_f - 32) * 5 / 9, 2)
        return None


class SymptomItem(Payload):
    code: Annotated[str, Strict(), Field(min_length=1, max_length=40)]
    severity: Annotated[StrictInt, Field(ge=1, le=3)]
    onset_at: IsoAwareDatetime | None = None


class SymptomsData(Payload):
    symptoms: list[SymptomItem] = Field(min_length=1, max_length=40)
    note: SymptomNote | None = None

    @model_validator(mode="after")
    def _codes(self) -> SymptomsData:
        seen: set[str] = set()
        for i, item in enumerate(self.symptoms):
            if item.code not in SYMPTOMS:
                raise ValueError(
                    f"symptoms[{i}].code {item.code!r} is not in the vocabulary "
                    "(GET /app/v1/vocabularies/symptoms)"
                )
            if item.code in seen:
                raise ValueError(f"symptoms[{i}].code {item.code!r} appears twice")
            seen.add(item.code)
        return self


class MedicationDoseData(Payload):
    medication: Text120
    amount: Annotated[Number, Field(gt=0, le=1_000_000)]
    # The vocabularies in the OpenAPI document too (checked with a clear message below).
    unit: Annotated[
        str, Strict(), Field(min_length=1, max_length=20, json_schema_extra={"enum": list(UNITS)})
    ]
    route: Annotated[
        str, Strict(), Field(min_length=1, max_length=20, json_schema_extra={"enum": list(ROUTES)})
    ]
    taken_at: IsoAwareDatetime | None = None
    schedule: Literal["scheduled", "as_needed"] | None = None

    @model_validator(mode="after")
    def _vocab(self) -> MedicationDoseData:
        if self.unit not in UNITS:
            raise ValueError(f"unit {self.unit!r} is not one of {', '.join(UNITS)}")
        if self.route not in ROUTES:
            raise ValueError(f"route {self.route!r} is not one of {', '.join(ROUTES)}")
        return self


class StepInterval(Payload):
    start: IsoAwareDatetime
    end: IsoAwareDatetime
    count: Annotated[StrictInt, Field(ge=0, le=100_000)]

    @model_validator(mode="after")
    def _ordered(self) -> StepInterval:
        if self.end <= self.start:
            raise ValueError("an interval's end must be after its start")
        return self


class StepsData(Payload):
    date: IsoDate
    count: Annotated[StrictInt, Field(ge=0, le=200_000)]
    source: Annotated[
        str, Strict(), Field(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9._:-]+$")
    ]
    intervals: list[StepInterval] | None = Field(default=None, max_length=MAX_STEP_INTERVALS)


class NoteData(Payload):
    text: NoteText


DATA_MODELS: dict[str, type[Payload]] = {
    "mg_adl": MgAdlData,
    "vitals": VitalsData,
    "symptoms": SymptomsData,
    "medication_dose": MedicationDoseData,
    "steps": StepsData,
    "note": NoteData,
}
EntryKind = Literal["mg_adl", "vitals", "symptoms", "medication_dose", "steps", "note"]


class EntryEnvelope(BaseModel):
    """The envelope every diary record uses; ``data`` is checked against its ``kind``."""

    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID = Field(description="Client-generated UUID; the entry's identity forever.")
    kind: EntryKind
    recorded_at: IsoAwareDatetime = Field(description="When recorded, with the device's offset.")
    time_zone: IanaTimeZone = Field(description="The device's IANA zone when recorded.")
    data: dict[str, Any]


class EntryIn(EntryEnvelope):
    """An entry as the app sends it (the OpenAPI shape; validation is per kind)."""


class SyncRequest(RequestModel):
    entries: list[Any] = Field(
        max_length=MAX_SYNC_ENTRIES,
        description=f"At most {MAX_SYNC_ENTRIES} entries (ENTRY envelopes) of any kinds.",
    )


class ItemError(ResponseModel):
    loc: list[str | int]
    msg: str
    type: str


class SyncResult(ResponseModel):
    id: str | None
    status: Literal["created", "duplicate", "conflict", "invalid"]
    errors: list[ItemError] = Field(default_factory=list)
    entry: dict[str, Any] | None = Field(
        default=None, description="The stored entry (created or duplicate)."
    )


class SyncResponse(ResponseModel):
    results: list[SyncResult]


class MgAdlScoreOut(ResponseModel):
    total: int
    ocular: int
    bulbar: int
    respiratory: int
    limb: int
    instrument_version: str
    recall_period_days: int


class EntryOut(ResponseModel):
    id: uuid.UUID
    kind: str
    recorded_at: datetime
    time_zone: str
    utc_offset: str = Field(description="The device's offset when recorded, e.g. +01:00.")
    diary_date: date
    received_at: datetime
    version: int
    flags: list[str]
    data: dict[str, Any]
    score: MgAdlScoreOut | None = None
    participant_id: uuid.UUID


class EntryVersionOut(ResponseModel):
    version: int
    data: dict[str, Any]
    score: MgAdlScoreOut | None
    reason: str | None
    created_at: datetime
    actor_type: str
    actor_role: str


class CorrectionIn(RequestModel):
    data: dict[str, Any]
    reason: Reason


class ChangeOut(ResponseModel):
    entry: EntryOut
    change: Literal["created", "corrected"]


class ChangesPage(ResponseModel):
    items: list[ChangeOut]
    next_cursor: str | None = Field(description="The next page now; null on the last page.")
    resume_cursor: str | None = Field(
        description="Keep this and send it as `cursor` later to get only newer changes."
    )


class Adherence(ResponseModel):
    participant_id: uuid.UUID
    period_days: int = Field(description="The protocol's diary cadence in days.")
    periods_expected: int
    periods_with_entry: int
    adherence: float | None = Field(description="0-1; null before the first period starts.")
    start_date: date
    end_date: date


class DailyStepsOut(ResponseModel):
    date: date
    count: int
    source: str = Field(description="The source whose total counts for the day.")
    sources: dict[str, int] = Field(description="The newest total of every source that day.")


class ConflictOut(ResponseModel):
    id: uuid.UUID
    participant_id: uuid.UUID
    entry_id: uuid.UUID = Field(description="The client id of the stored entry.")
    payload: dict[str, Any] = Field(description="The conflicting submission as received.")
    received_at: datetime
    status: Literal["open", "resolved"]
    resolved_at: datetime | None
    resolution: str | None


class ConflictResolution(RequestModel):
    reason: Reason = Field(description="What was done: e.g. corrected the entry, or discarded.")
