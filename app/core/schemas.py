"""Base request/response shapes shared by every domain."""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from typing import Annotated, Any, get_args, get_origin

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    FutureDate,
    FutureDatetime,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    NaiveDatetime,
    PastDate,
    PastDatetime,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

_NUMBER = re.compile(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*")
ISO_ONLY = (
    "give dates and times as ISO 8601 strings (2026-11-21, 2026-11-21T08:30:00+01:00); "
    "a number is not read as a timestamp"
)


#: pydantic's own date and time types, which are not ``datetime`` subclasses at run time.
_PYDANTIC_TEMPORAL = (
    AwareDatetime,
    NaiveDatetime,
    PastDate,
    FutureDate,
    PastDatetime,
    FutureDatetime,
)


def _temporal(annotation: Any) -> bool:
    """Whether a field's annotation is (optionally, or inside Annotated) a date or a time."""
    if annotation in _PYDANTIC_TEMPORAL:
        return True
    if isinstance(annotation, type):
        return issubclass(annotation, dt.date | dt.time)
    origin = get_origin(annotation)
    if origin is list or origin is dict or origin is tuple:
        return False
    return any(_temporal(arg) for arg in get_args(annotation))


def iso_only(value: Any) -> Any:
    """Refuse numbers (and numeric strings) for a date or time: pydantic would read ``0`` as
    1970-01-01, and a clinical date typed as a number is a mistake, never a timestamp."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError(ISO_ONLY)
    return value


class IsoTemporal(BaseModel):
    """Dates and times of every field (and of subclasses' fields) only from ISO 8601 text."""

    @field_validator("*", mode="before")
    @classmethod
    def _iso_temporal(cls, value: Any, info: ValidationInfo) -> Any:
        name = info.field_name
        if name is not None and _temporal_field(cls, name):
            return iso_only(value)
        return value


@functools.cache
def _temporal_field(model: type[BaseModel], name: str) -> bool:
    field = model.model_fields.get(name)
    return field is not None and _temporal(field.annotation)


#: A date or an instant with its offset, from ISO 8601 text only (query parameters and the
#: diary's hot path, where a per-field check of every field would cost more).
IsoDate = Annotated[dt.date, BeforeValidator(iso_only)]
IsoAwareDatetime = Annotated[AwareDatetime, BeforeValidator(iso_only)]


class RequestModel(IsoTemporal):
    """Request bodies refuse unknown fields, so clients can never set server-owned values;
    dates and times come as ISO 8601 text only."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ResponseModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def no_control_characters(value: str) -> str:
    """Refuse NUL and other control characters (tabs and line breaks are fine)."""
    if any((ord(ch) < 32 and ch not in "\n\t\r") or ord(ch) == 127 for ch in value):
        raise ValueError("text must not contain NUL or other control characters")
    return value


#: What ``no_control_characters`` accepts, as a JSON Schema (ECMA-262) pattern.
NO_CONTROL_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"


@dataclass(frozen=True)
class NoControlCharacters:
    """``Annotated`` metadata: refuse control characters (``no_control_characters``) and say
    so in the OpenAPI document (``pattern``), so clients and contract tests know the rule."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(no_control_characters, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["pattern"] = NO_CONTROL_PATTERN
        return json_schema


NoControl = NoControlCharacters()

Reason = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=3, max_length=2000),
    NoControl,
]
