"""Enrolment, updates with a reason, withdrawal. Nothing is ever deleted."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlmodel import Session, col, select

from app.audit import service as audit
from app.audit.service import Actor
from app.auth import scoping
from app.auth.models import ActivationCode, RefreshToken
from app.auth.principal import StaffPrincipal
from app.core.errors import Conflict, Forbidden, NotFound, Unprocessable
from app.core.models import utcnow
from app.core.pagination import PageParams, paginate
from app.core.time import today_in
from app.participants import activation
from app.participants.models import Participant
from app.participants.schemas import ParticipantCreate, ParticipantPublic, ParticipantUpdate
from app.studies import service as studies_service
from app.studies.models import ProtocolVersion, Study

#: Called with (session, participant, actor, reason) after day 0 is set or moved. Lower domains
#: cannot import the visit schedule, so it registers itself here (app.visits.service).
Day0Listener = Callable[[Session, Participant, Actor, str | None], None]
DAY0_LISTENERS: list[Day0Listener] = []


def day0_changed(
    session: Session, *, participant: Participant, actor: Actor, reason: str | None
) -> None:
    for listener in DAY0_LISTENERS:
        listener(session, participant, actor, reason)


#: Called with (session, participant, actor, reason) in the withdrawal's transaction (the visit
#: schedule closes the participant's pending visits, app.visits.service).
WithdrawalListener = Callable[[Session, Participant, Actor, str], None]
WITHDRAWAL_LISTENERS: list[WithdrawalListener] = []


AUDITED_FIELDS = (
    "subject_code",
    "site_id",
    "time_zone",
    "status",
    "enrolled_date",
    "day0_date",
    "dose_level",
    "protocol_version_id",
    "withdrawn_at",
    "withdrawal_reason",
)


def snapshot(participant: Participant) -> dict[str, Any]:
    return {name: getattr(participant, name) for name in AUDITED_FIELDS}


def _check_dose_level(definition_levels: list[str], dose_level: str | None) -> None:
    if dose_level is None:
        return
    if dose_level not in definition_levels:
        allowed = ", ".join(definition_levels) or "none (this protocol has no dose levels)"
        raise Unprocessable(
            f"dose_level must be one of the protocol's levels: {allowed}",
            field=("body", "dose_level"),
            rule="protocol_dose_level",
        )


def _protocol_version_number(session: Session, participant: Participant) -> int:
    version = session.get(ProtocolVersion, participant.protocol_version_id)
    assert version is not None
    return version.version


def enrol(
    session: Session, *, study: Study, body: ParticipantCreate, actor: Actor
) -> tuple[Participant, str, Any]:
    site = studies_service.get_site(session, study_id=study.id, site_id=body.site_id)
    version = studies_service.current_protocol(session, study=study)
    definition = studies_service.protocol_definition(version)
    _check_dose_level([d.code for d in definition.dose_levels], body.dose_level)
    enrolled = body.enrolled_on or today_in(body.time_zone)
    if enrolled > today_in(body.time_zone) + timedelta(days=1):
        raise Unprocessable(
            "enrolled_on cannot be in the future", field=("body", "enrolled_on"), rule="not_future"
        )
    existing = session.exec(
        select(Participant).where(
            Participant.study_id == study.id, Participant.subject_code == body.subject_code
        )
    ).first()
    if existing is not None:
        raise Conflict(f"Subject code {body.subject_code} is already used in this study")
    participant = Participant(
        study_id=study.id,
        site_id=site.id,
        protocol_version_id=version.id,
        subject_code=body.subject_code,
        time_zone=body.time_zone,
        status=body.status,
        enrolled_date=enrolled,
        day0_date=body.day0_date,
        dose_level=body.dose_level,
    )
    session.add(participant)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="participant.enrol",
        entity_type="participant",
        entity_id=participant.id,
        study_id=study.id,
        participant_id=participant.id,
        after=snapshot(participant),
    )
    if participant.day0_date is not None:
        day0_changed(session, participant=participant, actor=actor, reason="Enrolled with day 0")
    code, expires_at = activation.issue_code(session, participant=participant, actor=actor)
    return participant, code, expires_at


def get_for_staff(
    session: Session,
    *,
    principal: StaffPrincipal,
    participant_id: uuid.UUID,
    permission: str = "participant.read",
) -> Participant:
    """The participant if inside the caller's sites (else 404) and permitted (else 403)."""
    participant = session.get(Participant, participant_id)
    if participant is None or not principal.in_scope(participant.study_id, participant.site_id):
        raise NotFound("No such participant")
    if not principal.can(permission, participant.study_id, participant.site_id):
        raise Forbidden(f"Your role does not allow {permission} for this participant")
    return participant


def list_for_staff(
    session: Session,
    *,
    principal: StaffPrincipal,
    study_id: uuid.UUID,
    site_id: uuid.UUID | None,
    status: str | None,
    params: PageParams,
) -> tuple[list[Participant], str | None]:
    stmt = select(Participant).where(
        scoping.in_site_scope(principal, Participant.study_id, Participant.site_id, study_id)
    )
    if site_id is not None:
        stmt = stmt.where(Participant.site_id == site_id)
    if status is not None:
        stmt = stmt.where(Participant.status == status)
    return paginate(
        session,
        stmt,
        order_by=[Participant.subject_code, Participant.id],  # type: ignore[list-item]
        params=params,
        scope=f"participants:{study_id}",
    )


def update(
    session: Session, *, participant: Participant, body: ParticipantUpdate, actor: Actor
) -> Participant:
    if participant.status == "withdrawn":
        raise Conflict("A withdrawn participant's record cannot be changed")
    changes = body.model_dump(exclude_unset=True, exclude={"reason"})
    for required in ("site_id", "time_zone", "status"):
        if required in changes and changes[required] is None:
            raise Unprocessable(
                f"{required} cannot be cleared", field=("body", required), rule="not_null"
            )
    before = snapshot(participant)
    if "site_id" in changes:
        studies_service.get_site(session, study_id=participant.study_id, site_id=changes["site_id"])
    if "dose_level" in changes:
        version = session.get(ProtocolVersion, participant.protocol_version_id)
        assert version is not None
        definition = studies_service.protocol_definition(version)
        _check_dose_level([d.code for d in definition.dose_levels], changes["dose_level"])
    for name, value in changes.items():
        setattr(participant, name, value)
    after = snapshot(participant)
    if before == after:
        return participant
    participant.updated_at = utcnow()
    session.add(participant)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="participant.update",
        entity_type="participant",
        entity_id=participant.id,
        study_id=participant.study_id,
        participant_id=participant.id,
        before=before,
        after=after,
        reason=body.reason,
    )
    if before["day0_date"] != after["day0_date"]:
        day0_changed(session, participant=participant, actor=actor, reason=body.reason)
    return participant


def withdraw(
    session: Session, *, participant: Participant, reason: str, actor: Actor
) -> Participant:
    if participant.status == "withdrawn":
        raise Conflict("The participant is already withdrawn")
    before = snapshot(participant)
    now = utcnow()
    participant.status = "withdrawn"
    participant.withdrawn_at = now
    participant.withdrawal_reason = reason
    participant.updated_at = now
    session.add(participant)
    _revoke_credentials(session, participant_id=participant.id)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="participant.withdraw",
        entity_type="participant",
        entity_id=participant.id,
        study_id=participant.study_id,
        participant_id=participant.id,
        before=before,
        after=snapshot(participant),
        reason=reason,
    )
    for listener in WITHDRAWAL_LISTENERS:
        listener(session, participant, actor, reason)
    return participant


def _revoke_credentials(session: Session, *, participant_id: uuid.UUID) -> None:
    now = utcnow()
    for code in session.exec(
        select(ActivationCode).where(
            ActivationCode.participant_id == participant_id,
            col(ActivationCode.used_at).is_(None),
            col(ActivationCode.revoked_at).is_(None),
        )
    ):
        code.revoked_at = now
        session.add(code)
    for token in session.exec(
        select(RefreshToken).where(
            RefreshToken.participant_id == participant_id, col(RefreshToken.revoked_at).is_(None)
        )
    ):
        token.revoked_at = now
        session.add(token)


def to_public(
    session: Session, participant: Participant, version_numbers: dict[uuid.UUID, int] | None = None
) -> ParticipantPublic:
    version = (version_numbers or {}).get(participant.protocol_version_id)
    if version is None:
        version = _protocol_version_number(session, participant)
    return ParticipantPublic(
        id=participant.id,
        study_id=participant.study_id,
        site_id=participant.site_id,
        subject_code=participant.subject_code,
        time_zone=participant.time_zone,
        status=participant.status,
        enrolled_on=participant.enrolled_date,
        day0_date=participant.day0_date,
        dose_level=participant.dose_level,
        protocol_version=version,
        activated=participant.activated_at is not None,
        created_at=participant.created_at,
        updated_at=participant.updated_at,
        withdrawn_at=participant.withdrawn_at,
        withdrawal_reason=participant.withdrawal_reason,
    )


def version_numbers(session: Session, *, study_id: uuid.UUID) -> dict[uuid.UUID, int]:
    rows = session.exec(
        select(ProtocolVersion.id, ProtocolVersion.version).where(
            ProtocolVersion.study_id == study_id
        )
    ).all()
    return dict(rows)
