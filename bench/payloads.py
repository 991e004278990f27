"""Request bodies for the benchmark: realistic ENTRY envelopes with a fresh UUID per entry.

Bodies are built from byte templates made once per participant (the slow part: timestamps in
the participant's zone, random but plausible MG-ADL items and vitals, 1,440 step samples), so
that making a request costs the load generator one ``uuid4`` per entry and a join. Standard
library only: the load generator imports this module and nothing from ``app``.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from app.scores.instruments.mg_adl import ITEM_KEYS

#: Participants' zones; their offsets differ and two of them observe daylight saving time.
TIME_ZONES = (
    "Europe/Berlin",
    "America/New_York",
    "Asia/Shanghai",
    "Europe/London",
    "America/Los_Angeles",
)
SYNC_ENTRIES = 500
STEP_SAMPLES = 1440
#: Templates per participant for single entries (they differ in kind, data and recorded_at).
ENTRY_VARIANTS = 4
#: ``mixed_sync`` (the mixed load's evening sync): batches of 5-50 entries (uniform; mean
#: 27.5), each a slice of a per-zone pool of entries from the last day or two, half MG-ADL and
#: half vitals, of which about 1 in 40 is a fever (a CRS finding: the safety step works on it).
MIXED_SYNC_MIN, MIXED_SYNC_MAX = 5, 50
MIXED_SYNC_POOL = 400
MIXED_FEVER_SHARE = 0.025


def _local_iso(instant: datetime, zone: ZoneInfo) -> str:
    return instant.astimezone(zone).isoformat(timespec="seconds")


def mg_adl_data(rng: random.Random) -> dict[str, Any]:
    """Eight items 0-3, mostly mild (a typical refractory-MG diary day)."""
    weights = (45, 30, 18, 7)
    return {item: rng.choices(range(4), weights)[0] for item in ITEM_KEYS}


def vitals_data(rng: random.Random, measured_at: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "temperature_c": round(rng.uniform(36.1, 37.9), 1),
        "heart_rate_bpm": rng.randint(55, 105),
        "measured_at": measured_at,
        "method": rng.choice(["oral", "ear", "wrist cuff", "finger clip"]),
    }
    if rng.random() < 0.7:
        data["spo2_percent"] = float(rng.randint(93, 99))
    if rng.random() < 0.6:
        systolic = rng.randint(105, 150)
        data["systolic_mmhg"] = systolic
        data["diastolic_mmhg"] = rng.randint(60, min(95, systolic - 20))
    return data


def _envelope_tail(kind: str, recorded_at: str, time_zone: str, data: dict[str, Any]) -> bytes:
    """Everything of an ENTRY after its id: ``{"id":"<uuid>` + this``."""
    rest = json.dumps(
        {"kind": kind, "recorded_at": recorded_at, "time_zone": time_zone, "data": data},
        separators=(",", ":"),
    )
    return b'",' + rest[1:].encode()


def random_entry_tail(
    rng: random.Random, zone_name: str, now: datetime, *, max_age_s: int
) -> bytes:
    """An ``mg_adl`` or ``vitals`` entry recorded up to ``max_age_s`` ago, in its zone."""
    zone = ZoneInfo(zone_name)
    recorded = now - timedelta(seconds=rng.randint(30, max_age_s))
    recorded_at = _local_iso(recorded, zone)
    if rng.random() < 0.5:
        return _envelope_tail("mg_adl", recorded_at, zone_name, mg_adl_data(rng))
    measured = _local_iso(recorded - timedelta(seconds=rng.randint(0, 300)), zone)
    return _envelope_tail("vitals", recorded_at, zone_name, vitals_data(rng, measured))


def fever_tail(rng: random.Random, zone_name: str, now: datetime) -> bytes:
    """A temperature of 38.0-39.5 C recorded within the hour: every one is a CRS finding
    (issue 6), so the safety step locks, reads and writes on each."""
    zone = ZoneInfo(zone_name)
    recorded = now - timedelta(seconds=rng.randint(30, 3600))
    data = {"temperature_c": round(rng.uniform(38.0, 39.5), 1), "heart_rate_bpm": 96}
    return _envelope_tail("vitals", _local_iso(recorded, zone), zone_name, data)


def steps_tail(rng: random.Random, zone_name: str, now: datetime) -> bytes:
    """Yesterday's (local) steps with 1,440 one-minute samples, recorded within the hour."""
    zone = ZoneInfo(zone_name)
    day = (now.astimezone(zone) - timedelta(days=1)).date()
    midnight = datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)
    intervals = []
    total = 0
    for minute in range(STEP_SAMPLES):
        start = midnight + timedelta(minutes=minute)
        hour = start.astimezone(zone).hour
        awake = 7 <= hour < 22
        count = (
            rng.choice((0, 0, 0, rng.randint(5, 120))) if awake else rng.choice((0,) * 30 + (4,))
        )
        total += count
        intervals.append(
            {
                "start": _local_iso(start, zone),
                "end": _local_iso(start + timedelta(minutes=1), zone),
                "count": count,
            }
        )
    recorded_at = _local_iso(now - timedelta(seconds=rng.randint(30, 3600)), zone)
    data = {
        "date": day.isoformat(),
        "count": total,
        "source": "healthkit:iphone",
        "intervals": intervals,
    }
    return _envelope_tail("steps", recorded_at, zone_name, data)


def _new_id() -> bytes:
    return str(uuid.uuid4()).encode()


@dataclass
class Participant:
    token: str
    time_zone: str


class BodyFactory:
    """Makes request bodies for one scenario: ``make(participant_index) -> bytes``."""

    def __init__(self, scenario: str, participants: list[Participant], seed: int) -> None:
        rng = random.Random(seed)
        now = datetime.now(UTC)
        self.scenario = scenario
        self._count = 0
        self._rng = rng
        #: Entries in the body ``make`` returned last (1 but for the sync scenarios).
        self.last_items = 1
        self.make: Callable[[int], bytes]
        if scenario == "entry":
            self._entry_tails = [
                [
                    random_entry_tail(rng, p.time_zone, now, max_age_s=3600)
                    for _ in range(ENTRY_VARIANTS)
                ]
                for p in participants
            ]
            self.make = self._entry
        elif scenario == "fever":
            self._entry_tails = [
                [fever_tail(rng, p.time_zone, now) for _ in range(ENTRY_VARIANTS)]
                for p in participants
            ]
            self.make = self._entry
        elif scenario == "sync":
            # One 500-entry template per zone: offline entries from the last three days.
            by_zone = {
                zone: [
                    random_entry_tail(rng, zone, now, max_age_s=3 * 86_400)
                    for _ in range(SYNC_ENTRIES)
                ]
                for zone in {p.time_zone for p in participants}
            }
            self._sync_tails = [by_zone[p.time_zone] for p in participants]
            self.make = self._sync
            self.last_items = SYNC_ENTRIES
        elif scenario == "mixed_sync":
            pools = {
                zone: [
                    fever_tail(rng, zone, now)
                    if rng.random() < MIXED_FEVER_SHARE
                    else random_entry_tail(rng, zone, now, max_age_s=2 * 86_400)
                    for _ in range(MIXED_SYNC_POOL)
                ]
                for zone in {p.time_zone for p in participants}
            }
            self._sync_tails = [pools[p.time_zone] for p in participants]
            self.make = self._mixed_sync
        elif scenario == "steps":
            by_zone_steps = {
                zone: steps_tail(rng, zone, now) for zone in {p.time_zone for p in participants}
            }
            self._steps_tails = [by_zone_steps[p.time_zone] for p in participants]
            self.make = self._steps
        else:
            raise ValueError(f"unknown scenario {scenario!r}")

    def _entry(self, index: int) -> bytes:
        self._count += 1
        tails = self._entry_tails[index]
        return b'{"id":"' + _new_id() + tails[self._count % len(tails)]

    def _sync(self, index: int) -> bytes:
        parts = [b'{"id":"' + _new_id() + tail for tail in self._sync_tails[index]]
        return b'{"entries":[' + b",".join(parts) + b"]}"

    def _mixed_sync(self, index: int) -> bytes:
        pool = self._sync_tails[index]
        size = self._rng.randint(MIXED_SYNC_MIN, MIXED_SYNC_MAX)
        start = self._rng.randrange(len(pool) - size)
        self.last_items = size
        parts = [b'{"id":"' + _new_id() + tail for tail in pool[start : start + size]]
        return b'{"entries":[' + b",".join(parts) + b"]}"

    def _steps(self, index: int) -> bytes:
        return b'{"id":"' + _new_id() + self._steps_tails[index]

    #: Rows each 2xx response stands for: entries for ``entry``/``sync``, samples for ``steps``
    #: (``mixed_sync`` varies: the load generator counts the ``created`` results instead).
    ITEMS_PER_REQUEST = {"entry": 1, "fever": 1, "sync": SYNC_ENTRIES, "steps": STEP_SAMPLES}
