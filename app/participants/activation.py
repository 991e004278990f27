"""Onboarding: one-time activation codes, and rotating refresh tokens for the app.

Codes are short and typable (Crockford base32, 10 characters, about 50 bits), valid for a set
number of days, used once, and stored only as SHA-256. Refresh tokens rotate on every use; a
spent one presented again means it leaked, so its whole family is revoked.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import update
from sqlmodel import Session, col, select

from app.audit import service as audit
from app.audit.service import Actor
from app.auth.models import ActivationCode, RefreshToken
from app.auth.tokens import APP_AUDIENCE, KeyRing, issue_token
from app.core.config import Settings, get_settings
from app.core.models import utcnow
from app.participants.models import Participant

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
_CODE_LENGTH = 10
ACTIVE_STATUSES = ("screening", "enrolled")


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def normalize_code(code: str) -> str:
    """What the participant typed, read the Crockford way: case, dashes, O/0 and I/L/1 forgiven."""
    cleaned = code.upper().replace("-", "").replace(" ", "")
    return cleaned.translate(str.maketrans("OIL", "011"))


def format_code(raw: str) -> str:
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"


def issue_code(session: Session, *, participant: Participant, actor: Actor) -> tuple[str, datetime]:
    """Revoke any unused code and issue a new one; returns (code, expiry)."""
    now = utcnow()
    for old in session.exec(
        select(ActivationCode).where(
            ActivationCode.participant_id == participant.id,
            col(ActivationCode.used_at).is_(None),
            col(ActivationCode.revoked_at).is_(None),
        )
    ):
        old.revoked_at = now
        session.add(old)
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(_CODE_LENGTH))
    expires_at = now + timedelta(days=get_settings().activation_code_ttl_days)
    code = ActivationCode(
        participant_id=participant.id, code_hash=_sha256(raw), expires_at=expires_at
    )
    session.add(code)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="activation_code.issue",
        entity_type="activation_code",
        entity_id=code.id,
        study_id=participant.study_id,
        participant_id=participant.id,
        after={"expires_at": expires_at},
    )
    return format_code(raw), expires_at


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int
    participant_id: uuid.UUID


def _issue_pair(
    session: Session,
    *,
    participant: Participant,
    family_id: uuid.UUID,
    ring: KeyRing,
    settings: Settings,
) -> IssuedTokens:
    refresh = secrets.token_urlsafe(32)
    session.add(
        RefreshToken(
            family_id=family_id,
            participant_id=participant.id,
            token_hash=_sha256(refresh),
            expires_at=utcnow() + timedelta(seconds=settings.refresh_token_ttl_seconds),
        )
    )
    session.flush()
    access = issue_token(
        ring,
        subject=str(participant.id),
        audience=APP_AUDIENCE,
        ttl_seconds=settings.access_token_ttl_seconds,
        claims={
            "role": "participant",
            "fam": str(family_id),
            "study_id": str(participant.study_id),
        },
    )
    return IssuedTokens(
        access_token=access,
        refresh_token=refresh,
        expires_in=settings.access_token_ttl_seconds,
        participant_id=participant.id,
    )


def activate(
    session: Session, *, code: str, ring: KeyRing, settings: Settings
) -> IssuedTokens | None:
    """Exchange a valid code for tokens; ``None`` when the code is unknown, used or expired."""
    row = session.exec(
        select(ActivationCode).where(ActivationCode.code_hash == _sha256(normalize_code(code)))
    ).first()
    now = utcnow()
    if (
        row is None
        or row.used_at is not None
        or row.revoked_at is not None
        or row.expires_at <= now
    ):
        return None
    participant = session.get(Participant, row.participant_id)
    if participant is None or participant.status not in ACTIVE_STATUSES:
        return None
    # Claim the code with a conditional UPDATE: of two concurrent requests with the same code
    # only one matches (the other waits for its row lock, then sees used_at set).
    if not _claim(session, ActivationCode, row.id, used_at=now):
        return None
    if participant.activated_at is None:
        participant.activated_at = now
        session.add(participant)
    tokens = _issue_pair(
        session, participant=participant, family_id=uuid.uuid4(), ring=ring, settings=settings
    )
    audit.record(
        session,
        actor=Actor(type="participant", id=str(participant.id), role="participant"),
        action="participant.activate",
        entity_type="activation_code",
        entity_id=row.id,
        study_id=participant.study_id,
        participant_id=participant.id,
        before={"used_at": None},
        after={"used_at": now},
    )
    return tokens


@dataclass(frozen=True)
class RefreshOutcome:
    tokens: IssuedTokens | None
    reused: bool = False


def refresh(session: Session, *, token: str, ring: KeyRing, settings: Settings) -> RefreshOutcome:
    """Rotate a refresh token. A spent token presented again revokes its whole family."""
    row = session.exec(
        select(RefreshToken).where(RefreshToken.token_hash == _sha256(token))
    ).first()
    now = utcnow()
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return RefreshOutcome(tokens=None)
    if row.spent_at is None:
        participant = session.get(Participant, row.participant_id)
        if participant is None or participant.status not in ACTIVE_STATUSES:
            return RefreshOutcome(tokens=None)
        # A conditional UPDATE: of two concurrent requests with the same token only one wins;
        # the loser falls through to reuse detection below (the token was presented twice).
        if _claim(session, RefreshToken, row.id, spent_at=now):
            return RefreshOutcome(
                tokens=_issue_pair(
                    session,
                    participant=participant,
                    family_id=row.family_id,
                    ring=ring,
                    settings=settings,
                )
            )
    revoked = 0
    for link in session.exec(
        select(RefreshToken).where(
            RefreshToken.family_id == row.family_id, col(RefreshToken.revoked_at).is_(None)
        )
    ):
        link.revoked_at = now
        session.add(link)
        revoked += 1
    session.flush()
    audit.record(
        session,
        actor=Actor(type="system", id="mgdiary", role="system"),
        action="refresh_token.reuse_detected",
        entity_type="refresh_token_family",
        entity_id=row.family_id,
        participant_id=row.participant_id,
        after={"revoked_links": revoked},
    )
    return RefreshOutcome(tokens=None, reused=True)


def _claim(
    session: Session,
    model: type[ActivationCode] | type[RefreshToken],
    row_id: uuid.UUID,
    **values: datetime,
) -> bool:
    """Set ``values`` on the row only if it is still unused and unrevoked; True if it was."""
    (field,) = values
    result = session.exec(
        update(model)
        .where(
            col(model.id) == row_id,
            col(getattr(model, field)).is_(None),
            col(model.revoked_at).is_(None),
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    claimed = result.rowcount == 1
    row = session.get(model, row_id)
    if row is not None:
        session.expire(row, [field])  # reload what the database now holds on next access
    return claimed


def family_revoked_clause(family_id: uuid.UUID | sa.BindParameter[Any]) -> sa.Exists:
    """True when any link of the refresh-token family has been revoked."""
    return sa.exists().where(
        col(RefreshToken.family_id) == family_id, col(RefreshToken.revoked_at).is_not(None)
    )
