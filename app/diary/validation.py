"""Validating one diary entry: the envelope, its data by kind, and the time rules.

api-contract.md "Rules a client relies on": ``recorded_at`` more than 24 h ahead of the server
or a local date before enrolment makes an entry invalid; an entry received long after it was
recorded is accepted and flagged ``late``; the local ``diary_date`` is the calendar day of
``recorded_at`` in the entry's own IANA zone. Pure functions: no database.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from app.core.errors import InvalidInput
from app.diary.schemas import DATA_MODELS, EntryEnvelope, Payload, StepsData
from app.participants.models import Participant
from app.studies.protocol import ProtocolDefinition

FUTURE_LIMIT = timedelta(hours=24)
CLOCK_AHEAD_FLAG_AFTER = timedelta(minutes=5)


def field_errors(exc: ValidationError, prefix: Sequence[str | int] = ()) -> list[dict[str, Any]]:
    return [
        {"loc": [*prefix, *err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False)
    ]


@dataclass(frozen=True)
class ValidEntry:
    envelope: EntryEnvelope
    data: Payload
    diary_date: date
    offset_minutes: int
    flags: list[str]
    content_hash: str
    #: ``canonical_data(data)``, computed once.
    canonical: dict[str, Any]


def canonical_data(data: Payload) -> dict[str, Any]:
    return data.model_dump(mode="json", exclude_none=True)


def _hash(document: dict[str, Any]) -> str:
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def validate_data(kind: str, raw: Any, *, prefix: Sequence[str | int] = ("data",)) -> Payload:
    try:
        return DATA_MODELS[kind].model_validate(raw)
    except ValidationError as exc:
        raise InvalidInput(field_errors(exc, prefix)) from exc


def date_rules(
    data: Payload, *, participant: Participant, prefix: Sequence[str | int]
) -> list[dict[str, Any]]:
    if isinstance(data, StepsData) and data.date < participant.enrolled_date:
        return [
            {
                "loc": [*prefix, "date"],
                "msg": f"the steps date is before enrolment ({participant.enrolled_date})",
                "type": "before_enrolment",
            }
        ]
    return []


def validate_entry(
    raw: Any, *, participant: Participant, protocol: ProtocolDefinition, now: datetime
) -> ValidEntry:
    """Validate one ENTRY; raise ``InvalidInput`` with every field error found."""
    if not isinstance(raw, dict):
        raise InvalidInput(
            [{"loc": [], "msg": "an entry must be a JSON object", "type": "dict_type"}]
        )
    try:
        envelope = EntryEnvelope.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInput(field_errors(exc)) from exc
    data = validate_data(envelope.kind, envelope.data)
    recorded = envelope.recorded_at
    offset = recorded.utcoffset()
    assert offset is not None  # AwareDatetime
    try:
        local = recorded.astimezone(ZoneInfo(envelope.time_zone))
    except OverflowError as exc:
        raise InvalidInput(
            [
                {
                    "loc": ["recorded_at"],
                    "msg": "recorded_at is outside the supported calendar range",
                    "type": "out_of_range",
                }
            ]
        ) from exc
    diary_date = local.date()
    errors = date_rules(data, participant=participant, prefix=("data",))
    if recorded > now + FUTURE_LIMIT:
        errors.append(
            {
                "loc": ["recorded_at"],
                "msg": "recorded_at is more than 24 h in the future; check the device clock",
                "type": "future",
            }
        )
    if diary_date < participant.enrolled_date:
        errors.append(
            {
                "loc": ["recorded_at"],
                "msg": f"recorded before enrolment ({participant.enrolled_date})",
                "type": "before_enrolment",
            }
        )
    if errors:
        raise InvalidInput(errors)
    flags = []
    if now - recorded > timedelta(hours=protocol.diary.late_after_hours):
        flags.append("late")
    if recorded > now + CLOCK_AHEAD_FLAG_AFTER:
        flags.append("clock_ahead")
    if local.utcoffset() != offset:
        flags.append("offset_mismatch")
    offset_minutes = int(offset.total_seconds() // 60)
    canonical = canonical_data(data)
    content_hash = _hash(
        {
            "kind": envelope.kind,
            "recorded_at": recorded.isoformat(),
            "time_zone": envelope.time_zone,
            "data": canonical,
        }
    )
    return ValidEntry(envelope, data, diary_date, offset_minutes, flags, content_hash, canonical)
