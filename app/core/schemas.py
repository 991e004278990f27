"""Base request/response shapes shared by every domain."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints


class RequestModel(BaseModel):
    """Request bodies refuse unknown fields, so clients can never set server-owned values."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ResponseModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


Reason = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=3, max_length=2000),
]
