"""Adverse-event reports for a study, limited to the caller's sites: the listing, and the
incidence summary (also the ``adverse_events`` section of the study outcomes).

The summary is computed in the database: one aggregate row per participant and term (maximum
grade, event, related and serious counts) and one per term and grade (event counts), whatever
the number of events.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from app.auth import scoping
from app.auth.principal import StaffPrincipal
from app.core.pagination import PageParams, paginate
from app.participants.models import Participant
from app.safety.ae_models import RELATED, AdverseEvent, AdverseEventVersion
from app.safety.ae_schemas import (
    AdverseEventRow,
    AdverseEventSummary,
    GradeCount,
    IncidenceRow,
    TermIncidence,
)
from app.safety.ctcae import BY_MEDDRA, CTCAE_VERSION, TERMS
from app.scores import outcomes
from app.studies.models import Study

NOTES = [
    "Incidence = participants with at least one event / the study's participants at the "
    "caller's sites; current versions of each adverse event.",
    "Participants are counted once per term at their maximum grade (by_max_grade); events are "
    "counted at their own grade.",
    "Treatment-related: relatedness possible, probable or definite.",
]

_RELATED = col(AdverseEventVersion.relatedness).in_(RELATED)


def _current(statement: Any, *, study_id: uuid.UUID, principal: StaffPrincipal) -> Any:
    """Current versions of the study's adverse events whose participant is in the caller's
    sites (the participant's site now, as for every participant read)."""
    return (
        statement.join(
            AdverseEvent,
            sa.and_(
                col(AdverseEvent.id) == col(AdverseEventVersion.adverse_event_id),
                col(AdverseEventVersion.version) == col(AdverseEvent.current_version),
            ),
        )
        .join(Participant, col(Participant.id) == col(AdverseEvent.participant_id))
        .where(
            col(AdverseEvent.study_id) == study_id,
            scoping.site_filter(principal, Participant.study_id, Participant.site_id),
        )
    )


def list_for_study(
    session: Session,
    *,
    principal: StaffPrincipal,
    study_id: uuid.UUID,
    params: PageParams,
    grade: int | None = None,
    serious: bool | None = None,
    related: bool | None = None,
) -> tuple[list[AdverseEventRow], str | None]:
    """The study's adverse events, newest onset first, one page at a time."""
    statement = _current(select(AdverseEventVersion), study_id=study_id, principal=principal)
    if grade is not None:
        statement = statement.where(col(AdverseEventVersion.grade) == grade)
    if serious is not None:
        statement = statement.where(col(AdverseEventVersion.serious).is_(serious))
    if related is not None:
        statement = statement.where(_RELATED if related else sa.not_(_RELATED))
    versions, next_cursor = paginate(
        session,
        statement,
        order_by=[AdverseEventVersion.onset_date, AdverseEventVersion.adverse_event_id],  # type: ignore[list-item]
        params=params,
        scope=f"adverse-events:{study_id}",
        descending=True,
    )
    ids = {v.participant_id for v in versions}
    who = {
        pid: (code, site)
        for pid, code, site in session.exec(
            select(Participant.id, Participant.subject_code, Participant.site_id).where(
                col(Participant.id).in_(ids)
            )
        ).all()
    }
    rows = [
        AdverseEventRow(
            id=v.adverse_event_id,
            participant_id=v.participant_id,
            subject_code=who[v.participant_id][0],
            site_id=who[v.participant_id][1],
            version=v.version,
            term=BY_MEDDRA[v.meddra_code].code,
            ctcae_term=v.ctcae_term,
            meddra_code=v.meddra_code,
            grade=v.grade,
            relatedness=v.relatedness,
            related=v.relatedness in RELATED,
            serious=v.serious,
            seriousness_criteria=v.seriousness_criteria,
            onset_date=v.onset_date,
            resolution_date=v.resolution_date,
            outcome=v.outcome,
        )
        for v in versions
    ]
    return rows, next_cursor


def _count(condition: Any) -> Any:
    return sa.func.sum(sa.case((condition, 1), else_=0))


def _incidence(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _row(
    per_participant: list[tuple[int, int, int, int]],
    events_by_grade: Counter[int],
    grades: Iterable[int],
    denominator: int,
) -> dict[str, Any]:
    """One incidence row from (max grade, events, related, serious) per participant."""
    by_max = Counter(max_grade for max_grade, _, _, _ in per_participant)
    participants = len(per_participant)
    return {
        "participants": participants,
        "incidence": _incidence(participants, denominator),
        "events": sum(e for _, e, _, _ in per_participant),
        "related_participants": sum(1 for _, _, r, _ in per_participant if r),
        "related_events": sum(r for _, _, r, _ in per_participant),
        "serious_participants": sum(1 for _, _, _, s in per_participant if s),
        "serious_events": sum(s for _, _, _, s in per_participant),
        "by_max_grade": [
            GradeCount(
                grade=g,
                participants=by_max[g],
                incidence=_incidence(by_max[g], denominator),
                events=events_by_grade[g],
            )
            for g in grades
        ],
    }


def summary(
    session: Session, *, principal: StaffPrincipal, study_id: uuid.UUID
) -> AdverseEventSummary:
    """Incidence by CTCAE term and maximum grade, with treatment-related and serious counts."""
    denominator = session.exec(
        select(sa.func.count())
        .select_from(Participant)
        .where(
            col(Participant.study_id) == study_id,
            scoping.site_filter(principal, Participant.study_id, Participant.site_id),
        )
    ).one()
    per_term = session.execute(
        _current(
            sa.select(
                col(AdverseEvent.participant_id),
                col(AdverseEventVersion.meddra_code),
                sa.func.max(AdverseEventVersion.grade),
                sa.func.count(),
                _count(_RELATED),
                _count(col(AdverseEventVersion.serious).is_(True)),
            ),
            study_id=study_id,
            principal=principal,
        ).group_by(col(AdverseEvent.participant_id), col(AdverseEventVersion.meddra_code))
    ).all()
    by_grade = session.execute(
        _current(
            sa.select(
                col(AdverseEventVersion.meddra_code),
                col(AdverseEventVersion.grade),
                sa.func.count(),
            ),
            study_id=study_id,
            principal=principal,
        ).group_by(col(AdverseEventVersion.meddra_code), col(AdverseEventVersion.grade))
    ).all()

    term_events: dict[str, Counter[int]] = defaultdict(Counter)
    all_events: Counter[int] = Counter()
    for meddra, grade, events in by_grade:
        term_events[meddra][grade] += events
        all_events[grade] += events
    term_rows: dict[str, list[tuple[int, int, int, int]]] = defaultdict(list)
    overall: dict[uuid.UUID, list[int]] = {}
    for pid, meddra, max_grade, events, related, serious in per_term:
        term_rows[meddra].append((max_grade, events, related, serious))
        acc = overall.setdefault(pid, [0, 0, 0, 0])
        acc[0] = max(acc[0], max_grade)
        acc[1] += events
        acc[2] += related
        acc[3] += serious
    terms = [
        TermIncidence(
            term=t.code,
            ctcae_term=t.term,
            meddra_code=t.meddra_code,
            **_row(term_rows[t.meddra_code], term_events[t.meddra_code], t.grades, denominator),
        )
        for t in TERMS
        if t.meddra_code in term_rows
    ]
    any_event = IncidenceRow(
        **_row(
            [(g, e, r, s) for g, e, r, s in overall.values()], all_events, range(1, 6), denominator
        )
    )
    return AdverseEventSummary(
        study_id=study_id,
        ctcae_version=CTCAE_VERSION,
        participants=denominator,
        any_event=any_event,
        terms=terms,
        notes=NOTES,
    )


# --- the study outcomes' ``adverse_events`` section ----------------------------------------


def _outcome_section(session: Session, study: Study, principal: StaffPrincipal) -> dict[str, Any]:
    return summary(session, principal=principal, study_id=study.id).model_dump(mode="json")


def _share(term: str, measure: str, count: int, n: int) -> dict[str, Any]:
    return {
        "instrument": "adverse_events",
        "term": term,
        "measure": measure,
        "n": n,
        "count": count,
        "proportion": _incidence(count, n),
    }


def _csv_rows(section: dict[str, Any]) -> Iterable[dict[str, Any]]:
    """CSV rows (``instrument`` adverse_events): per term (``any`` for all) the participants with
    an event, with a treatment-related one, with a serious one, and by maximum grade (``n`` the
    denominator, ``count``, ``proportion``), and the event count."""
    n = section["participants"]
    for term, row in [("any", section["any_event"]), *((t["term"], t) for t in section["terms"])]:
        yield _share(term, "participants_with_event", row["participants"], n)
        yield _share(term, "participants_with_related_event", row["related_participants"], n)
        yield _share(term, "participants_with_serious_event", row["serious_participants"], n)
        yield {
            "instrument": "adverse_events",
            "term": term,
            "measure": "events",
            "count": row["events"],
        }
        for g in row["by_max_grade"]:
            yield {
                **_share(term, "participants_by_max_grade", g["participants"], n),
                "grade": g["grade"],
            }


outcomes.OUTCOME_SECTIONS["adverse_events"] = outcomes.OutcomeSection(
    build=_outcome_section, csv_rows=_csv_rows
)
