"""Read scenarios of ``bench/run.py`` (issue 4): trends, the participant list, study outcomes.

Data (``seed_reads``), in the app's database, next to the write scenarios' participants:

- a *trend* study with one participant and ``trend_days`` (730) consecutive days of diary
  MG-ADL, day 0 on the 29th day;
- a *cohort* study of ``cohort`` (1,000) participants with ``cohort_days`` (365) days each,
  enrolments staggered over 60 days, day 0 four weeks after enrolment.

Studies, participants (with their visit schedules and activation codes) and the investigator
are created through the app's services. The diary rows go straight into the app's own tables
(``diary_entry``, ``diary_entry_version``, ``mg_adl_response``; columns from the SQLModel
tables) with ``COPY``: 365,000 entries through the API would take hours. Each entry's items
are scored by the app's MG-ADL scorer; the version's ``data`` and ``score`` are what the
capture path stores. Audit rows of the entries are left out (no read touches them). Values
follow a plausible course: a baseline of 6-12, then for most participants an improvement over
8-12 weeks (some reach MSE), for some a worsening, with day-to-day noise.

Each scenario's baseline (``bench/baselines/read_app.py``) serves the same paths from the same
rows with one SQL statement each. Before the rounds, ``same_answer`` checks that the app and
the baseline agree on what both return (series, latest values and changes, counts).

The mixed scenario reuses these data (``mixed_gets``): its investigators read the trends of the
trend participant and of the first ``MIXED_TREND_PARTICIPANTS`` cohort participants (by subject
code), round-robin, and the cohort's first participant page.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from sqlmodel import Session

from app.auth import service as auth_service
from app.auth.tokens import PORTAL_AUDIENCE, KeyRing, issue_token
from app.cli import migrate
from app.core.config import Settings
from app.core.db import create_db_engine
from app.core.time import today_in
from app.diary.models import DiaryEntry, DiaryEntryVersion, MgAdlResponse
from app.participants import service as participants_service
from app.participants.schemas import ParticipantCreate
from app.scores.instruments import mg_adl
from app.scores.instruments.mg_adl import ITEM_KEYS
from app.studies import service as studies_service
from app.studies.builtin import BLINATUMOMAB_NCT06836973
from app.studies.protocol import ProtocolDefinition
from bench.payloads import TIME_ZONES
from bench.seed import BENCH_ACTOR

SCREENING_DAYS = 28
STAGGER_DAYS = 60
PAGE_LIMIT = 50
STAFF_SUBJECT = "bench-investigator"
MIXED_TREND_PARTICIPANTS = 50


@dataclass
class ReadFixtures:
    """What the read scenarios request, and what seeding them cost."""

    token: str
    trend_participant_id: str
    cohort_study_id: str
    cohort: int
    cohort_days: int
    trend_days: int
    recall_period_days: int = 1
    entries: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    def path(self, scenario: str) -> str:
        if scenario == "trend":
            return f"/portal/v1/participants/{self.trend_participant_id}/trends/mg_adl"
        if scenario == "list":
            return f"/portal/v1/studies/{self.cohort_study_id}/participants?limit={PAGE_LIMIT}"
        if scenario == "outcomes":
            return f"/portal/v1/studies/{self.cohort_study_id}/outcomes"
        raise ValueError(f"unknown read scenario {scenario!r}")

    def gets(self, scenario: str) -> list[list[str]]:
        return [[self.path(scenario), self.token]]

    def summary(self) -> dict[str, Any]:
        return {
            "cohort_participants": self.cohort,
            "cohort_days": self.cohort_days,
            "trend_days": self.trend_days,
            "diary_entries": self.entries,
            "seed_seconds": {k: round(v, 1) for k, v in self.seconds.items()},
        }


# --- values ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scored:
    """One MG-ADL answer: items, the app's score, and the JSON the capture path stores."""

    items: tuple[int, ...]
    score: dict[str, Any]
    data_json: str
    score_json: str


def _answers(rng: random.Random, recall_period_days: int) -> list[list[Scored]]:
    """Eight item combinations per total 0-24, scored once."""
    out = []
    for total in range(25):
        variants = []
        for _ in range(8):
            items = [0] * 8
            for _ in range(total):
                index = rng.choice([i for i in range(8) if items[i] < 3])
                items[index] += 1
            answer = dict(zip(ITEM_KEYS, items, strict=True))
            result = mg_adl.score(answer)
            score = {
                "total": result.total,
                "ocular": result.ocular,
                "bulbar": result.bulbar,
                "respiratory": result.respiratory,
                "limb": result.limb,
                "instrument_version": result.instrument_version,
                "recall_period_days": recall_period_days,
            }
            variants.append(Scored(tuple(items), score, json.dumps(answer), json.dumps(score)))
        out.append(variants)
    return out


def course(rng: random.Random, days: int, day0_index: int) -> list[int]:
    """Daily MG-ADL totals: stable before day 0, then improving, stable or worsening."""
    base = rng.randint(6, 12)
    kind = rng.random()
    values = []
    for i in range(days):
        after = i - day0_index
        level: float = base
        if after > 0:
            if kind < 0.6:  # responder: down by 3..base over 8-12 weeks
                depth = min(base, 3 + int(kind * 15))
                level = base - depth * min(1.0, after / (56 + 28 * kind))
            elif kind > 0.85 and 90 <= after <= 90 + int(200 * (kind - 0.85)) + 21:
                level = base + 3  # a worsening episode
        noise = rng.choice((-1, 0, 0, 0, 1))
        values.append(max(0, min(24, round(level) + noise)))
    return values


# --- rows -----------------------------------------------------------------------------------


def _columns(model: Any, skip: tuple[str, ...] = ()) -> list[str]:
    return [c.name for c in model.__table__.columns if c.name not in skip]


ENTRY_COLUMNS = _columns(DiaryEntry)
VERSION_COLUMNS = _columns(DiaryEntryVersion, skip=("seq", "txid"))  # database-filled
RESPONSE_COLUMNS = _columns(MgAdlResponse)


class Rows:
    """The three tables' rows for a set of diaries, in column order."""

    def __init__(self, recall_period_days: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.answers = _answers(self.rng, recall_period_days)
        self.entries: list[tuple[Any, ...]] = []
        self.versions: list[tuple[Any, ...]] = []
        self.responses: list[tuple[Any, ...]] = []

    def diary(
        self,
        *,
        participant_id: uuid.UUID,
        study_id: uuid.UUID,
        zone_name: str,
        first: date,
        totals: list[int],
    ) -> None:
        zone = ZoneInfo(zone_name)
        pid_text = str(participant_id)
        for offset, total in enumerate(totals):
            day = first + timedelta(days=offset)
            local = datetime.combine(day, dtime(20, self.rng.randint(0, 59)), zone)
            utc_offset = local.utcoffset()
            assert utc_offset is not None
            recorded = local.astimezone(UTC)
            answer = self.rng.choice(self.answers[total])
            entry_id, version_id, client_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
            values = {
                "id": entry_id,
                "participant_id": participant_id,
                "study_id": study_id,
                "client_entry_id": client_id,
                "kind": "mg_adl",
                "recorded_at": recorded,
                "recorded_offset_minutes": int(utc_offset.total_seconds() // 60),
                "time_zone": zone_name,
                "diary_date": day,
                "received_at": recorded + timedelta(minutes=1),
                "content_hash": hashlib.sha256(
                    client_id.bytes + answer.data_json.encode()
                ).hexdigest(),
                "current_version": 1,
                "flags": "[]",
            }
            self.entries.append(tuple(values[c] for c in ENTRY_COLUMNS))
            version = {
                "id": version_id,
                "entry_id": entry_id,
                "participant_id": participant_id,
                "version": 1,
                "data": answer.data_json,
                "score": answer.score_json,
                "reason": None,
                "created_at": recorded + timedelta(minutes=1),
                "actor_type": "participant",
                "actor_id": pid_text,
                "actor_role": "participant",
            }
            self.versions.append(tuple(version[c] for c in VERSION_COLUMNS))
            response = {
                "version_id": version_id,
                "participant_id": participant_id,
                **dict(zip(ITEM_KEYS, answer.items, strict=True)),
                **answer.score,
            }
            self.responses.append(tuple(response[c] for c in RESPONSE_COLUMNS))

    def copy(self, dsn: str) -> None:
        """Everything with COPY, in foreign-key order, in one transaction; then VACUUM ANALYZE
        (as autovacuum would after a load of this size) so both servers read the same pages."""
        with psycopg.connect(dsn) as conn:
            with conn.cursor() as cur:
                for table, columns, rows in (
                    ("diary_entry", ENTRY_COLUMNS, self.entries),
                    ("diary_entry_version", VERSION_COLUMNS, self.versions),
                    ("mg_adl_response", RESPONSE_COLUMNS, self.responses),
                ):
                    with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
            conn.commit()
            conn.autocommit = True
            for table in ("diary_entry", "diary_entry_version", "mg_adl_response", "participant"):
                conn.execute(f"VACUUM ANALYZE {table}")


# --- seeding --------------------------------------------------------------------------------


def _definition(name: str) -> ProtocolDefinition:
    return ProtocolDefinition.model_validate(
        {
            **BLINATUMOMAB_NCT06836973,
            "registry_id": f"BENCH-{name}-{uuid.uuid4().hex[:8]}",
            "sites": [
                {"code": "SITE-01", "name": "Bench site one"},
                {"code": "SITE-02", "name": "Bench site two"},
            ],
        }
    )


def seed_reads(
    settings: Settings,
    pg_dsn: str,
    *,
    cohort: int = 1000,
    cohort_days: int = 365,
    trend_days: int = 730,
    token_ttl_seconds: int = 4 * 3600,
) -> ReadFixtures:
    """Create the trend and cohort studies in ``settings.database_url`` (migrated here too);
    ``pg_dsn`` is the same database as a libpq URL, for COPY."""
    started = time.monotonic()
    migrate(settings)
    engine = create_db_engine(settings)
    ring = KeyRing.from_settings(settings)
    diaries: list[dict[str, Any]] = []
    try:
        with Session(engine, expire_on_commit=False) as session:
            trend_study = studies_service.create_study(
                session, definition=_definition("trend"), actor=BENCH_ACTOR
            )
            cohort_study = studies_service.create_study(
                session, definition=_definition("cohort"), actor=BENCH_ACTOR
            )
            recall = studies_service.protocol_definition(
                studies_service.current_protocol(session, study=cohort_study)
            ).diary.recall_period_days

            def enrol(study: Any, n: int, days: int, stagger: int) -> None:
                sites = studies_service.sites_of(session, study_id=study.id)
                zone = TIME_ZONES[n % len(TIME_ZONES)]
                last = today_in(zone) - timedelta(days=1 + stagger)
                first = last - timedelta(days=days - 1)
                participant, _, _ = participants_service.enrol(
                    session,
                    study=study,
                    body=ParticipantCreate(
                        subject_code=f"R-{n:04d}",
                        site_id=sites[n % len(sites)].id,
                        time_zone=zone,
                        enrolled_on=first,
                        day0_date=first + timedelta(days=SCREENING_DAYS),
                    ),
                    actor=BENCH_ACTOR,
                )
                diaries.append(
                    {
                        "participant_id": participant.id,
                        "study_id": study.id,
                        "zone_name": zone,
                        "first": first,
                        "days": days,
                    }
                )

            enrol(trend_study, 0, trend_days, 0)
            for n in range(cohort):
                enrol(cohort_study, n, cohort_days, n % STAGGER_DAYS)
            user = auth_service.get_or_create_staff_user(
                session, subject=STAFF_SUBJECT, actor=BENCH_ACTOR
            )
            for study in (trend_study, cohort_study):
                auth_service.grant_membership(
                    session,
                    user=user,
                    role="investigator",
                    study_id=study.id,
                    site_id=None,
                    actor=BENCH_ACTOR,
                )
            session.commit()
            trend_id, cohort_id = diaries[0]["participant_id"], cohort_study.id
    finally:
        engine.dispose()
    enrolled = time.monotonic()
    rows = Rows(recall, seed=4)
    for d in diaries:
        rows.diary(
            participant_id=d["participant_id"],
            study_id=d["study_id"],
            zone_name=d["zone_name"],
            first=d["first"],
            totals=course(rows.rng, d["days"], SCREENING_DAYS),
        )
    built = time.monotonic()
    rows.copy(pg_dsn)
    copied = time.monotonic()
    token = issue_token(
        ring, subject=STAFF_SUBJECT, audience=PORTAL_AUDIENCE, ttl_seconds=token_ttl_seconds
    )
    return ReadFixtures(
        token=token,
        trend_participant_id=str(trend_id),
        cohort_study_id=str(cohort_id),
        cohort=cohort,
        cohort_days=cohort_days,
        trend_days=trend_days,
        recall_period_days=recall,
        entries=len(rows.entries),
        seconds={
            "enrol": enrolled - started,
            "build_rows": built - enrolled,
            "copy_and_analyze": copied - built,
            "total": copied - started,
        },
    )


def mixed_gets(
    fixtures: ReadFixtures, pg_dsn: str, *, trend_participants: int = MIXED_TREND_PARTICIPANTS
) -> dict[str, list[list[str]]]:
    """The mixed scenario's GETs: ``{"trend": [[path, token], ...], "list": [...]}``."""
    with psycopg.connect(pg_dsn) as conn:
        ids = [
            str(row[0])
            for row in conn.execute(
                "SELECT id FROM participant WHERE study_id = %s ORDER BY subject_code LIMIT %s",
                (uuid.UUID(fixtures.cohort_study_id), trend_participants),
            )
        ]
    trend = [fixtures.trend_participant_id, *ids]
    return {
        "trend": [
            [f"/portal/v1/participants/{pid}/trends/mg_adl", fixtures.token] for pid in trend
        ],
        "list": fixtures.gets("list"),
    }


# --- outcomes: first request and after new entries ------------------------------------------

FRESHNESS_CHANGED = 100


def _timed_get(port: int, path: str, token: str) -> tuple[float, Any]:
    started = time.perf_counter()
    document = _get(port, path, token)
    return (time.perf_counter() - started) * 1000, document


def outcomes_freshness(
    fixtures: ReadFixtures,
    app_port: int,
    baseline_port: int,
    pg_dsn: str,
    *,
    changed: int = FRESHNESS_CHANGED,
) -> dict[str, Any]:
    """What the steady-state rounds do not show: the app keeps each participant's outcome
    summary between requests (app/scores/outcome_summaries.py), so time the first request
    (every summary computed), then add one new diary MG-ADL entry (the next day) for
    ``changed`` participants and time the next request (those recomputed), then a repeat;
    each against one baseline request at the same moment. Run before the rounds, so that
    the rounds measure the steady state after the change."""
    path = fixtures.path("outcomes")
    out: dict[str, Any] = {"changed_participants": changed}
    out["first_app_ms"], first = _timed_get(app_port, path, fixtures.token)
    out["first_baseline_ms"], _ = _timed_get(baseline_port, path, fixtures.token)
    with psycopg.connect(pg_dsn) as conn:
        latest = conn.execute(
            "SELECT p.id, p.time_zone, max(e.diary_date) FROM participant p "
            "JOIN diary_entry e ON e.participant_id = p.id "
            "WHERE p.study_id = %s GROUP BY p.id ORDER BY p.subject_code LIMIT %s",
            (uuid.UUID(fixtures.cohort_study_id), changed),
        ).fetchall()
    rows = Rows(fixtures.recall_period_days, seed=11)
    for pid, zone, last in latest:
        rows.diary(
            participant_id=pid,
            study_id=uuid.UUID(fixtures.cohort_study_id),
            zone_name=zone,
            first=last + timedelta(days=1),
            totals=[0],
        )
    rows.copy(pg_dsn)
    out["after_change_app_ms"], after = _timed_get(app_port, path, fixtures.token)
    out["after_change_baseline_ms"], _ = _timed_get(baseline_port, path, fixtures.token)
    out["repeat_app_ms"], _ = _timed_get(app_port, path, fixtures.token)
    out["repeat_baseline_ms"], _ = _timed_get(baseline_port, path, fixtures.token)
    # The new entries are MG-ADL 0 a day after each participant's last: a changed document.
    out["document_changed"] = _strip_time(after) != _strip_time(first)
    return out


def _strip_time(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k != "generated_at"}


# --- same answer ----------------------------------------------------------------------------


def _get(port: int, path: str, token: str) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def same_answer(
    scenario: str, fixtures: ReadFixtures, app_port: int, baseline_port: int
) -> list[str]:
    """Problems found comparing the app's answer with the baseline's (empty: they agree)."""
    path = fixtures.path(scenario)
    try:
        app = _get(app_port, path, fixtures.token)
        base = _get(baseline_port, path, fixtures.token)
    except OSError as exc:
        return [f"GET {path} failed: {exc}"]
    if scenario == "trend":
        mine = [(p["date"], _number(p["value"]), p["source"]) for p in app["points"]]
        theirs = [(p["date"], _number(p["value"]), p["source"]) for p in base["points"]]
        if mine != theirs:
            return [f"trend series differ: app {len(mine)} points, baseline {len(theirs)}"]
        if len(mine) != fixtures.trend_days:
            return [f"trend has {len(mine)} points, expected {fixtures.trend_days}"]
        return []
    if scenario == "list":
        keys = (
            "subject_code",
            "latest_mg_adl",
            "latest_mg_adl_date",
            "mg_adl_baseline",
            "mg_adl_change_from_baseline",
        )
        mine_rows = [tuple(r[k] for k in keys) for r in app["items"]]
        their_rows = [tuple(r[k] for k in keys) for r in base["items"]]
        if mine_rows != their_rows:
            diff = (
                next((m, t) for m, t in zip(mine_rows, their_rows, strict=False) if m != t)
                if len(mine_rows) == len(their_rows)
                else (len(mine_rows), len(their_rows))
            )
            return [f"participant rows differ, first difference (app, baseline): {diff}"]
        return []
    if scenario == "outcomes":
        problems = []
        if app["participants_with_day0"] != base["participants_with_day0"]:
            problems.append(
                f"participants with day 0: app {app['participants_with_day0']}, "
                f"baseline {base['participants_with_day0']}"
            )
        with_baseline = app["instruments"]["mg_adl"]["participants_with_baseline"]
        if with_baseline != base["participants_with_baseline"]:
            problems.append(
                f"MG-ADL participants with a baseline: app {with_baseline}, "
                f"baseline {base['participants_with_baseline']}"
            )
        return problems
    raise ValueError(f"unknown read scenario {scenario!r}")
