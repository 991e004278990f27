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
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import orjson
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


class ValidEntry(NamedTuple):
    """A valid entry (a tuple: built 500 times per sync batch, a frozen dataclass costs
    twice as much)."""

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


def reference_hash_text(document: dict[str, Any]) -> bytes:
    """The bytes an entry's content hash is the SHA-256 of, as defined when the first entries
    were stored: the standard library's compact JSON with sorted keys, non-ASCII as UTF-8.
    Stored hashes depend on it; it must never change (tests/diary/test_content_hash.py)."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode()


_ALWAYS_THE_SAME = frozenset({str, bool, type(None)})


def _orjson_writes_the_same(value: Any) -> bool:
    """Whether orjson writes ``value`` byte for byte as ``reference_hash_text`` does. It does
    for strings, booleans, null, integers it can write (64-bit) and floats, except floats of
    magnitude below 1e-4, which the standard library writes with an exponent (``1e-05``) and
    orjson without (``0.00001``). Loops, not generators: it runs for every entry."""
    kind = type(value)
    if kind in _ALWAYS_THE_SAME:
        return True
    if kind is float:
        return bool(value == 0.0 or abs(value) >= 1e-4)
    if kind is int:
        return bool(-(2**63) <= value < 2**64)
    if kind is dict:
        for key, member in value.items():
            if type(key) is not str:
                return False
            if type(member) not in _ALWAYS_THE_SAME and not _orjson_writes_the_same(member):
                return False
        return True
    if kind is list:
        for member in value:
            if type(member) not in _ALWAYS_THE_SAME and not _orjson_writes_the_same(member):
                return False
        return True
    return False


def _hash(document: dict[str, Any]) -> str:
    """The SHA-256 of ``reference_hash_text(document)``; written by orjson (a sixth of the
    cost) when it gives the same bytes, by the reference otherwise."""
    if _orjson_writes_the_same(document):
        text = orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
    else:
        text = reference_hash_text(document)
    return hashlib.sha256(text).hexdigest()


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
        # In UTC, as ``now`` is: comparing datetimes of one tzinfo skips two utcoffset() calls.
        instant = recorded.astimezone(UTC)
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
    enrolled = participant.enrolled_date
    errors = date_rules(data, participant=participant, prefix=("data",))
    if instant > now + FUTURE_LIMIT:
        errors.append(
            {
                "loc": ["recorded_at"],
                "msg": "recorded_at is more than 24 h in the future; check the device clock",
                "type": "future",
            }
        )
    if diary_date < enrolled:
        errors.append(
            {
                "loc": ["recorded_at"],
                "msg": f"recorded before enrolment ({enrolled})",
                "type": "before_enrolment",
            }
        )
    if errors:
        raise InvalidInput(errors)
    flags = []
    if now - instant > timedelta(hours=protocol.diary.late_after_hours):
        flags.append("late")
    if instant > now + CLOCK_AHEAD_FLAG_AFTER:
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
