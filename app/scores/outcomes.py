"""Study outcomes: the registered outcome measures across a study's participants.

Each instrument's series for the whole study is read with one column query; per participant the
pure trend rules (``app.scores.trends``) give the baseline, the change at each scheduled visit
(the nearest value inside the visit window) and the events; ``app.scores.stats`` summarises.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlmodel import Session, col, select

from app.auth import scoping
from app.auth.principal import StaffPrincipal
from app.core.models import utcnow
from app.diary.models import DiaryEntry, DiaryEntryVersion, MgAdlResponse, is_current_version
from app.medications import service as medications_service
from app.participants.models import Participant
from app.scores import outcome_summaries as summaries
from app.scores import proportions, stats, trends
from app.scores.models import ClinicAssessment, ClinicAssessmentVersion
from app.studies.models import Study
from app.studies.protocol import ProtocolDefinition

INSTRUMENTS = ("mg_adl", "qmg", "mgc", "mg_qol15r", "mg_qol15")


@dataclass(frozen=True)
class OutcomeSection:
    """A section a later layer adds to the outcome document and its CSV (``app.safety`` adds
    ``adverse_events``; scores may not import safety, conventions.md). ``build`` gets the study
    and the caller; ``csv_rows`` turns the section into rows keyed by ``CSV_COLUMNS``."""

    build: Callable[[Session, Study, StaffPrincipal], dict[str, Any]]
    csv_rows: Callable[[dict[str, Any]], Iterable[dict[str, Any]]]


#: Registered by the modules that compute them, by document key.
OUTCOME_SECTIONS: dict[str, OutcomeSection] = {}

DELTA_FIELD = {
    "mg_adl": "mg_adl_improvement_delta",
    "qmg": "qmg_improvement_delta",
    "mgc": "mgc_improvement_delta",
}


def participant_series(
    session: Session,
    participant_ids: list[uuid.UUID],
    instruments: Sequence[str] = INSTRUMENTS,
) -> dict[tuple[uuid.UUID, str], list[trends.Point]]:
    """Every participant's series per instrument (diary and clinic MG-ADL together), read with
    one column query per source for all of them."""
    series: dict[tuple[uuid.UUID, str], list[trends.Point]] = defaultdict(list)
    if not participant_ids:
        return series
    if "mg_adl" in instruments:
        for pid, days, totals in _diary_mg_adl(session, participant_ids):
            series[(pid, "mg_adl")].extend(_points(days, totals, "diary"))
    clinic_rows = session.exec(
        select(
            col(ClinicAssessment.participant_id),
            col(ClinicAssessment.instrument),
            col(ClinicAssessmentVersion.assessed_date),
            col(ClinicAssessmentVersion.total),
        )
        .join(
            ClinicAssessmentVersion,
            col(ClinicAssessmentVersion.assessment_id) == ClinicAssessment.id,
        )
        .where(
            col(ClinicAssessment.participant_id).in_(participant_ids),
            col(ClinicAssessment.instrument).in_(list(instruments)),
            col(ClinicAssessmentVersion.version) == col(ClinicAssessment.current_version),
        )
        .order_by(col(ClinicAssessmentVersion.assessed_at))
    ).all()
    for pid, instrument, day, total in clinic_rows:
        series[(pid, instrument)].append(
            trends.Point(date=day, value=float(total), source="clinic")
        )
    return series


def _diary_mg_adl(
    session: Session, participant_ids: list[uuid.UUID]
) -> Iterable[tuple[uuid.UUID, Sequence[dt.date], Sequence[int]]]:
    """Per participant: the diary MG-ADL dates and totals (current versions), in series order
    (date, then recording time).

    On PostgreSQL one row per participant with two ordered arrays: a study's diaries are
    hundreds of thousands of rows, and turning each into a result row cost most of the
    request (docs/performance.md, issue 4). Elsewhere, one row per value, grouped here.
    """
    order = (col(DiaryEntry.diary_date), col(DiaryEntry.recorded_at))

    def joined(statement: Any) -> Any:
        return (
            statement.join(DiaryEntryVersion, is_current_version())
            .join(MgAdlResponse, col(MgAdlResponse.version_id) == DiaryEntryVersion.id)
            .where(col(DiaryEntry.participant_id).in_(participant_ids), DiaryEntry.kind == "mg_adl")
        )

    connection = session.connection()
    if connection.dialect.name == "postgresql":
        arrays = joined(
            sa.select(
                col(DiaryEntry.participant_id),
                sa.func.array_agg(aggregate_order_by(col(DiaryEntry.diary_date), *order)),
                sa.func.array_agg(aggregate_order_by(col(MgAdlResponse.total), *order)),
            )
        ).group_by(col(DiaryEntry.participant_id))
        return [(pid, days, totals) for pid, days, totals in connection.execute(arrays)]
    rows = connection.execute(
        joined(
            sa.select(
                col(DiaryEntry.participant_id),
                col(DiaryEntry.diary_date),
                col(MgAdlResponse.total),
            )
        ).order_by(*order)
    ).all()
    grouped: dict[uuid.UUID, tuple[list[dt.date], list[int]]] = {}
    for pid, day, total in rows:
        days, totals = grouped.setdefault(pid, ([], []))
        days.append(day)
        totals.append(total)
    return [(pid, days, totals) for pid, (days, totals) in grouped.items()]


def _points(
    days: Sequence[dt.date], totals: Sequence[int], source: trends.Source
) -> list[trends.Point]:
    point = trends.shared_point
    return [point(day, total, source) for day, total in zip(days, totals, strict=True)]


@dataclass(frozen=True, slots=True)
class Member:
    """A participant of the cohort with the current inputs of their summary."""

    id: uuid.UUID
    day0_date: dt.date | None
    time_zone: str
    withdrawn_at: dt.datetime | None
    diary_versions: int
    clinic_versions: int


@dataclass(frozen=True, slots=True)
class ParticipantOutcome:
    participant_id: uuid.UUID
    outcome: summaries.InstrumentOutcome
    censor_day: int | None


def cohort(session: Session, *, study: Study, principal: StaffPrincipal) -> list[Member]:
    """The caller's participants in the study, with the row counts that key their summaries:
    one query, each count an index-only scan of that participant's rows."""
    participant = Participant.__table__.c  # type: ignore[attr-defined]
    mg_adl = MgAdlResponse.__table__.c  # type: ignore[attr-defined]
    clinic = ClinicAssessmentVersion.__table__.c  # type: ignore[attr-defined]

    def versions(column: Any) -> Any:
        return (
            sa.select(sa.func.count())
            .where(column == participant.id)
            .correlate(Participant.__table__)  # type: ignore[attr-defined]
            .scalar_subquery()
        )

    statement = (
        sa.select(
            participant.id,
            participant.day0_date,
            participant.time_zone,
            participant.withdrawn_at,
            versions(mg_adl.participant_id),
            versions(clinic.participant_id),
        )
        .where(
            participant.study_id == study.id,
            scoping.site_filter(principal, participant.study_id, participant.site_id),
        )
        .order_by(participant.id)
    )
    return [Member(*row) for row in session.connection().execute(statement)]


def _censor_day(member: Member, last_value_date: dt.date | None, today: dt.date) -> int | None:
    """Last contact: the last value after day 0, or withdrawal, whichever is earlier."""
    day0 = member.day0_date
    if day0 is None:
        return None
    last = last_value_date or day0
    if member.withdrawn_at is not None:
        withdrawn = member.withdrawn_at.astimezone(ZoneInfo(member.time_zone)).date()
        last = min(last, withdrawn)
    return (min(last, today) - day0).days


def participant_summaries(
    session: Session,
    members: Sequence[Member],
    protocol: ProtocolDefinition,
    cache: summaries.SummaryCache | None,
) -> dict[uuid.UUID, summaries.Summary]:
    """Each member's summary: from ``cache`` when their inputs are unchanged, else computed
    from their series (read in one go for all who need it) and cached."""
    rules = summaries.rules_key(protocol)
    found: dict[uuid.UUID, summaries.Summary] = {}
    stale: list[tuple[Member, summaries.Inputs]] = []
    for m in members:
        assert m.day0_date is not None
        inputs = summaries.Inputs(m.day0_date, m.diary_versions, m.clinic_versions, rules)
        cached = cache.get(m.id, inputs) if cache is not None else None
        if cached is None:
            stale.append((m, inputs))
        else:
            found[m.id] = cached
    if stale:
        series = participant_series(session, [m.id for m, _ in stale])
        for m, inputs in stale:
            assert m.day0_date is not None
            targets = summaries.visit_targets(protocol, m.day0_date)
            summary = {
                instrument: summaries.summarise(
                    instrument,
                    series.get((m.id, instrument), []),
                    m.day0_date,
                    protocol,
                    targets=targets,
                )
                for instrument in INSTRUMENTS
            }
            if cache is not None:
                cache.put(m.id, inputs, summary)
            found[m.id] = summary
    return found


def study_outcomes(
    session: Session,
    *,
    study: Study,
    protocol: ProtocolDefinition,
    principal: StaffPrincipal,
    cache: summaries.SummaryCache | None = None,
) -> dict[str, Any]:
    """The outcome document (``cache``: participants' summaries kept between requests, see
    ``app.scores.outcome_summaries``; ``None`` computes every one)."""
    members = cohort(session, study=study, principal=principal)
    with_day0 = [m for m in members if m.day0_date is not None]
    found = participant_summaries(session, with_day0, protocol, cache)
    today = utcnow().date()
    instruments: dict[str, Any] = {}
    per_instrument: dict[str, list[ParticipantOutcome]] = {}
    for instrument in INSTRUMENTS:
        outcomes = []
        for m in with_day0:
            outcome = found[m.id][instrument]
            censor = _censor_day(m, outcome.last_value_date, today)
            outcomes.append(ParticipantOutcome(m.id, outcome, censor))
        per_instrument[instrument] = outcomes
        instruments[instrument] = _instrument_table(instrument, outcomes, protocol)
    mg_adl = [o for o in per_instrument["mg_adl"] if o.outcome.baseline_value is not None]
    document = {
        "study_id": str(study.id),
        "participants": len(members),
        "participants_with_day0": len(with_day0),
        "generated_at": utcnow().isoformat(),
        "instruments": instruments,
        "time_to_mse": _km([(o.outcome.first_mse_day, o.censor_day) for o in mg_adl]),
        "time_to_first_mg_adl_improvement": _km(
            [(o.outcome.first_improvement_day, o.censor_day) for o in mg_adl]
        ),
        "without_worsening": _proportion([not o.outcome.worsened for o in mg_adl]),
        "without_relapse": _without_relapse(per_instrument["mg_adl"], protocol),
        "corticosteroid_reduction": _corticosteroid_reduction(session, with_day0, protocol),
        "notes": [
            "Change = value - baseline (negative is better); 95 % CI of the mean uses Student's "
            "t; responders fall at least the protocol's delta below baseline.",
            "Kaplan-Meier times are days from day 0, censored at the last value or withdrawal.",
            "Proportions report n (denominator), count (numerator) and proportion; relapse and "
            "corticosteroid dose reduction follow the protocol's efficacy.relapse and "
            "efficacy.corticosteroid_reduction rules (registry terms without a standard "
            "definition). Participants without corticosteroids at baseline are excluded from "
            "the corticosteroid-reduction denominator.",
        ],
    }
    for key, section in OUTCOME_SECTIONS.items():
        document[key] = section.build(session, study, principal)
    return document


def _proportion(flags: Sequence[bool]) -> dict[str, Any]:
    n = len(flags)
    yes = sum(flags)
    return {"n": n, "count": yes, "proportion": round(yes / n, 4) if n else None}


def _without_relapse(
    mg_adl: Sequence[ParticipantOutcome], protocol: ProtocolDefinition
) -> dict[str, Any]:
    """Proportion without relapse, overall and per visit (rules: ``app.scores.proportions``)."""
    none = proportions.RelapseStatus(None, None)
    per_participant = [
        (o.outcome.relapse or none, [v.date for v in o.outcome.visit_values]) for o in mg_adl
    ]
    return proportions.without_relapse_table(
        per_participant, protocol.visits.visit_days(), summaries.relapse_settings(protocol)
    )


def _observed_until(participant: Member, protocol: ProtocolDefinition) -> dt.date:
    """Last participant-local day of observation: today, withdrawal or end of follow-up."""
    assert participant.day0_date is not None
    zone = ZoneInfo(participant.time_zone)
    last = min(
        utcnow().astimezone(zone).date(),
        participant.day0_date + dt.timedelta(days=protocol.follow_up_end_day),
    )
    if participant.withdrawn_at is not None:
        last = min(last, participant.withdrawn_at.astimezone(zone).date())
    return last


def _corticosteroid_reduction(
    session: Session, participants: Sequence[Member], protocol: ProtocolDefinition
) -> dict[str, Any]:
    """Proportion with corticosteroid dose reduction, overall and per visit; every
    participant's regimen is read with one query (rules: ``app.scores.proportions``)."""
    regimens = medications_service.corticosteroid_regimens(
        session, participant_ids=[p.id for p in participants]
    )
    empty = medications_service.CorticosteroidRegimen()
    courses = []
    for p in participants:
        assert p.day0_date is not None
        regimen = regimens.get(p.id, empty)
        courses.append(
            proportions.SteroidCourse(
                day0=p.day0_date,
                lines=regimen.lines,
                baseline_mg=proportions.baseline_dose(
                    regimen.lines,
                    p.day0_date,
                    kind=protocol.baseline.kind,
                    lookback_days=protocol.baseline.lookback_days,
                ),
                observed_until=_observed_until(p, protocol),
                not_derivable=regimen.not_derivable > 0,
            )
        )
    return proportions.reduction_table(
        courses,
        protocol.visits.visit_days(),
        protocol.efficacy.corticosteroid_reduction.min_reduction_percent,
    )


def _km(observations: list[tuple[int | None, int | None]]) -> dict[str, Any]:
    data: list[tuple[float, bool]] = []
    for event, censor in observations:
        if event is not None:
            data.append((float(event), True))
        elif censor is not None:
            data.append((float(censor), False))
    estimate = stats.kaplan_meier(data)
    return {
        "n": estimate.n,
        "events": estimate.events,
        "median_days": estimate.median,
        "curve": [
            {
                "day": s.time,
                "at_risk": s.at_risk,
                "events": s.events,
                "censored": s.censored,
                "survival": round(s.survival, 4),
                "cumulative_incidence": round(1 - s.survival, 4),
            }
            for s in estimate.steps
        ],
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _instrument_table(
    instrument: str, outcomes: list[ParticipantOutcome], protocol: ProtocolDefinition
) -> dict[str, Any]:
    field = DELTA_FIELD.get(instrument)
    delta = getattr(protocol.efficacy, field) if field else None
    rows = []
    for index, offset in enumerate(protocol.visits.visit_days()):
        visits = [o.outcome.visit_values[index] for o in outcomes]
        present = [v.change_from_baseline for v in visits if v.change_from_baseline is not None]
        percents = [v.percent_change for v in visits if v.percent_change is not None]
        summary = stats.summarize(present)
        responders = sum(1 for c in present if delta is not None and c <= -delta)
        rows.append(
            {
                "visit_day": offset,
                "week": offset // 7 if offset % 7 == 0 else round(offset / 7, 2),
                "n": summary.n,
                "mean_change": _round(summary.mean),
                "sd": _round(summary.sd),
                "median_change": _round(summary.median),
                "ci95_low": _round(summary.ci95_low),
                "ci95_high": _round(summary.ci95_high),
                "mean_percent_change": _round(
                    stats.summarize([p for p in percents if p is not None]).mean
                ),
                "responders": responders if delta is not None else None,
                "responder_proportion": round(responders / summary.n, 4)
                if delta is not None and summary.n
                else None,
            }
        )
    return {
        "instrument": instrument,
        "improvement_delta": delta,
        "participants_with_baseline": sum(
            1 for o in outcomes if o.outcome.baseline_value is not None
        ),
        "time_points": rows,
    }


CSV_COLUMNS = (
    "instrument",
    "measure",
    "visit_day",
    "week",
    "n",
    "mean_change",
    "sd",
    "median_change",
    "ci95_low",
    "ci95_high",
    "mean_percent_change",
    "responders",
    "responder_proportion",
    "count",
    "proportion",
    "term",
    "grade",
)
#: Per-visit proportions in the CSV: (document key, instrument column, measure column).
CSV_PROPORTIONS = (
    ("without_relapse", "mg_adl", "without_relapse"),
    ("corticosteroid_reduction", "corticosteroid", "corticosteroid_dose_reduction"),
)


def outcomes_csv(document: dict[str, Any]) -> str:
    """The outcome table as CSV: one row per instrument and visit (``measure``
    ``change_from_baseline``: n, change statistics, responders), then one row per proportion and
    visit (``n`` the denominator, ``count`` the numerator, ``proportion``), then the rows of the
    ``OUTCOME_SECTIONS`` (adverse events: by ``term`` and ``grade``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)

    def write(instrument: str, measure: str, row: dict[str, Any]) -> None:
        values = {**row, "instrument": instrument, "measure": measure}
        writer.writerow(["" if values.get(c) is None else values[c] for c in CSV_COLUMNS])

    for instrument, table in document["instruments"].items():
        for row in table["time_points"]:
            write(instrument, "change_from_baseline", row)
    for key, instrument, measure in CSV_PROPORTIONS:
        for row in document[key]["time_points"]:
            write(instrument, measure, row)
    for key, section in OUTCOME_SECTIONS.items():
        for row in section.csv_rows(document[key]):
            write(row["instrument"], row["measure"], row)
    return out.getvalue()
