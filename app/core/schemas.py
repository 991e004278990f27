"""Base request/response shapes shared by every domain."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints


class RequestModel(BaseModel):
    """Request bodies refuse unknown fields, so clients can never set server-owned values."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ResponseModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def no_control_characters(value: str) -> str:
    """Refuse NUL and other control characters (tabs and line breaks are fine)."""
    if any((ord(ch) < 32 and ch not in "\n\t\r") or ord(ch) == 127 for ch in value):
        raise ValueError("text must not contain NUL or other control characters")
    return value


Reason = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=3, max_length=2000),
    AfterValidator(no_control_characters),
]
