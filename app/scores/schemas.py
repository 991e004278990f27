from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, Field, Strict, StrictInt, model_validator

from app.core.schemas import Reason, RequestModel, ResponseModel
from app.diary.schemas import Number

Instrument = Literal["mg_adl", "qmg", "mgc", "mg_qol15r", "mg_qol15"]
Analyte = Literal[
    "anti_achr",
    "anti_musk",
    "anti_lrp4",
    "cd19_b_cells",
    "b_cells_naive",
    "b_cells_memory",
    "car_t_cells",
    "igg",
]
#: Units each analyte may be reported in.
LAB_UNITS: dict[str, tuple[str, ...]] = {
    "anti_achr": ("nmol/L", "pmol/L"),
    "anti_musk": ("nmol/L", "pmol/L", "U/mL"),
    "anti_lrp4": ("titer", "U/mL"),
    "cd19_b_cells": ("cells/uL",),
    "b_cells_naive": ("%", "cells/uL"),
    "b_cells_memory": ("%", "cells/uL"),
    "car_t_cells": ("%", "cells/uL", "copies/ug DNA"),
    "igg": ("g/L", "mg/dL"),
}
ItemGrade = Annotated[StrictInt, Field(ge=0, le=4)]


class AssessmentFields(RequestModel):
    assessed_at: AwareDatetime
    items: dict[str, ItemGrade] = Field(
        default_factory=dict, description="Item grades (QMG/MG-ADL/MG-QoL) or MGC response levels."
    )
    measurements: dict[str, Annotated[Number, Field(ge=0, le=100_000)]] | None = Field(
        default=None, description="QMG only: raw measurements converted with the threshold table."
    )
    sex: Literal["female", "male"] | None = Field(
        default=None, description="QMG only: needed to convert grip strength in kg."
    )
    visit_id: uuid.UUID | None = None


class AssessmentCreate(AssessmentFields):
    instrument: Instrument

    @model_validator(mode="after")
    def _measurements_for_qmg(self) -> AssessmentCreate:
        if self.instrument != "qmg" and (self.measurements or self.sex):
            raise ValueError("measurements and sex apply to the QMG only")
        return self


class AssessmentCorrection(AssessmentFields):
    reason: Reason


class AssessmentScore(ResponseModel):
    total: int
    subscores: dict[str, int]
    instrument_version: str


class AssessmentOut(ResponseModel):
    id: uuid.UUID
    participant_id: uuid.UUID
    instrument: str
    version: int
    assessed_at: datetime
    assessed_date: date
    visit_id: uuid.UUID | None
    items: dict[str, Any]
    measurements: dict[str, Any] | None
    score: AssessmentScore
    reason: str | None
    recorded_by: str
    recorded_at: datetime


class LabFields(RequestModel):
    value: Annotated[Number, Field(ge=0, le=1_000_000_000)]
    unit: Annotated[str, Strict(), Field(min_length=1, max_length=20)]
    qualifier: Literal["=", "<", ">"] = Field(
        default="=", description="`<` below the detection limit, `>` above the range."
    )
    collected_at: AwareDatetime
    visit_id: uuid.UUID | None = None


class LabCreate(LabFields):
    analyte: Analyte

    @model_validator(mode="after")
    def _unit(self) -> LabCreate:
        allowed = LAB_UNITS[self.analyte]
        if self.unit not in allowed:
            raise ValueError(f"unit for {self.analyte} must be one of {', '.join(allowed)}")
        return self


class LabCorrection(LabFields):
    reason: Reason


class LabOut(ResponseModel):
    id: uuid.UUID
    participant_id: uuid.UUID
    analyte: str
    version: int
    value: float
    unit: str
    qualifier: str
    collected_at: datetime
    collected_date: date
    visit_id: uuid.UUID | None
    reason: str | None
    recorded_by: str
    recorded_at: datetime


class TrendPointOut(ResponseModel):
    model_config = {"extra": "allow"}

    date: date
    value: int | float | None
    change_from_baseline: int | float | None
    source: str


class TrendOut(ResponseModel):
    """TREND (api-contract.md); `change_from_baseline` = value - baseline (negative is better)."""

    model_config = {"extra": "allow"}

    instrument: str
    baseline_value: int | float | None
    baseline_date: date | None
    points: list[TrendPointOut]
    first_improvement_date: date | None
    sustained_response_start_date: date | None
    first_mse_date: date | None
    worsening_dates: list[date]
