"""The safety step of every clinical write: observations in, signals, alerts and prompts out.

Registered as a follow-up hook (app/core/followups.py), so it runs inside the writer's
transaction on each write path: diary capture (single entry and sync, on PostgreSQL, SQLite or a
session), corrections, clinic MG-ADL assessments and study-drug administrations.

1. ``hook``: the written entries become ``Observation``s; if none of them can take part in a
   finding (``rules.may_fire``: a normal temperature, steps, a note ...) there is nothing to do
   and nothing is read.
2. reads: the stored observations around the new ones (the evidence window, longer when a
   "new only" symptom such as tremor needs its lookback), the previous MG-ADL, the MG-ADL
   baseline values, the study-drug doses and the participant's joinable signals;
3. ``finish``: ``rules.evaluate`` then ``episodes.merge``; the rows (signals, findings, prompts,
   alerts, audit events) and the signal updates go back to the writer.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import col

from app.alerts import service as alerts
from app.alerts.models import Alert
from app.audit.models import AuditEvent
from app.core import followups, rawsql
from app.core.models import UTCDateTime, utcnow
from app.core.rows import new_row
from app.diary.models import (
    DiaryEntry,
    DiaryEntryVersion,
    MgAdlResponse,
    SymptomReport,
    VitalSign,
    is_current_version,
)
from app.diary.vocabulary import SYMPTOMS
from app.medications.models import StudyDrugAdministration, StudyDrugAdministrationVersion
from app.safety import episodes, rules
from app.safety.models import JOINABLE_STATUSES, SafetyFinding, SafetyPrompt, SafetySignal
from app.scores import trends
from app.studies.protocol import ProtocolDefinition

#: Symptom codes any rule reads (the rest of the vocabulary is MG symptoms no rule uses).
RULE_SYMPTOMS = frozenset(
    code
    for code, term in SYMPTOMS.items()
    if term.fever_like
    or term.icans_like
    or term.hypotension_evidence
    or term.hypoxia_evidence
    or code in rules.CONSTITUTIONAL_SYMPTOMS
)
#: Stored observations read for one request, at most (a day of readings every minute is 1,440).
MAX_CONTEXT_OBSERVATIONS = 5000

_MAX_ROWS: sa.ColumnClause[Any] = sa.literal_column(str(MAX_CONTEXT_OBSERVATIONS))
_ZERO: sa.ColumnClause[Any] = sa.literal_column("0")
_ENTRY = DiaryEntry.__table__.c  # type: ignore[attr-defined]
_VERSION = DiaryEntryVersion.__table__.c  # type: ignore[attr-defined]
_ADMIN = StudyDrugAdministrationVersion.__table__.c  # type: ignore[attr-defined]
_OBS_COLUMNS = [
    _ENTRY.client_entry_id,
    _ENTRY.kind,
    _ENTRY.recorded_at,
    _ENTRY.diary_date,
    _VERSION.data,
]
_PARAMS: dict[str, sa.types.TypeEngine[Any]] = {
    "participant_id": sa.Uuid(),
    "fever_min": sa.Float(),
    "readings_from": UTCDateTime(),
    "signs": sa.Integer(),
    "spo2_min": sa.Integer(),
    "systolic_min": sa.Integer(),
    "heart_rate_max": sa.Integer(),
    "start": UTCDateTime(),
    "end": UTCDateTime(),
    "before": UTCDateTime(),
    "since": UTCDateTime(),
    "start_date": sa.Date(),
    "end_date": sa.Date(),
}


def _observations(s: sa.Select[Any]) -> sa.Select[Any]:
    return s.select_from(DiaryEntry).join(DiaryEntryVersion, is_current_version())


def _mine(kinds: tuple[str, ...]) -> list[sa.ColumnElement[bool]]:
    return [
        _ENTRY.participant_id == sa.bindparam("participant_id", type_=sa.Uuid()),
        # Literal values: these statements are compiled once and run with the driver's own
        # parameters, which have no expanding IN lists.
        _ENTRY.kind.in_([sa.literal_column(f"'{k}'") for k in kinds]),
    ]


def _query(build: Any, entities: list[Any] | None = None) -> dict[str, rawsql.Query]:
    return rawsql.per_dialect(
        lambda d: rawsql.Query(entities or _OBS_COLUMNS, build, _PARAMS, dialect=d)
    )


def _in_window(kind: str, start: str = "start") -> list[sa.ColumnElement[bool]]:
    return [
        *_mine((kind,)),
        _ENTRY.recorded_at >= sa.bindparam(start, type_=UTCDateTime()),
        _ENTRY.recorded_at <= sa.bindparam("end", type_=UTCDateTime()),
    ]


def _newest(part: sa.Select[Any], limit: Any = _MAX_ROWS) -> sa.Select[Any]:
    return part.order_by(_ENTRY.recorded_at.desc()).limit(limit).offset(_ZERO)


def _fevers() -> sa.CTE:
    """The participant's current fevers in [start, end], worked out once for the statement (it
    reads them twice). Found through ``vital_sign (participant_id, temperature_c)`` first - a
    fever is rare, so this costs the participant's fevers however many normal readings the
    window holds - then joined to their entries. Both steps are MATERIALIZED: SQLite's planner
    would otherwise walk the window's entries and test each for a fever."""
    vital = VitalSign.__table__.c  # type: ignore[attr-defined]
    versions = (
        sa.select(vital.version_id)
        .where(
            vital.participant_id == sa.bindparam("participant_id", type_=sa.Uuid()),
            vital.temperature_c >= sa.bindparam("fever_min", type_=sa.Float()),
        )
        .cte("fever_version")
        .prefix_with("MATERIALIZED")
    )
    return (
        sa.select(*_OBS_COLUMNS)
        .select_from(versions)
        .join(DiaryEntryVersion, _VERSION.id == versions.c.version_id)
        .join(DiaryEntry, is_current_version())
        .where(*_in_window("vitals"))
        .order_by(_ENTRY.recorded_at.desc())
        .limit(_MAX_ROWS)
        .offset(_ZERO)
        .cte("fever")
        .prefix_with("MATERIALIZED")
    )


def _relevant(s: sa.Select[Any]) -> Any:
    """Stored observations in [start, end] that a rule can use, found through the typed rows
    (app/safety/rules.py says which rule reads what):

    - the fevers (any rule around a fever);
    - the temperature readings from ``readings_from`` (one answers a temperature prompt);
    - the signs - abnormal SpO2, systolic pressure or heart rate, a symptom of the rules'
      vocabulary, MG-ADL breathing >= 2 - only when there is a fever to go with them (a new one,
      ``signs`` = 1, or a stored one in the window) or a new-only symptom needs its lookback
      (``signs`` = 1): without a fever a stored sign takes part in no finding
      (``rules.needs_signs``), and a participant with months of low readings would otherwise
      cost all of them on every write.

    One entry may come back more than once (a fever with a low SpO2, several symptoms);
    ``_stored`` keeps it once."""
    vital = VitalSign.__table__.c  # type: ignore[attr-defined]
    symptom = SymptomReport.__table__.c  # type: ignore[attr-defined]
    mg_adl = MgAdlResponse.__table__.c  # type: ignore[attr-defined]
    codes: list[sa.ColumnClause[Any]] = [
        sa.literal_column(f"'{code}'") for code in sorted(RULE_SYMPTOMS)
    ]
    fevers = _fevers()
    # The signs' row limit: MAX_CONTEXT_OBSERVATIONS when they are wanted, else 0 - worked out
    # once, before any of their rows is looked at (on SQLite and PostgreSQL alike a LIMIT of 0
    # reads nothing), so without a fever they cost nothing however many readings there are.
    signs_limit = sa.select(
        sa.case(
            (
                sa.or_(
                    sa.bindparam("signs", type_=sa.Integer()) == sa.literal_column("1"),
                    sa.exists(sa.select(sa.literal_column("1")).select_from(fevers)),
                ),
                _MAX_ROWS,
            ),
            else_=_ZERO,
        )
    ).scalar_subquery()

    readings = (
        _observations(s)
        .join(VitalSign, vital.version_id == _VERSION.id)
        .where(*_in_window("vitals", "readings_from"), vital.temperature_c.is_not(None))
    )
    signs = (
        _observations(s)
        .join(VitalSign, vital.version_id == _VERSION.id)
        .where(
            *_in_window("vitals"),
            sa.or_(
                # The typed column keeps SpO2 rounded to a whole percent (91.6 -> 92): read up
                # to the threshold itself; the rules decide on the recorded value.
                vital.spo2_percent <= sa.bindparam("spo2_min", type_=sa.Integer()),
                vital.systolic_mmhg < sa.bindparam("systolic_min", type_=sa.Integer()),
                vital.heart_rate_bpm > sa.bindparam("heart_rate_max", type_=sa.Integer()),
            ),
        )
    )
    symptoms = (
        _observations(s)
        .join(SymptomReport, symptom.version_id == _VERSION.id)
        .where(*_in_window("symptoms"), symptom.code.in_(codes))
    )
    breathing = (
        _observations(s)
        .join(MgAdlResponse, mg_adl.version_id == _VERSION.id)
        .where(*_in_window("mg_adl"), mg_adl.breathing >= sa.literal_column("2"))
    )
    return sa.union_all(
        sa.select(*fevers.c),
        _newest(readings).subquery().select(),
        *(_newest(part, signs_limit).subquery().select() for part in (signs, symptoms, breathing)),
    )


Q_RECENT = _query(_relevant)


_WHICH: sa.Label[Any] = sa.literal_column("'x'").label("which")


def _mg_history(s: sa.Select[Any]) -> Any:
    """One statement for an MG-ADL's history: the latest MG-ADL recorded before ``before``
    (``which`` = previous) and the values dated in the baseline window (``which`` =
    baseline; an empty window when there is no day 0)."""

    def part(which: str) -> sa.Select[Any]:
        return sa.select(*_OBS_COLUMNS, sa.literal_column(f"'{which}'").label("which"))

    previous = (
        _observations(part("previous"))
        .where(
            *_mine(("mg_adl",)), _ENTRY.recorded_at < sa.bindparam("before", type_=UTCDateTime())
        )
        .order_by(_ENTRY.recorded_at.desc())
        .limit(sa.literal_column("1"))
        .offset(_ZERO)
    )
    baseline = (
        _observations(part("baseline"))
        .where(
            *_mine(("mg_adl",)),
            _ENTRY.diary_date >= sa.bindparam("start_date", type_=sa.Date()),
            _ENTRY.diary_date <= sa.bindparam("end_date", type_=sa.Date()),
        )
        .limit(_MAX_ROWS)
        .offset(_ZERO)
    )
    return sa.union_all(previous.subquery().select(), baseline.subquery().select())


Q_MG_HISTORY = _query(_mg_history, [*_OBS_COLUMNS, _WHICH])
Q_DOSES = _query(
    lambda s: (
        s.select_from(StudyDrugAdministration)
        .join(
            StudyDrugAdministrationVersion,
            sa.and_(
                _ADMIN.administration_id == StudyDrugAdministration.id,
                _ADMIN.version == StudyDrugAdministration.current_version,
            ),
        )
        .where(
            col(StudyDrugAdministration.participant_id)
            == sa.bindparam("participant_id", type_=sa.Uuid())
        )
        .order_by(_ADMIN.start_date)
    ),
    # The driver's own float (psycopg's numeric result processor needs the column's OID).
    [
        _ADMIN.start_date,
        sa.type_coerce(_ADMIN.dose, sa.types.NullType()).label("dose"),
        _ADMIN.product,
    ],
)
Q_SIGNALS = _query(
    lambda s: s.where(
        col(SafetySignal.participant_id) == sa.bindparam("participant_id", type_=sa.Uuid()),
        col(SafetySignal.status).in_([sa.literal_column(f"'{v}'") for v in JOINABLE_STATUSES]),
        col(SafetySignal.last_evidence_at) >= sa.bindparam("since", type_=UTCDateTime()),
    ),
    [rawsql.AsRow(SafetySignal)],
)

_SIGNAL = SafetySignal.__table__.c  # type: ignore[attr-defined]
_UPDATE_COLUMNS = {
    "priority": sa.String(),
    "mode": sa.String(),
    "first_evidence_at": UTCDateTime(),
    "last_evidence_at": UTCDateTime(),
    "finding_count": sa.Integer(),
    "evidence": _SIGNAL.evidence.type,
    "updated_at": UTCDateTime(),
}
#: Bind names differ from the column names (SQLAlchemy reserves those for SET).
_UPDATE_PARAMS = {"signal_id": sa.Uuid(), **{f"v_{k}": t for k, t in _UPDATE_COLUMNS.items()}}
U_SIGNAL = rawsql.per_dialect(
    lambda d: rawsql.Statement(
        sa.update(SafetySignal.__table__)  # type: ignore[attr-defined]
        .where(_SIGNAL.id == sa.bindparam("signal_id", type_=sa.Uuid()))
        .values({k: sa.bindparam(f"v_{k}", type_=t) for k, t in _UPDATE_COLUMNS.items()}),
        _UPDATE_PARAMS,
        dialect=d,
    )
)


def _update_params(values: dict[str, Any]) -> dict[str, Any]:
    return {"signal_id": values["id"], **{f"v_{k}": values[k] for k in _UPDATE_COLUMNS}}


_TABLES: dict[Any, sa.Table] = {
    model: model.__table__  # type: ignore[union-attr]
    for model in (SafetySignal, SafetyFinding, SafetyPrompt, Alert, AuditEvent)
}


# --- observations -------------------------------------------------------------------------------


def observation(entry: followups.WrittenEntry) -> rules.Observation | None:
    """The rules' view of an entry's data (canonical diary data, or clinic MG-ADL items)."""
    data = entry.data
    common: dict[str, Any] = {
        "entry_id": entry.entry_id,
        "at": entry.recorded_at,
        "local_date": entry.local_date,
        "source": entry.source,
    }
    if entry.kind == "vitals":
        celsius = data.get("temperature_c")
        if celsius is None and data.get("temperature_f") is not None:
            celsius = round((float(data["temperature_f"]) - 32) * 5 / 9, 2)
        return rules.Observation(
            kind="vitals",
            temperature_c=celsius,
            heart_rate_bpm=data.get("heart_rate_bpm"),
            spo2_percent=data.get("spo2_percent"),
            systolic_mmhg=data.get("systolic_mmhg"),
            **common,
        )
    if entry.kind == "symptoms":
        items = tuple((s["code"], int(s["severity"])) for s in data.get("symptoms", ()))
        return rules.Observation(kind="symptoms", symptoms=items, **common)
    if entry.kind == "mg_adl":
        return rules.Observation(kind="mg_adl", mg_adl=dict(data), **common)
    return None


def _stored(rows: Iterable[list[Any]]) -> list[rules.Observation]:
    out = []
    seen: set[Any] = set()
    for client_id, kind, recorded_at, diary_date, data in rows:
        if client_id in seen:
            continue
        seen.add(client_id)
        found = observation(followups.WrittenEntry(client_id, kind, recorded_at, diary_date, data))
        if found is not None:
            out.append(found)
    return out


def _day_start(day: date, zone: str) -> datetime:
    return datetime.combine(day, time.min, ZoneInfo(zone))


# --- the follow-up ------------------------------------------------------------------------------


@dataclass
class SafetyFollowup:
    participant: Any
    protocol: ProtocolDefinition
    new: list[rules.Observation]
    lock: uuid.UUID
    reads: list[followups.Read]
    read_names: list[str]
    #: Re-evaluating stored observations (after a dose was recorded): they come from the reads.
    reevaluate_from: datetime | None = None
    now: datetime | None = None

    def finish(self, results: list[list[list[Any]]]) -> followups.Write:
        found = dict(zip(self.read_names, results, strict=True))
        recent_rows, history_rows, dose_rows, signal_rows = (found.get(name, []) for name in READS)
        previous_rows = [row[:-1] for row in history_rows if row[-1] == "previous"]
        baseline_rows = [row[:-1] for row in history_rows if row[-1] == "baseline"]
        recent = _stored(recent_rows)
        new = self.new
        if self.reevaluate_from is not None:
            new = [o for o in recent if o.at >= self.reevaluate_from]
        previous = _stored(previous_rows)
        doses = tuple(rules.Dose(start, dose, product) for start, dose, product in dose_rows)
        context = rules.Context(
            settings=self.protocol.safety,
            worsening_delta=self.protocol.efficacy.worsening_delta,
            doses=doses,
            recent=tuple(recent),
            previous_mg_adl=previous[0] if previous else None,
            baseline_mg_adl=self._baseline(_stored(baseline_rows), new),
        )
        now = self.now or utcnow()
        evaluation = rules.evaluate(new, context)
        if self.reevaluate_from is not None:
            evaluation.prompts = []
        p = self.participant
        subject = episodes.Subject(participant_id=p.id, study_id=p.study_id, site_id=p.site_id)
        changes = episodes.merge(
            evaluation.findings,
            [episodes.OpenSignal.of(row[0]) for row in signal_rows],
            settings=self.protocol.safety,
            subject=subject,
            now=now,
            # Re-evaluation after a dose only raises the priority of signals still open.
            join_only=self.reevaluate_from is not None,
        )
        prompts = [
            new_row(
                SafetyPrompt,
                participant_id=p.id,
                study_id=p.study_id,
                kind=prompt.kind,
                rule_id=prompt.rule_id,
                rule_version=prompt.rule_version,
                entry_id=prompt.entry_id,
                evidence_at=prompt.evidence_at,
                expires_at=prompt.evidence_at
                + timedelta(hours=self.protocol.safety.prompt_expiry_hours),
                created_at=now,
            )
            for prompt in evaluation.prompts
        ]
        parts = [
            (_TABLES[SafetySignal], changes.signals),
            (_TABLES[SafetyFinding], changes.findings),
            (_TABLES[SafetyPrompt], prompts),
            (_TABLES[Alert], changes.alerts),
            (_TABLES[AuditEvent], changes.audit),
        ]
        updates = [followups.Update(U_SIGNAL, _update_params(v)) for v in changes.updates]
        # The webhook outbox's rows for each new alert (inserted above), same transaction.
        updates += [update for alert in changes.alerts for update in alerts.fanout(alert)]
        return followups.Write(
            parts=[(table, [dict(r) for r in rows]) for table, rows in parts if rows],
            updates=updates,
        )

    def _baseline(
        self, stored: list[rules.Observation], new: list[rules.Observation]
    ) -> float | None:
        """The protocol's MG-ADL baseline from the stored values and the new ones in its window
        (the PostgreSQL path reads before it inserts, the others after: the same answer)."""
        day0 = self.participant.day0_date
        seen = {o.entry_id for o in stored}
        values = stored + [o for o in new if o.mg_adl is not None and o.entry_id not in seen]
        if day0 is None or not values:
            return None
        rule = self.protocol.baseline
        points = [
            trends.Point(date=o.local_date, value=float(o.mg_adl_total or 0), source="diary")
            for o in values
        ]
        settings = trends.TrendSettings(baseline_kind=rule.kind, lookback_days=rule.lookback_days)
        value, _ = trends.baseline(points, day0, settings)
        return None if value is None or not math.isfinite(value) else value


#: The reads of a follow-up, by name (``finish`` gets their rows in this order).
READS = ("recent", "mg_history", "doses", "signals")


#: ``readings_from`` for a read that needs no temperature readings but fevers.
NO_READINGS = datetime.max.replace(tzinfo=UTC)


def _reads(
    participant: Any,
    protocol: ProtocolDefinition,
    start: datetime,
    end: datetime,
    *,
    first_mg_adl: datetime | None,
    recent: bool = True,
    doses: bool = True,
    readings_from: datetime | None = None,
    signs: bool = True,
) -> dict[str, followups.Read]:
    """Only the reads the new observations need: a lone MG-ADL reads no vitals, a vitals entry
    no MG-ADL history. Each read costs a statement (about a third of a millisecond of CPU)."""
    s = protocol.safety
    pid = {"participant_id": participant.id}
    day0 = participant.day0_date
    out: dict[str, followups.Read] = {}
    if recent:
        out["recent"] = followups.Read(
            Q_RECENT,
            {
                **pid,
                "start": start,
                "end": end,
                "fever_min": s.fever_threshold_c,
                "readings_from": max(readings_from or start, start),
                "signs": int(signs),
                "spo2_min": s.spo2_min_percent,
                "systolic_min": s.hypotension_systolic_mmhg,
                "heart_rate_max": s.tachycardia_bpm,
            },
        )
    if first_mg_adl is not None:
        out["mg_history"] = followups.Read(
            Q_MG_HISTORY,
            {
                **pid,
                "before": first_mg_adl,
                "start_date": (
                    day0 - timedelta(days=protocol.baseline.lookback_days) if day0 else date.max
                ),
                "end_date": day0 or date.min,
            },
        )
    if doses:
        out["doses"] = followups.Read(Q_DOSES, pid)
    out["signals"] = followups.Read(
        Q_SIGNALS, {**pid, "since": start - timedelta(hours=s.signal_dedup_hours)}
    )
    return out


def _all_off(protocol: ProtocolDefinition) -> bool:
    modes = protocol.safety.rule_modes
    return all(modes.get(rule_id) == "off" for rule_id in rules.RULES)


def hook(written: followups.Written) -> SafetyFollowup | None:
    protocol: ProtocolDefinition = written.protocol
    participant = written.participant
    if _all_off(protocol):
        return None
    s = protocol.safety
    if written.dose_on is not None:
        # A dose recorded now may put earlier observations inside its risk window: evaluate
        # again everything since the earliest day a window after it covers.
        first_day = min((w.start_day for w in s.risk_windows), default=0)
        since = _day_start(written.dose_on + timedelta(days=first_day), participant.time_zone)
        span = timedelta(hours=s.evidence_window_hours)
        # Back far enough that a long-standing tremor is not taken for a new one.
        start = since - max(span, timedelta(days=s.new_symptom_lookback_days))
        reads = _reads(participant, protocol, start, utcnow() + span, first_mg_adl=None)
        return SafetyFollowup(
            participant=participant,
            protocol=protocol,
            new=[],
            lock=participant.id,
            reads=list(reads.values()),
            read_names=list(reads),
            reevaluate_from=since,
        )
    new = [o for e in written.entries if (o := observation(e)) is not None]
    delta = protocol.efficacy.worsening_delta
    has_baseline = participant.day0_date is not None
    if not any(rules.may_fire(o, s, delta, has_baseline=has_baseline) for o in new):
        return None
    span = timedelta(hours=s.evidence_window_hours)
    start = min(o.at for o in new) - span
    if any(c in rules.NEW_ONLY_SYMPTOMS for o in new for c in o.codes()):
        start = min(start, min(o.at for o in new) - timedelta(days=s.new_symptom_lookback_days))
    mg_adl = [o.at for o in new if o.mg_adl is not None]
    # Stored observations matter to a fever, a sign of hypotension or hypoxia (an MG-ADL
    # breathing at rest too), a fever-like or new-only symptom (rules.needs_stored); readings
    # that only answer a temperature prompt, to a fever-like symptom.
    recent = any(rules.needs_stored(o, s) for o in new)
    prompting = [o.at for o in new if any(rules.needs_readings_for(c) for c in o.codes())]
    # Doses set the priority of the dose-aware rules (a fever, an ICANS-like symptom); the MG
    # rules do not read them (their findings then carry no days_since_dose).
    dose_aware = any(
        (o.temperature_c is not None and o.temperature_c >= s.fever_threshold_c)
        or any(SYMPTOMS[c].icans_like for c in o.codes() if c in SYMPTOMS)
        for o in new
    )
    reads = _reads(
        participant,
        protocol,
        start,
        max(o.at for o in new) + span,
        first_mg_adl=min(mg_adl, default=None),
        recent=recent,
        doses=dose_aware,
        readings_from=(min(prompting) - rules.PROMPT_READING_BEFORE if prompting else NO_READINGS),
        signs=any(rules.needs_signs(o, s) for o in new),
    )
    return SafetyFollowup(
        participant=participant,
        protocol=protocol,
        new=new,
        lock=participant.id,
        reads=list(reads.values()),
        read_names=list(reads),
    )


followups.HOOKS.append(hook)
