"""Records corrected only by immutable versions.

A head row (``current_version``, ``participant_id``, ``study_id``) points at its newest version;
version rows are append-only (database triggers refuse UPDATE and DELETE). Medication lines,
study-drug administrations, clinic assessments and lab results all follow this shape; this module
holds the one implementation of creating, amending and reading them, with their audit events.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from sqlmodel import Session, col, select

from app.audit import service as audit
from app.audit.service import Actor
from app.core.errors import Conflict, NotFound


class Head(Protocol):
    id: uuid.UUID
    participant_id: uuid.UUID
    study_id: uuid.UUID
    current_version: int


class Version(Protocol):
    version: int


H = TypeVar("H", bound=Head)
V = TypeVar("V", bound=Version)


def _column(model: type[Any], name: str) -> Any:
    """A mapped class's column (``col`` for a name known only at run time)."""
    return col(getattr(model, name))


@dataclass(frozen=True)
class VersionedKind(Generic[H, V]):
    head: type[H]
    version: type[V]
    #: The version table's column that points at the head.
    head_key: str
    entity_type: str
    #: The fields an audit event compares (before and after).
    audited: tuple[str, ...]
    not_found: str

    def _key(self) -> Any:
        return _column(self.version, self.head_key)

    def snapshot(self, row: V) -> dict[str, Any]:
        return {name: getattr(row, name) for name in self.audited}

    def get(self, session: Session, head_id: uuid.UUID) -> H:
        head = session.get(self.head, head_id)
        if head is None:
            raise NotFound(self.not_found)
        return head

    def current(self, session: Session, head: H) -> V:
        return session.exec(
            select(self.version).where(
                self._key() == head.id,
                _column(self.version, "version") == head.current_version,
            )
        ).one()

    def history(self, session: Session, head: H) -> list[V]:
        return list(
            session.exec(
                select(self.version)
                .where(self._key() == head.id)
                .order_by(_column(self.version, "version"))
            ).all()
        )

    def current_rows(
        self,
        session: Session,
        *,
        participant_id: uuid.UUID,
        order_by: Sequence[Any],
        where: Sequence[Any] = (),
    ) -> list[tuple[H, V]]:
        """Every head of the participant with its newest version, in one query."""
        head_id = _column(self.head, "id")
        stmt = (
            select(self.head, self.version)
            .join(self.version, self._key() == head_id)
            .where(
                _column(self.head, "participant_id") == participant_id,
                _column(self.version, "version") == _column(self.head, "current_version"),
                *where,
            )
            .order_by(*order_by, head_id)
        )
        return [(h, v) for h, v in session.exec(stmt).all()]

    def create(
        self,
        session: Session,
        *,
        head: H,
        first: V,
        actor: Actor,
        extra: dict[str, Any] | None = None,
    ) -> tuple[H, V]:
        """Store a new head with its first version, audited as ``<entity>.create``."""
        session.add(head)
        session.flush()
        setattr(first, self.head_key, head.id)
        session.add(first)
        session.flush()
        audit.record(
            session,
            actor=actor,
            action=f"{self.entity_type}.create",
            entity_type=self.entity_type,
            entity_id=head.id,
            study_id=head.study_id,
            participant_id=head.participant_id,
            after={**(extra or {}), **self.snapshot(first)},
            reason=getattr(first, "reason", None),
        )
        return head, first

    def amend(
        self,
        session: Session,
        *,
        head: H,
        new: V,
        actor: Actor,
        reason: str,
        action: str = "correct",
    ) -> V:
        """Append ``new`` as the next version; an identical one is a 409 and nothing is stored."""
        current = self.current(session, head)
        before, after = self.snapshot(current), self.snapshot(new)
        if before == after:
            raise Conflict("The change is identical to the current version")
        setattr(new, self.head_key, head.id)
        new.version = current.version + 1
        session.add(new)
        head.current_version = new.version
        session.add(head)
        session.flush()
        audit.record(
            session,
            actor=actor,
            action=f"{self.entity_type}.{action}",
            entity_type=self.entity_type,
            entity_id=head.id,
            study_id=head.study_id,
            participant_id=head.participant_id,
            reason=reason,
            before=before,
            after=after,
        )
        return new
