"""Diary routes: capture and offline sync (app), review and correction (portal)."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import JSONResponse
from sqlmodel import Session, col, select

from app.audit.service import Actor
from app.auth import scoping
from app.auth.deps import CurrentStaff, ParticipantClaims
from app.core.db import SessionDep
from app.core.errors import NotFound, Unprocessable
from app.core.pagination import Page, PageParams, page_params, paginate
from app.core.responses import errors
from app.core.routing import StrictRoute
from app.core.schemas import IsoDate
from app.diary import queries, reference, service
from app.diary.capture import CaptureDep
from app.diary.models import DiaryConflict
from app.diary.schemas import (
    Adherence,
    ChangeOut,
    ChangesPage,
    ConflictOut,
    ConflictResolution,
    CorrectionIn,
    DailyStepsOut,
    EntryIn,
    EntryKind,
    EntryOut,
    EntryVersionOut,
    SyncRequest,
    SyncResponse,
)
from app.participants import service as participants_service
from app.participants.deps import (
    ClinicalParticipant,
    CurrentParticipant,
    ValidParticipant,
)
from app.participants.models import Participant
from app.studies import service as studies_service

app_router = APIRouter(route_class=StrictRoute, tags=["diary"])
#: Capture and sync: async routes that authenticate the participant inside their unit of work.
app_write_router = APIRouter(route_class=StrictRoute, tags=["diary"])
portal_router = APIRouter(route_class=StrictRoute, tags=["diary"])
Pagination = Annotated[PageParams, Depends(page_params)]
KindFilter = Annotated[EntryKind | None, Query(description="Only entries of this kind.")]
FromFilter = Annotated[IsoDate | None, Query(alias="from", description="First diary_date (incl.).")]
ToFilter = Annotated[IsoDate | None, Query(description="Last diary_date (inclusive).")]
IDEMPOTENCY_TTL = timedelta(hours=24)


def _check_range(date_from: date | None, date_to: date | None, max_days: int | None = None) -> None:
    if date_from and date_to and date_to < date_from:
        raise Unprocessable("`to` is before `from`", field=("query", "to"), rule="date_range")
    if max_days and date_from and date_to and (date_to - date_from).days >= max_days:
        raise Unprocessable(
            f"ask for at most {max_days} days at a time", field=("query", "to"), rule="date_range"
        )


def _correct(
    session: Session,
    participant: Participant,
    entry_id: uuid.UUID,
    body: CorrectionIn,
    actor: Actor,
    *,
    by_participant: bool,
) -> EntryOut:
    entry = queries.get_entry(session, participant_id=participant.id, client_entry_id=entry_id)
    version = service.correct(
        session,
        entry=entry,
        participant=participant,
        raw_data=body.data,
        reason=body.reason,
        actor=actor,
        by_participant=by_participant,
    )
    return queries.to_out(entry, version)


# --- app --------------------------------------------------------------------------------


def _participant_actor(participant: Participant) -> Actor:
    return Actor(type="participant", id=str(participant.id), role="participant")


def _ingestor(session: Session, participant: Participant) -> service.Ingestor:
    actor = _participant_actor(participant)
    return service.Ingestor(
        session=session,
        participant=participant,
        protocol=service.protocol_of(session, participant),
        actor=actor,
    )


def _entry_body(result: service.IngestResult, session: Session) -> dict[str, Any]:
    assert result.entry is not None
    version = result.version or queries.current_version(session, result.entry)
    return queries.to_out(result.entry, version).model_dump(mode="json")


@app_write_router.post(
    "/diary/entries",
    status_code=201,
    response_model=EntryOut,
    responses={
        200: {"model": EntryOut, "description": "The same entry again (duplicate)"},
        **errors(409),
    },
)
async def create_entry(
    capture: CaptureDep,
    principal: ParticipantClaims,
    body: EntryIn,
    idempotency_key: Annotated[
        str | None,
        Header(
            max_length=255,
            pattern=r"^[\x21-\x7e]+$",
            description="Optional (IETF Idempotency-Key draft): a replay returns the first "
            "response; the same key with another payload is a 422; a concurrent duplicate a 409.",
        ),
    ] = None,
) -> JSONResponse:
    """Record one diary entry.

    201 with the stored entry; the exact same entry again is 200 with the same body; the same
    `id` with different content is 409 and the submission is kept for data management.
    """
    # The parsed values, not a JSON dump: a dump turns an overflowed 1e999 into null.
    return await capture.entry(principal, body.model_dump(), idempotency_key)


@app_write_router.post("/diary/sync", response_model=SyncResponse, responses=errors(413))
async def sync_entries(
    capture: CaptureDep, principal: ParticipantClaims, body: SyncRequest
) -> JSONResponse:
    """Sync up to 500 entries of any kinds at once.

    Results come in request order: `created`, `duplicate` (same id and content), `conflict`
    (same id, different content; kept for review) or `invalid` (with field errors). One bad
    entry never rejects the others; the batch commits as a whole, or on a server fault not at all.
    """
    return await capture.sync(principal, body.entries)


@app_router.get("/diary/entries", response_model=Page[EntryOut], responses=errors(400))
def list_own_entries(
    session: SessionDep,
    participant: CurrentParticipant,
    page: Pagination,
    kind: KindFilter = None,
    from_: FromFilter = None,
    to: ToFilter = None,
) -> Page[EntryOut]:
    """The participant's own entries (newest versions), by local diary date."""
    _check_range(from_, to)
    items, cursor = queries.list_entries(
        session, participant_id=participant.id, kind=kind, date_from=from_, date_to=to, params=page
    )
    return Page(items=items, next_cursor=cursor)


@app_router.get("/diary/entries/{entry_id}", response_model=EntryOut, responses=errors(404))
def get_own_entry(
    session: SessionDep, participant: CurrentParticipant, entry_id: uuid.UUID
) -> EntryOut:
    """One of the participant's entries, newest version."""
    entry = queries.get_entry(session, participant_id=participant.id, client_entry_id=entry_id)
    return queries.to_out(entry, queries.current_version(session, entry))


@app_router.post(
    "/diary/entries/{entry_id}/corrections",
    status_code=201,
    response_model=EntryOut,
    responses=errors(404, 409),
)
def correct_own_entry(
    session: SessionDep, participant: CurrentParticipant, entry_id: uuid.UUID, body: CorrectionIn
) -> EntryOut:
    """Correct an own entry within the protocol's edit window; a reason is required."""
    return _correct(
        session, participant, entry_id, body, _participant_actor(participant), by_participant=True
    )


@app_router.get(
    "/diary/entries/{entry_id}/versions",
    response_model=list[EntryVersionOut],
    responses=errors(404),
)
def own_entry_versions(
    session: SessionDep, participant: CurrentParticipant, entry_id: uuid.UUID
) -> list[EntryVersionOut]:
    """Every version of an own entry, oldest first, each with its reason."""
    return queries.history(session, participant_id=participant.id, client_entry_id=entry_id)


@app_router.get("/diary/changes", response_model=ChangesPage, responses=errors(400))
def own_changes(
    session: SessionDep, participant: CurrentParticipant, page: Pagination
) -> ChangesPage:
    """Every created or corrected entry since the cursor, in commit order (for other devices).

    Page with `next_cursor` until it is null, then keep `resume_cursor` and send it as `cursor`
    later: a change is never skipped or repeated, even while entries are being written.
    """
    result = queries.changes(session, participant_id=participant.id, params=page)
    return ChangesPage(
        items=[ChangeOut(entry=e, change=c) for e, c in result.items],
        next_cursor=result.next_cursor,
        resume_cursor=result.resume_cursor,
    )


@app_router.get("/vocabularies/symptoms", response_model=reference.SymptomVocabulary)
def symptom_vocabulary() -> reference.SymptomVocabulary:
    """The symptom codes a `symptoms` entry may use, with labels, CTCAE terms and MedDRA codes."""
    return reference.symptom_vocabulary()


@app_router.get("/instruments/mg_adl", response_model=reference.InstrumentOut)
def mg_adl_instrument(
    session: SessionDep, participant: CurrentParticipant
) -> reference.InstrumentOut:
    """The MG-ADL questions with their item keys and answer anchors, and the recall period of
    the participant's protocol."""
    protocol = service.protocol_of(session, participant)
    return reference.mg_adl_instrument(protocol.diary.recall_period_days)


@app_router.get("/formulary", response_model=reference.Formulary)
def medication_formulary() -> reference.Formulary:
    """Medications the diary knows (MG treatments and study drugs), with units and routes.

    A `medication_dose` may name one of these by code or name, or any other medication as text.
    """
    return reference.formulary()


@app_router.get("/steps/daily", response_model=list[DailyStepsOut], responses=errors(404))
def own_daily_steps(
    session: SessionDep,
    participant: CurrentParticipant,
    from_: Annotated[date, Query(alias="from")],
    to: Annotated[date, Query()],
) -> list[DailyStepsOut]:
    """One step count per local day: the newest total per source, then the protocol's preferred
    source, else the largest."""
    _check_range(from_, to, max_days=366)
    return _steps_out(
        queries.daily_steps(session, participant=participant, date_from=from_, date_to=to)
    )


def _steps_out(rows: list[queries.DailySteps]) -> list[DailyStepsOut]:
    return [
        DailyStepsOut(date=r.date, count=r.count, source=r.source, sources=r.sources) for r in rows
    ]


# --- portal -----------------------------------------------------------------------------


@portal_router.get(
    "/participants/{participant_id}/diary/entries",
    response_model=Page[EntryOut],
    responses=errors(400, 404),
)
def list_participant_entries(
    session: SessionDep,
    participant: ValidParticipant,
    page: Pagination,
    kind: KindFilter = None,
    from_: FromFilter = None,
    to: ToFilter = None,
) -> Page[EntryOut]:
    """A participant's diary (newest versions), by kind and local date range."""
    _check_range(from_, to)
    items, cursor = queries.list_entries(
        session, participant_id=participant.id, kind=kind, date_from=from_, date_to=to, params=page
    )
    return Page(items=items, next_cursor=cursor)


@portal_router.post(
    "/participants/{participant_id}/diary/entries/{entry_id}/corrections",
    status_code=201,
    response_model=EntryOut,
    responses=errors(404, 409),
)
def correct_participant_entry(
    session: SessionDep,
    staff: CurrentStaff,
    participant: ClinicalParticipant,
    entry_id: uuid.UUID,
    body: CorrectionIn,
) -> EntryOut:
    """Correct a participant's entry (investigators, at any time, with a reason)."""
    return _correct(
        session,
        participant,
        entry_id,
        body,
        staff.actor(participant.study_id),
        by_participant=False,
    )


@portal_router.get(
    "/participants/{participant_id}/diary/entries/{entry_id}/versions",
    response_model=list[EntryVersionOut],
    responses=errors(404),
)
def participant_entry_versions(
    session: SessionDep, participant: ValidParticipant, entry_id: uuid.UUID
) -> list[EntryVersionOut]:
    """Every version of a participant's entry, oldest first, with who corrected it and why."""
    return queries.history(session, participant_id=participant.id, client_entry_id=entry_id)


@portal_router.get(
    "/participants/{participant_id}/diary/adherence",
    response_model=Adherence,
    responses=errors(404),
)
def participant_adherence(session: SessionDep, participant: ValidParticipant) -> Adherence:
    """Diary adherence: periods of the protocol's cadence with an entry / periods so far."""
    return queries.adherence(session, participant=participant)


@portal_router.get(
    "/participants/{participant_id}/steps/daily",
    response_model=list[DailyStepsOut],
    responses=errors(404),
)
def participant_daily_steps(
    session: SessionDep,
    participant: ValidParticipant,
    from_: Annotated[date, Query(alias="from")],
    to: Annotated[date, Query()],
) -> list[DailyStepsOut]:
    """A participant's step count per local day (newest total per source; preferred source,
    else the largest)."""
    _check_range(from_, to, max_days=366)
    return _steps_out(
        queries.daily_steps(session, participant=participant, date_from=from_, date_to=to)
    )


def _conflict_out(conflict: DiaryConflict) -> ConflictOut:
    return ConflictOut(
        id=conflict.id,
        participant_id=conflict.participant_id,
        entry_id=conflict.client_entry_id,
        payload=conflict.payload,
        received_at=conflict.received_at,
        status=conflict.status,  # type: ignore[arg-type]
        resolved_at=conflict.resolved_at,
        resolution=conflict.resolution,
    )


@portal_router.get(
    "/studies/{study_id}/diary-conflicts",
    response_model=Page[ConflictOut],
    responses=errors(400, 404),
)
def list_diary_conflicts(
    session: SessionDep,
    staff: CurrentStaff,
    study_id: uuid.UUID,
    page: Pagination,
    status: Annotated[Literal["open", "resolved"] | None, Query()] = "open",
) -> Page[ConflictOut]:
    """Submissions that reused an entry id with different content, for data management review
    (the caller's sites only)."""
    study = studies_service.get_study_for(
        session, principal=staff, study_id=study_id, permission="participant.read"
    )
    stmt = (
        select(DiaryConflict)
        .join(Participant, col(Participant.id) == DiaryConflict.participant_id)
        .where(
            DiaryConflict.study_id == study.id,
            scoping.site_filter(staff, Participant.study_id, Participant.site_id),
        )
    )
    if status:
        stmt = stmt.where(DiaryConflict.status == status)
    rows, cursor = paginate(
        session,
        stmt,
        order_by=[DiaryConflict.received_at, DiaryConflict.id],  # type: ignore[list-item]
        params=page,
        scope=f"conflicts:{study.id}:{status}",
    )
    return Page(items=[_conflict_out(c) for c in rows], next_cursor=cursor)


@portal_router.post(
    "/diary-conflicts/{conflict_id}/resolve", response_model=ConflictOut, responses=errors(404, 409)
)
def resolve_diary_conflict(
    session: SessionDep, staff: CurrentStaff, conflict_id: uuid.UUID, body: ConflictResolution
) -> ConflictOut:
    """Close a reviewed conflict with what was done (investigators of the participant's site)."""
    conflict = session.get(DiaryConflict, conflict_id)
    if conflict is None:
        raise NotFound("No such conflict")
    participant = participants_service.get_for_staff(
        session,
        principal=staff,
        participant_id=conflict.participant_id,
        permission="clinical.write",
    )
    service.resolve_conflict(
        session, conflict=conflict, reason=body.reason, actor=staff.actor(participant.study_id)
    )
    return _conflict_out(conflict)
