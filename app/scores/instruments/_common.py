"""What the instrument scorers share: the result shape and the strict item check.

Pure module: no database, no web framework. ``mg_adl`` predates it and keeps its own types; the
registry in ``app.scores.instruments`` adapts it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


class InstrumentItemError(ValueError):
    """An entry that cannot be scored; ``items`` names the offending item keys."""

    def __init__(self, message: str, items: tuple[str, ...]) -> None:
        super().__init__(message)
        self.items = items


@dataclass(frozen=True, slots=True)
class InstrumentScore:
    """A scored entry of any instrument.

    ``subscores`` holds only the subscores the instrument's source defines (empty when it defines
    none); ``instrument_version`` is stored with the score so a later change of scoring is a new
    version.
    """

    instrument: str
    total: int
    instrument_version: str
    subscores: Mapping[str, int] = field(default_factory=dict)


def check_items(
    items: Mapping[str, int],
    keys: tuple[str, ...],
    *,
    name: str,
    maximum: int,
    error: type[InstrumentItemError],
) -> dict[str, int]:
    """Return ``items`` as a plain dict once every key in ``keys`` holds an integer 0-``maximum``.

    Refused, in this order, with ``error`` naming the items: a non-mapping; unknown keys; missing
    keys; then, item by item in instrument order, booleans, floats (even ``2.0``), strings and
    other non-integers, and out-of-range integers. No imputation and no coercion: a partial
    entry is not a score.
    """
    if not isinstance(items, Mapping):
        raise error(f"{name} items must be a mapping of item key to value", ())
    known = set(keys)
    unknown = tuple(sorted(str(key) for key in items if key not in known))
    if unknown:
        raise error(f"unknown {name} item(s): {', '.join(unknown)}", unknown)
    missing = tuple(key for key in keys if key not in items)
    if missing:
        raise error(f"missing {name} item(s): {', '.join(missing)}", missing)
    checked: dict[str, int] = {}
    for key in keys:
        value: object = items[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise error(
                f"{name} item {key} must be an integer 0-{maximum}, got {type(value).__name__}",
                (key,),
            )
        if not 0 <= value <= maximum:
            raise error(f"{name} item {key} must be 0-{maximum}, got {value}", (key,))
        checked[key] = value
    return checked
