"""Studies and protocol versions. A protocol version in use is never changed: edits add versions."""

from __future__ import annotations

import uuid
from typing import Any

from sqlmodel import Session, col, select

from app.audit import service as audit
from app.audit.service import Actor
from app.auth import scoping
from app.auth.principal import StaffPrincipal
from app.core.errors import Conflict, Forbidden, NotFound
from app.core.pagination import PageParams, paginate
from app.studies.models import ProtocolVersion, Site, Study
from app.studies.protocol import ProtocolDefinition
from app.studies.schemas import SitePublic, StudyDetail, StudyPublic


def _definition_json(definition: ProtocolDefinition) -> dict[str, Any]:
    return definition.model_dump(mode="json")


def _sync_sites(
    session: Session, *, study: Study, definition: ProtocolDefinition, actor: Actor
) -> None:
    existing = {s.code: s for s in sites_of(session, study_id=study.id)}
    for site_def in definition.sites:
        site = existing.get(site_def.code)
        if site is None:
            site = Site(
                study_id=study.id,
                code=site_def.code,
                name=site_def.name,
                time_zone=site_def.time_zone,
            )
            session.add(site)
            session.flush()
            audit.record(
                session,
                actor=actor,
                action="site.create",
                entity_type="site",
                entity_id=site.id,
                study_id=study.id,
                after={"code": site.code, "name": site.name, "time_zone": site.time_zone},
            )
        elif (site.name, site.time_zone) != (site_def.name, site_def.time_zone):
            before = {"name": site.name, "time_zone": site.time_zone}
            site.name, site.time_zone = site_def.name, site_def.time_zone
            session.add(site)
            session.flush()
            audit.record(
                session,
                actor=actor,
                action="site.update",
                entity_type="site",
                entity_id=site.id,
                study_id=study.id,
                before=before,
                after={"name": site.name, "time_zone": site.time_zone},
            )


def create_study(session: Session, *, definition: ProtocolDefinition, actor: Actor) -> Study:
    if (
        definition.registry_id
        and session.exec(select(Study).where(Study.registry_id == definition.registry_id)).first()
    ):
        raise Conflict(f"A study with registry id {definition.registry_id} already exists")
    study = Study(
        registry_id=definition.registry_id,
        title=definition.title,
        time_zone=definition.time_zone,
        created_by=actor.id,
    )
    session.add(study)
    session.flush()
    version = ProtocolVersion(
        study_id=study.id, version=1, definition=_definition_json(definition), created_by=actor.id
    )
    session.add(version)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="study.create",
        entity_type="study",
        entity_id=study.id,
        study_id=study.id,
        after={
            "registry_id": study.registry_id,
            "title": study.title,
            "time_zone": study.time_zone,
            "protocol_version": 1,
        },
    )
    audit.record(
        session,
        actor=actor,
        action="protocol_version.create",
        entity_type="protocol_version",
        entity_id=version.id,
        study_id=study.id,
        after={"version": 1, "definition": version.definition},
    )
    _sync_sites(session, study=study, definition=definition, actor=actor)
    return study


def add_protocol_version(
    session: Session, *, study: Study, definition: ProtocolDefinition, reason: str, actor: Actor
) -> ProtocolVersion:
    if definition.registry_id != study.registry_id:
        raise Conflict("A new protocol version cannot change the study's registry id")
    current = current_protocol(session, study=study)
    new_json = _definition_json(definition)
    if current.definition == new_json:
        raise Conflict("The definition is identical to the current version")
    version = ProtocolVersion(
        study_id=study.id,
        version=current.version + 1,
        definition=new_json,
        reason=reason,
        created_by=actor.id,
    )
    session.add(version)
    before = {
        "title": study.title,
        "time_zone": study.time_zone,
        "protocol_version": study.current_protocol_version,
    }
    study.title, study.time_zone = definition.title, definition.time_zone
    study.current_protocol_version = version.version
    session.add(study)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="protocol_version.create",
        entity_type="protocol_version",
        entity_id=version.id,
        study_id=study.id,
        reason=reason,
        before={"definition": current.definition},
        after={"definition": new_json, "version": version.version},
    )
    audit.record(
        session,
        actor=actor,
        action="study.update",
        entity_type="study",
        entity_id=study.id,
        study_id=study.id,
        reason=reason,
        before=before,
        after={
            "title": study.title,
            "time_zone": study.time_zone,
            "protocol_version": study.current_protocol_version,
        },
    )
    _sync_sites(session, study=study, definition=definition, actor=actor)
    return version


def current_protocol(session: Session, *, study: Study) -> ProtocolVersion:
    version = session.exec(
        select(ProtocolVersion).where(
            ProtocolVersion.study_id == study.id,
            ProtocolVersion.version == study.current_protocol_version,
        )
    ).one()
    return version


def protocol_definition(version: ProtocolVersion) -> ProtocolDefinition:
    return ProtocolDefinition.model_validate(version.definition)


_DEFINITIONS: dict[uuid.UUID, ProtocolDefinition] = {}


def cached_definition(version_id: uuid.UUID) -> ProtocolDefinition | None:
    return _DEFINITIONS.get(version_id)


def remember_definition(version: ProtocolVersion) -> ProtocolDefinition:
    definition = protocol_definition(version)
    if len(_DEFINITIONS) > 1000:
        _DEFINITIONS.clear()
    _DEFINITIONS[version.id] = definition
    return definition


def definition_for_version(session: Session, version_id: uuid.UUID) -> ProtocolDefinition:
    """A protocol version's definition; cached, since a stored version never changes."""
    cached = _DEFINITIONS.get(version_id)
    if cached is None:
        version = session.get(ProtocolVersion, version_id)
        if version is None:
            raise NotFound("No such protocol version")
        cached = remember_definition(version)
    return cached


def sites_of(session: Session, *, study_id: uuid.UUID) -> list[Site]:
    return list(
        session.exec(select(Site).where(Site.study_id == study_id).order_by(col(Site.code))).all()
    )


def get_site(session: Session, *, study_id: uuid.UUID, site_id: uuid.UUID) -> Site:
    site = session.get(Site, site_id)
    if site is None or site.study_id != study_id:
        raise NotFound("No such site in this study")
    return site


def get_study_for(
    session: Session,
    *,
    principal: StaffPrincipal,
    study_id: uuid.UUID,
    permission: str = "study.read",
) -> Study:
    """The study if the caller has it in scope (else 404) and holds ``permission`` (else 403)."""
    study = session.get(Study, study_id)
    if study is None or not principal.in_scope(study.id):
        raise NotFound("No such study")
    if not principal.can(permission, study.id):
        raise Forbidden(f"Your role in this study does not allow {permission}")
    return study


def list_studies(
    session: Session, *, principal: StaffPrincipal, params: PageParams
) -> tuple[list[Study], str | None]:
    stmt = select(Study).where(scoping.study_filter(principal, Study.id))
    return paginate(
        session,
        stmt,
        order_by=[Study.created_at, Study.id],  # type: ignore[list-item]
        params=params,
        scope="studies",
    )


def to_public(session: Session, study: Study, sites: list[Site] | None = None) -> StudyPublic:
    if sites is None:
        sites = sites_of(session, study_id=study.id)
    return StudyPublic(
        id=study.id,
        registry_id=study.registry_id,
        title=study.title,
        time_zone=study.time_zone,
        status=study.status,
        protocol_version=study.current_protocol_version,
        created_at=study.created_at,
        sites=[SitePublic.model_validate(s) for s in sites],
    )


def to_public_many(session: Session, studies: list[Study]) -> list[StudyPublic]:
    """Public shapes for a page of studies, with all their sites read in one query."""
    by_study: dict[uuid.UUID, list[Site]] = {s.id: [] for s in studies}
    if by_study:
        rows = session.exec(
            select(Site).where(col(Site.study_id).in_(list(by_study))).order_by(col(Site.code))
        ).all()
        for site in rows:
            by_study[site.study_id].append(site)
    return [to_public(session, s, by_study[s.id]) for s in studies]


def to_detail(session: Session, study: Study) -> StudyDetail:
    public = to_public(session, study)
    return StudyDetail(
        **public.model_dump(), protocol=protocol_definition(current_protocol(session, study=study))
    )
