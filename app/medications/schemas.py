from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, Strict, StrictInt, model_validator

from app.core.schemas import Reason, RequestModel, ResponseModel
from app.diary.schemas import Number, Text120
from app.medications.formulary import ROUTES, UNITS

#: Doses per day for each frequency; ``as_needed`` and ``other`` have no fixed daily amount.
FREQUENCIES: dict[str, float | None] = {
    "once_daily": 1,
    "twice_daily": 2,
    "three_times_daily": 3,
    "four_times_daily": 4,
    "five_times_daily": 5,
    "six_times_daily": 6,
    "every_other_day": 0.5,
    "weekly": 1 / 7,
    "as_needed": None,
    "other": None,
}
Frequency = Literal[
    "once_daily",
    "twice_daily",
    "three_times_daily",
    "four_times_daily",
    "five_times_daily",
    "six_times_daily",
    "every_other_day",
    "weekly",
    "as_needed",
    "other",
]
Unit = Annotated[
    str, Strict(), Field(min_length=1, max_length=20, json_schema_extra={"enum": list(UNITS)})
]
Route = Annotated[
    str, Strict(), Field(min_length=1, max_length=20, json_schema_extra={"enum": list(ROUTES)})
]


class MedicationFields(RequestModel):
    medication: Text120 = Field(description="A formulary code or name, or free text.")
    dose: Annotated[Number, Field(gt=0, le=1_000_000)] = Field(description="Per administration.")
    unit: Unit
    route: Route
    frequency: Frequency
    start_date: date
    stop_date: date | None = None

    @model_validator(mode="after")
    def _rules(self) -> MedicationFields:
        if self.unit not in UNITS:
            raise ValueError(f"unit {self.unit!r} is not one of {', '.join(UNITS)}")
        if self.route not in ROUTES:
            raise ValueError(f"route {self.route!r} is not one of {', '.join(ROUTES)}")
        if self.stop_date is not None and self.stop_date < self.start_date:
            raise ValueError("stop_date must not be before start_date")
        return self


class MedicationCreate(MedicationFields):
    reason: Reason | None = None


class MedicationChange(MedicationFields):
    """The whole line as it should now read, and why (a new version; the old one is kept)."""

    reason: Reason


class MedicationLineOut(ResponseModel):
    id: uuid.UUID
    participant_id: uuid.UUID
    version: int
    medication: str
    medication_code: str | None
    dose: float
    unit: str
    route: str
    frequency: str
    start_date: date
    stop_date: date | None
    is_corticosteroid: bool
    reason: str | None
    updated_at: datetime
    updated_by_role: str


class CorticosteroidDay(ResponseModel):
    date: date
    prednisone_equivalent_mg: float
    lines: list[uuid.UUID]


class CorticosteroidDoses(ResponseModel):
    days: list[CorticosteroidDay]
    not_derivable: list[uuid.UUID] = Field(
        description="Corticosteroid lines without a fixed daily amount in mg (as needed, other "
        "frequencies or non-mg units): not counted."
    )
    conversion: str


class AdministrationFields(RequestModel):
    product: Text120
    dose: Annotated[Number, Field(gt=0, le=1_000_000_000)]
    unit: Unit
    started_at: AwareDatetime
    ended_at: AwareDatetime | None = None
    cycle: Annotated[StrictInt, Field(ge=1, le=100)] | None = None
    dose_level: Annotated[str, Strict(), Field(min_length=1, max_length=40)] | None = None

    @model_validator(mode="after")
    def _times(self) -> AdministrationFields:
        if self.unit not in UNITS:
            raise ValueError(f"unit {self.unit!r} is not one of {', '.join(UNITS)}")
        if self.ended_at is not None and self.ended_at < self.started_at:
            raise ValueError("ended_at must not be before started_at")
        return self


class AdministrationCreate(AdministrationFields):
    pass


class AdministrationCorrection(AdministrationFields):
    reason: Reason


class AdministrationOut(ResponseModel):
    id: uuid.UUID
    participant_id: uuid.UUID
    version: int
    product: str
    dose: float
    unit: str
    started_at: datetime
    ended_at: datetime | None
    start_date: date = Field(description="Participant-local date the administration started.")
    cycle: int | None
    dose_level: str | None
    reason: str | None
    recorded_by: str
    recorded_at: datetime
