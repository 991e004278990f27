"""Time helpers: the server clock, IANA zones and participant-local dates."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import AfterValidator

from app.core.models import utcnow

__all__ = ["IanaTimeZone", "local_date", "utcnow", "validate_time_zone"]

_ZONES = frozenset(available_timezones())


def validate_time_zone(name: str) -> str:
    """Accept only IANA zone names (``Europe/Berlin``), never offsets or abbreviations."""
    if name not in _ZONES:
        raise ValueError(f"{name!r} is not an IANA time zone name such as 'Europe/Berlin'")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:  # pragma: no cover - defensive
        raise ValueError(f"{name!r} is not a known time zone") from exc
    return name


IanaTimeZone = Annotated[str, AfterValidator(validate_time_zone)]


def local_date(instant: datetime, time_zone: str) -> date:
    """The calendar day ``instant`` falls on in ``time_zone``."""
    if instant.tzinfo is None:
        raise ValueError("instant must carry an offset")
    return instant.astimezone(ZoneInfo(time_zone)).date()


def today_in(time_zone: str) -> date:
    return datetime.now(UTC).astimezone(ZoneInfo(time_zone)).date()
