"""An entry's content hash never changes: it decides duplicate (same id, same content) against
conflict (same id, other content) for entries stored long ago (issue 3, "Sync"), so a phone
re-sending an entry stored before an upgrade must still get ``duplicate``.

The hashes below were computed by the original definition (the standard library's compact,
key-sorted JSON; ``reference_hash_text``) before ``_hash`` learnt to write it with orjson.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from app.diary.validation import _hash, reference_hash_text

PINNED: dict[str, tuple[dict[str, Any], str]] = {
    "mg_adl": (
        {
            "kind": "mg_adl",
            "recorded_at": "2026-11-21T23:30:00+13:00",
            "time_zone": "Pacific/Auckland",
            "data": {
                "talking": 1,
                "chewing": 0,
                "swallowing": 2,
                "breathing": 0,
                "brushing_teeth_or_combing_hair": 1,
                "rising_from_chair": 3,
                "double_vision": 0,
                "eyelid_droop": 1,
            },
        },
        "3bda7f601e338f16363fcd6072c6ed0f0c75dba91b531c7498b609019c128946",
    ),
    "vitals": (
        {
            "kind": "vitals",
            "recorded_at": "2026-11-21T00:30:00-08:00",
            "time_zone": "America/Los_Angeles",
            "data": {
                "temperature_c": 38.25,
                "heart_rate_bpm": 104,
                "spo2_percent": 96.5,
                "method": "oral",
            },
        },
        "1efca33b42249e4286d477a0209f1cc8d88a493a2253e2c04640d16d49e1260f",
    ),
    "note, non-ASCII and escapes": (
        {
            "kind": "note",
            "recorded_at": "2026-03-29T02:30:00+02:00",
            "time_zone": "Europe/Berlin",
            "data": {"text": 'Müde, Doppelbilder 👀\nabends "schlimmer" \\ 1e-05'},
        },
        "93b2570149d4bc194b1873831ddc452a03abfe19373d8165348a338e153bec15",
    ),
    "a dose below 1e-4 (the standard library writes 5e-05)": (
        {
            "kind": "medication_dose",
            "recorded_at": "2026-11-21T08:00:00+00:00",
            "time_zone": "UTC",
            "data": {
                "medication": "x",
                "amount": 0.00005,
                "unit": "mg",
                "route": "PO",
                "taken_at": "2026-11-21T08:00:00+00:00",
                "schedule": "scheduled",
            },
        },
        "14f2e17396061cacb5c5ba96289116706e2590e3b58afd1b3a987d24c6804664",
    ),
}


@pytest.mark.parametrize("name", list(PINNED))
def test_the_content_hash_is_the_one_stored_entries_have(name: str) -> None:
    document, expected = PINNED[name]
    assert _hash(document) == expected
    assert hashlib.sha256(reference_hash_text(document)).hexdigest() == expected


_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=15,
)


@settings(max_examples=500)
@given(data=_JSON)
@example(data=1e-05)
@example(data=-0.0001)
@example(data=1e16)
@example(data=2**64)
@example(data=-(2**63) - 1)
@example(data={"é": 1, "e": 2, "z": [0.0, -0.0, 5e-324]})
@example(data="\u2028\x00\x1f\x7f")
def test_the_fast_hash_is_the_reference_hash(data: Any) -> None:
    """Whatever the document holds, ``_hash`` is the SHA-256 of the reference bytes (orjson
    when it writes the same bytes, the reference itself otherwise)."""
    document = {"kind": "note", "data": data}
    assert _hash(document) == hashlib.sha256(reference_hash_text(document)).hexdigest()
