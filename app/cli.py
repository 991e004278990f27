"""The ``mgdiary`` command: serve, worker, migrate, token, demo, openapi."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from sqlmodel import Session, select

from app import demo_data, hooks
from app.audit.service import Actor
from app.auth import service as auth_service
from app.auth.tokens import APP_AUDIENCE, PORTAL_AUDIENCE, KeyRing, issue_token
from app.core.config import Settings, get_settings
from app.core.db import create_db_engine
from app.core.time import today_in
from app.visits import service as _visits  # noqa: F401  (registers the day-0 listener)

CLI_ACTOR = Actor(type="system", id="mgdiary-cli", role="system")
DEMO_ACTOR = Actor(type="system", id="mgdiary-demo", role="system")


def migrate(settings: Settings) -> None:
    from alembic import command

    from app.core.health import alembic_config

    config = alembic_config(settings.database_url)
    config.attributes["skip_logging"] = True
    command.upgrade(config, "head")


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    migrate(settings)
    print("database is at the newest migration", file=sys.stderr)
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    if not args.no_migrate:
        migrate(settings)
    stop = threading.Event()
    if settings.inprocess_worker:
        from app.worker import run_forever

        engine = create_db_engine(settings)
        thread = threading.Thread(
            target=run_forever,
            name="mgdiary-worker",
            daemon=True,
            kwargs={"engine": engine, "stop": stop, "poll_seconds": settings.worker_poll_seconds},
        )
        thread.start()
    try:
        uvicorn.run(
            "app.main:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            proxy_headers=True,
            forwarded_allow_ips=args.forwarded_allow_ips,
            server_header=False,
            log_level="info",
        )
    finally:
        stop.set()
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from app.worker import run_forever

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    run_forever(create_db_engine(settings), poll_seconds=settings.worker_poll_seconds, stop=stop)
    return 0


def _grant(
    session: Session,
    *,
    subject: str,
    role: str,
    studies: Sequence[uuid.UUID],
    sites: Sequence[uuid.UUID],
    actor: Actor,
) -> None:
    from app.studies.models import Site, Study

    user = auth_service.get_or_create_staff_user(session, subject=subject, actor=actor)
    if not user.active:
        raise SystemExit(f"staff account {subject} is deactivated")
    if not studies:
        if role != "admin":
            raise SystemExit(f"--role {role} needs at least one --study")
        auth_service.grant_membership(
            session, user=user, role=role, study_id=None, site_id=None, actor=actor
        )
        return
    site_rows = {s: session.get(Site, s) for s in sites}
    for site_id, site in site_rows.items():
        if site is None or site.study_id not in studies:
            raise SystemExit(f"site {site_id} is not a site of the given studies")
    for study_id in studies:
        if session.get(Study, study_id) is None:
            raise SystemExit(f"no study {study_id}")
        study_sites: list[uuid.UUID | None] = [
            s for s, row in site_rows.items() if row and row.study_id == study_id
        ]
        for scoped_site in study_sites or [None]:
            auth_service.grant_membership(
                session, user=user, role=role, study_id=study_id, site_id=scoped_site, actor=actor
            )


def staff_token(
    settings: Settings,
    *,
    subject: str,
    role: str,
    ttl: int,
    studies: Sequence[uuid.UUID] = (),
    sites: Sequence[uuid.UUID] = (),
) -> str:
    claims: dict[str, Any] = {
        "role": role,
        "studies": [str(s) for s in studies],
        "sites": [str(s) for s in sites],
    }
    return issue_token(
        KeyRing.from_settings(settings),
        subject=subject,
        audience=PORTAL_AUDIENCE,
        ttl_seconds=ttl,
        claims=claims,
    )


def cmd_token(args: argparse.Namespace, settings: Settings) -> int:
    migrate(settings)
    subject = args.subject or f"dev-{args.role}"
    engine = create_db_engine(settings)
    try:
        with Session(engine) as session:
            _grant(
                session,
                subject=subject,
                role=args.role,
                studies=args.study,
                sites=args.site,
                actor=CLI_ACTOR,
            )
            session.commit()
    finally:
        engine.dispose()
    print(
        staff_token(
            settings,
            subject=subject,
            role=args.role,
            studies=args.study,
            sites=args.site,
            ttl=args.ttl or settings.portal_token_default_ttl_seconds,
        )
    )
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    migrate(settings)
    engine = create_db_engine(settings)
    try:
        with Session(engine) as session:
            summary = load_demo(session, settings)
            session.commit()
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_demo(summary, base_url=args.base_url)
    return 0


DEMO_STAFF = (
    ("demo-admin", "admin", None),
    ("demo-investigator-site-01", "investigator", "SITE-01"),
    ("demo-investigator-site-02", "investigator", "SITE-02"),
    ("demo-monitor", "monitor", None),
)
DEMO_PARTICIPANTS = (
    ("DEMO-001", "SITE-01", "Europe/Berlin", -35),
    ("DEMO-002", "SITE-01", "America/New_York", -10),
    ("DEMO-003", "SITE-02", "Asia/Shanghai", None),
)


def load_demo(session: Session, settings: Settings) -> dict[str, Any]:
    """Create the demo study, staff and participants once; later runs find and reuse them."""
    from app.participants import activation
    from app.participants import service as participants_service
    from app.participants.models import Participant
    from app.participants.schemas import ParticipantCreate
    from app.studies import service as studies_service
    from app.studies.builtin import BLINATUMOMAB_NCT06836973
    from app.studies.models import Study
    from app.studies.protocol import ProtocolDefinition

    registry_id = BLINATUMOMAB_NCT06836973["registry_id"]
    study = session.exec(select(Study).where(Study.registry_id == registry_id)).first()
    if study is None:
        definition = ProtocolDefinition.model_validate(
            {
                **BLINATUMOMAB_NCT06836973,
                "sites": [
                    {"code": "SITE-01", "name": "Demo site one"},
                    {"code": "SITE-02", "name": "Demo site two"},
                ],
            }
        )
        study = studies_service.create_study(session, definition=definition, actor=DEMO_ACTOR)
    sites = {s.code: s for s in studies_service.sites_of(session, study_id=study.id)}
    staff = []
    for subject, role, site_code in DEMO_STAFF:
        site_ids = [sites[site_code].id] if site_code else []
        studies = [] if role == "admin" else [study.id]
        _grant(
            session, subject=subject, role=role, studies=studies, sites=site_ids, actor=DEMO_ACTOR
        )
        staff.append(
            {
                "subject": subject,
                "role": role,
                "site": site_code,
                "token": staff_token(
                    settings,
                    subject=subject,
                    role=role,
                    studies=studies,
                    sites=site_ids,
                    ttl=settings.portal_token_default_ttl_seconds,
                ),
            }
        )
    participants = []
    ring = KeyRing.from_settings(settings)
    for code, site_code, zone, day0_offset in DEMO_PARTICIPANTS:
        participant = session.exec(
            select(Participant).where(
                Participant.study_id == study.id, Participant.subject_code == code
            )
        ).first()
        activation_code = None
        if participant is None:
            today = today_in(zone)
            body = ParticipantCreate(
                subject_code=code,
                site_id=sites[site_code].id,
                time_zone=zone,
                enrolled_on=today - timedelta(days=45 if day0_offset is not None else 2),
                day0_date=today + timedelta(days=day0_offset) if day0_offset is not None else None,
            )
            participant, activation_code, _ = participants_service.enrol(
                session, study=study, body=body, actor=DEMO_ACTOR
            )
            demo_data.load(session, participant=participant, actor=DEMO_ACTOR, today=today_in(zone))
        elif participant.activated_at is None and participant.status != "withdrawn":
            activation_code, _ = activation.issue_code(
                session, participant=participant, actor=DEMO_ACTOR
            )
        token = issue_token(
            ring,
            subject=str(participant.id),
            audience=APP_AUDIENCE,
            ttl_seconds=settings.portal_token_default_ttl_seconds,
            claims={"role": "participant", "study_id": str(study.id)},
        )
        participants.append(
            {
                "subject_code": code,
                "id": str(participant.id),
                "site": site_code,
                "activation_code": activation_code,
                "token": token,
            }
        )
    return {
        "study_id": str(study.id),
        "sites": {c: str(s.id) for c, s in sites.items()},
        "staff": staff,
        "participants": participants,
    }


def print_demo(summary: dict[str, Any], *, base_url: str) -> None:
    out = [f"Demo study (NCT06836973, blinatumomab): {summary['study_id']}"]
    out += [f"  site {code}: {site_id}" for code, site_id in summary["sites"].items()]
    out.append("\nStaff tokens (portal, /portal/v1):")
    for s in summary["staff"]:
        where = f" at {s['site']}" if s["site"] else ""
        out.append(f"  {s['role']}{where} ({s['subject']}):\n    {s['token']}")
    out.append("\nParticipants (app, /app/v1):")
    for p in summary["participants"]:
        code = f", activation code {p['activation_code']}" if p["activation_code"] else ""
        out.append(f"  {p['subject_code']} at {p['site']}: {p['id']}{code}\n    {p['token']}")
    out += [
        "\nTry it (the tokens are valid for 8 hours; run `mgdiary demo` again for new ones):",
        f"  export INVESTIGATOR={summary['staff'][1]['token']}",
        f"  export PARTICIPANT={summary['participants'][0]['token']}",
        f"  curl -s {base_url}/portal/v1/studies/{summary['study_id']}/participants "
        '-H "Authorization: Bearer $INVESTIGATOR"',
        f'  curl -s {base_url}/app/v1/me -H "Authorization: Bearer $PARTICIPANT"',
        f"  API documentation: {base_url}/docs",
    ]
    print("\n".join(out))


def cmd_openapi(args: argparse.Namespace, settings: Settings) -> int:
    from app.main import create_app
    from app.openapi import write_documents

    for path in write_documents(create_app(settings)):
        print(f"wrote {path}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mgdiary", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="migrate, then serve the API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--no-migrate", action="store_true")
    serve.add_argument(
        "--forwarded-allow-ips",
        default="127.0.0.1",
        help="proxies whose X-Forwarded-* headers are trusted",
    )
    serve.set_defaults(func=cmd_serve)

    sub.add_parser("worker", help="run background jobs").set_defaults(func=cmd_worker)
    sub.add_parser("migrate", help="upgrade the database to the newest migration").set_defaults(
        func=cmd_migrate
    )

    token = sub.add_parser("token", help="grant a development staff role and print a token")
    token.add_argument("--role", required=True, choices=["investigator", "monitor", "admin"])
    token.add_argument("--study", action="append", type=uuid.UUID, default=[])
    token.add_argument("--site", action="append", type=uuid.UUID, default=[])
    token.add_argument("--subject")
    token.add_argument("--ttl", type=int, help="seconds (default: 8 hours)")
    token.set_defaults(func=cmd_token)

    demo = sub.add_parser("demo", help="load the demo study and print ids and tokens")
    demo.add_argument("--base-url", default="http://127.0.0.1:8000")
    demo.add_argument("--json", action="store_true", help="print the ids and tokens as JSON")
    demo.set_defaults(func=cmd_demo)

    sub.add_parser("openapi", help="write openapi/*.json").set_defaults(func=cmd_openapi)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    hooks.install()
    args = build_parser().parse_args(argv)
    try:
        settings = get_settings()
    except ValidationError as exc:
        # Never print pydantic's rendering: it repeats the input values, secrets included.
        for error in exc.errors(include_url=False, include_input=False, include_context=False):
            where = ".".join(str(part) for part in error["loc"])
            setting = f"MGDIARY_{where.upper()}: " if where else ""
            print(f"mgdiary: invalid settings: {setting}{error['msg']}", file=sys.stderr)
        return 2
    result: int = args.func(args, settings)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
