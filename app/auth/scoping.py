"""Query filters that limit portal reads to the caller's studies and sites.

Every investigator, monitor and admin read of study or participant data goes through these, so an
object outside the caller's scope is simply not found (404), exactly like one that does not exist.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_, true

from app.auth.principal import StaffPrincipal


def study_filter(principal: StaffPrincipal, study_col: Any) -> ColumnElement[bool]:
    if principal.is_global_admin:
        return true()
    ids = {m.study_id for m in principal.memberships if m.study_id is not None}
    return study_col.in_(ids) if ids else false()


def site_filter(
    principal: StaffPrincipal, study_col: Any, site_col: Any, *, roles: frozenset[str] | None = None
) -> ColumnElement[bool]:
    """Rows whose (study, site) one of the caller's memberships covers (optionally by role)."""
    memberships = [m for m in principal.memberships if roles is None or m.role in roles]
    if any(m.study_id is None for m in memberships):
        return true()
    whole_studies: set[uuid.UUID] = set()
    sites: set[uuid.UUID] = set()
    for m in memberships:
        if m.study_id is None:
            continue
        if m.site_id is None:
            whole_studies.add(m.study_id)
        else:
            sites.add(m.site_id)
    clauses: list[ColumnElement[bool]] = []
    if whole_studies:
        clauses.append(study_col.in_(whole_studies))
    if sites:
        clauses.append(site_col.in_(sites))
    return or_(*clauses) if clauses else false()


def in_site_scope(
    principal: StaffPrincipal, study_col: Any, site_col: Any, study_id: uuid.UUID | None = None
) -> ColumnElement[bool]:
    clause = site_filter(principal, study_col, site_col)
    return and_(clause, study_col == study_id) if study_id is not None else clause
