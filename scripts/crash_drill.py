"""Crash-consistency drill for the API (issue 8 item 2; checklist E32). Not a unit test.

A fresh database of its own (PostgreSQL: database ``mgdiary_crash_drill`` on ``--pg``, dropped
and recreated, dropped again at the end; ``--sqlite``: a file in a temporary directory), migrated
and seeded with the app's own code (bench/seed.py: participants activated with their codes). Two
webhook endpoints subscribed to ``safety.signal.raised`` and one to another event type point at
a loopback receiver (tests/webhooks/receiver.py; ``MGDIARY_WEBHOOK_ALLOW_PRIVATE_TARGETS=true``).

The API runs under uvicorn (``MGDIARY_INPROCESS_WORKER=false``) and is killed once per round:

- ``before_commit``: the fault-injection hook of the capture path (app/diary/capture.py,
  ``MGDIARY_FAULT_INJECT``) exits the process (``os._exit(137)``) after a write's statements ran
  and before it commits;
- ``after_commit``: the hook exits after the commit and before the response is sent;
- ``sigkill``: this script sends SIGKILL while several requests are in flight.

``MGDIARY_FAULT_INJECT_AFTER`` lets the first 1-4 writes of a round through, so requests of the
same round are acknowledged before the crash. The client sends fever and normal vitals entries
(each with its own entry UUID and Idempotency-Key, 4 at a time), records every 2xx, and after
each crash (when the dead server's database sessions are gone) looks up which unacknowledged
entries were committed anyway, with their stored idempotent response. The next round restarts
the API and first retries every unacknowledged entry with the same key and body; a final round
without faults retries until everything is acknowledged. Checked afterwards, in the database:

- every acknowledged entry stored exactly once (one entry row, one version, one
  ``diary_entry.create`` audit row), nothing stored that was never acknowledged;
- every participant with fevers has exactly one ``safety.signal.raised`` alert and one finding
  per fever; every alert has exactly one outbox row per matching endpoint and none for the other;
- the retry of an entry committed before the crash answered 200/201 with the stored body
  (``Idempotent-Replayed: true``); the retry of one not committed answered 201;
- both crash kinds really happened (a committed-but-unacknowledged entry after ``after_commit``,
  an uncommitted one after ``before_commit``);
- then ``mgdiary worker`` drains the outbox: every delivery delivered and received.

Prints ``acknowledged N, stored N, duplicates 0, lost 0`` and exits 0 iff all of this holds.
Bounded (``--timeout``); loopback traffic only.

    .venv/bin/python scripts/crash_drill.py            # PostgreSQL on 127.0.0.1:5432
    .venv/bin/python scripts/crash_drill.py --sqlite
    make crash-drill
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # bench/ and tests/ are not installed packages

import httpx  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from sqlalchemy.engine import Engine, make_url  # noqa: E402

APP_NAME = "mgdiary-drill"
ENTRIES_PATH = "/app/v1/diary/entries"
EVENT_TYPE = "safety.signal.raised"
FAULT_ENV = ("MGDIARY_FAULT_INJECT", "MGDIARY_FAULT_INJECT_AFTER")


# --- shared with scripts/pg_restart_drill.py ---------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in FAULT_ENV}
    env.update(
        {
            "MGDIARY_ENV": "development",
            "MGDIARY_DATABASE_URL": database_url,
            "MGDIARY_INPROCESS_WORKER": "false",
            "MGDIARY_WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
            "MGDIARY_WEBHOOK_POLL_SECONDS": "0.2",
            "MGDIARY_WEBHOOK_RETRY_SCHEDULE": "0,1,1,2,2,2,2,2,2,2",
            "MGDIARY_WEBHOOK_RETRY_JITTER": "0",
            "MGDIARY_WEBHOOK_LEASE_SECONDS": "5",
            "MGDIARY_WEBHOOK_TIMEOUT_SECONDS": "2",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    env.update(extra)
    return env


def tail(path: Path, chars: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


class Proc:
    """A child process in its own process group, its output appended to ``log``."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.argv, self.env, self.log = argv, env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait(self, timeout: float) -> int | None:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def signal(self, sig: int) -> None:
        if self.alive():
            assert self.proc is not None
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, grace: float = 10.0) -> None:
        if self.proc is None:
            return
        self.signal(signal.SIGTERM)
        if self.wait(grace) is None:
            self.signal(signal.SIGKILL)
            self.wait(5)


def api_process(database_url: str, port: int, log: Path, **extra: str) -> Proc:
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "app.main:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    return Proc(argv, child_env(database_url, **extra), log)


def worker_process(database_url: str, log: Path, **extra: str) -> Proc:
    argv = [sys.executable, "-m", "app.cli", "worker"]
    return Proc(argv, child_env(database_url, **extra), log)


def wait_ready(base: str, proc: Proc, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if not proc.alive():
            raise RuntimeError(f"the API exited while starting:\n{tail(proc.log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the API was not ready within {timeout} s:\n{tail(proc.log)}")
        time.sleep(0.1)


def drill_engine(database_url: str) -> Engine:
    """The drill's own engine (its sessions are told apart from the API's by name)."""
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        return sa.create_engine(
            url, pool_pre_ping=True, connect_args={"application_name": APP_NAME}
        )
    return sa.create_engine(url)


def recreate_pg_database(server_url: str, name: str) -> str:
    """Drop and create database ``name`` on the server; its SQLAlchemy URL."""
    if "drill" not in name:
        raise SystemExit("refusing to recreate a database whose name lacks 'drill'")
    base = make_url(server_url).set(drivername="postgresql+psycopg", database="postgres")
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def drop_pg_database(database_url: str) -> None:
    url = make_url(database_url)
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
    finally:
        admin.dispose()


def seed_study(database_url: str, participants: int) -> tuple[list[dict[str, Any]], uuid.UUID]:
    """Migrate, seed activated participants (bench/seed.py); their tokens and the study id."""
    os.environ["MGDIARY_DATABASE_URL"] = database_url
    from app.core.config import Settings
    from bench.seed import seed

    seeded = seed(Settings(database_url=database_url), participants=participants)
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            study_id = conn.execute(sa.text("SELECT id FROM study")).scalar_one()
    finally:
        engine.dispose()
    return seeded, uuid.UUID(str(study_id))


def add_endpoints(
    database_url: str, study_id: uuid.UUID, url: str, *, matching: int, other: int
) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
    """``matching`` endpoints for ``safety.signal.raised`` and ``other`` for another type."""
    from sqlmodel import Session

    from app.webhooks import signing
    from app.webhooks.models import WebhookEndpoint

    engine = sa.create_engine(database_url)
    ids: tuple[set[uuid.UUID], set[uuid.UUID]] = (set(), set())
    try:
        with Session(engine) as session:
            for n in range(matching + other):
                endpoint = WebhookEndpoint(
                    study_id=study_id,
                    url=url,
                    event_types=[EVENT_TYPE] if n < matching else ["visit.missed"],
                    secret=signing.new_secret(),
                    created_by="drill",
                )
                session.add(endpoint)
                session.flush()
                ids[0 if n < matching else 1].add(endpoint.id)
            session.commit()
    finally:
        engine.dispose()
    return ids


def entry_body(time_zone: str, *, fever: bool, minutes_ago: float) -> dict[str, Any]:
    recorded = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    data: dict[str, Any] = (
        {"temperature_c": 38.6} if fever else {"temperature_c": 36.8, "heart_rate_bpm": 72}
    )
    return {
        "id": str(uuid.uuid4()),
        "kind": "vitals",
        "recorded_at": recorded.isoformat(),
        "time_zone": time_zone,
        "data": data,
    }


def grouped(engine: Engine, sql: str) -> dict[str, int]:
    """``SELECT key, count`` as {str(key).lower(): count}."""
    with engine.connect() as conn:
        return {str(k).replace("-", "").lower(): int(n) for k, n in conn.execute(sa.text(sql))}


def hexid(value: Any) -> str:
    return str(value).replace("-", "").lower()


def consistency_problems(
    engine: Engine,
    acknowledged: set[str],
    fevers_of: dict[str, int],
    matching: set[uuid.UUID],
    other: set[uuid.UUID],
    *,
    allow_unacknowledged: bool = False,
) -> tuple[dict[str, int], list[str]]:
    """The database against what the client saw acknowledged: counts and problems.
    ``fevers_of``: the fevers stored per participant (hex id)."""
    problems: list[str] = []
    entries = grouped(engine, "SELECT client_entry_id, count(*) FROM diary_entry GROUP BY 1")
    versions = grouped(
        engine,
        "SELECT e.client_entry_id, count(*) FROM diary_entry_version v "
        "JOIN diary_entry e ON e.id = v.entry_id GROUP BY 1",
    )
    audits = grouped(
        engine,
        "SELECT entity_id, count(*) FROM audit_event "
        "WHERE action = 'diary_entry.create' GROUP BY 1",
    )
    acked = {hexid(a) for a in acknowledged}
    lost = sorted(acked - entries.keys())
    unacked_stored = sorted(entries.keys() - acked)
    duplicates = sum(n - 1 for n in entries.values() if n > 1)
    if lost:
        problems.append(f"{len(lost)} acknowledged entries not stored: {lost[:3]}")
    if unacked_stored and not allow_unacknowledged:
        problems.append(f"{len(unacked_stored)} stored entries never acknowledged")
    if duplicates:
        problems.append(f"{duplicates} duplicate entry rows")
    bad_versions = [e for e in acked if versions.get(e, 0) != 1]
    bad_audits = [e for e in acked if audits.get(e, 0) != 1]
    if bad_versions:
        problems.append(f"{len(bad_versions)} entries without exactly one version")
    if bad_audits:
        problems.append(f"{len(bad_audits)} entries without exactly one diary_entry.create audit")

    alerts = grouped(
        engine,
        f"SELECT participant_id, count(*) FROM alert WHERE type = '{EVENT_TYPE}' GROUP BY 1",
    )
    findings = grouped(engine, "SELECT participant_id, count(*) FROM safety_finding GROUP BY 1")
    for participant, fevers in fevers_of.items():
        if alerts.get(participant, 0) != (1 if fevers else 0):
            problems.append(f"participant {participant}: {alerts.get(participant, 0)} alerts")
        if findings.get(participant, 0) != fevers:
            problems.append(
                f"participant {participant}: {findings.get(participant, 0)} findings "
                f"for {fevers} fevers"
            )
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT a.id, d.endpoint_id, count(d.id) FROM alert a "
                "LEFT JOIN webhook_delivery d ON d.alert_id = a.id GROUP BY 1, 2"
            )
        ).all()
    outbox: dict[str, Counter[str]] = defaultdict(Counter)
    for alert_id, endpoint_id, n in rows:
        if endpoint_id is not None:
            outbox[hexid(alert_id)][hexid(endpoint_id)] += int(n)
        else:
            outbox.setdefault(hexid(alert_id), Counter())
    want = Counter({hexid(e): 1 for e in matching})
    bad_outbox = [a for a, got in outbox.items() if got != want]
    if bad_outbox:
        problems.append(f"{len(bad_outbox)} alerts without one outbox row per matching endpoint")
    if any(hexid(e) in got for got in outbox.values() for e in other):
        problems.append("outbox rows for an endpoint not subscribed to the event")
    counts = {
        "acknowledged": len(acked),
        "stored": len(entries),
        "duplicates": duplicates,
        "lost": len(lost),
        "alerts": len(outbox),
        "outbox": sum(sum(c.values()) for c in outbox.values()),
    }
    return counts, problems


def wait_drained(
    engine: Engine, receiver: Any, worker: Proc | None, timeout: float
) -> tuple[dict[str, int], list[str]]:
    """Wait until every delivery is delivered and its webhook-id was received."""
    from app.webhooks.signing import message_id

    deadline = time.monotonic() + timeout
    while True:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT id, status FROM webhook_delivery")).all()
        statuses = Counter(status for _, status in rows)
        with receiver.lock:
            received = {r.headers.get("webhook-id") for r in receiver.requests}
        missing = [d for d, _ in rows if message_id(uuid.UUID(str(d))) not in received]
        done = rows and statuses.get("delivered", 0) == len(rows) and not missing
        if done or time.monotonic() > deadline:
            break
        if worker is not None and not worker.alive():
            break
        time.sleep(0.3)
    counts = {"deliveries": len(rows), "delivered": statuses.get("delivered", 0)}
    counts["received"] = len(rows) - len(missing)
    problems = []
    if not done:
        problems.append(
            f"outbox not drained within {timeout:.0f} s: {dict(statuses)}, "
            f"{len(missing)} deliveries never received"
        )
    return counts, problems


@contextmanager
def loopback_receiver() -> Iterator[Any]:
    from tests.webhooks.receiver import running_receiver

    with running_receiver("ok") as receiver:
        yield receiver


# --- the crash drill ------------------------------------------------------------------------


@dataclass
class Entry:
    participant: int
    body: dict[str, Any]
    key: str
    fever: bool
    attempts: int = 0
    acknowledged: bool = False
    #: (status, body) stored for the key when the entry was found committed after a crash.
    committed_before_retry: tuple[int, Any] | None = None
    crash_mode: str | None = None


@dataclass
class Drill:
    base: str
    tokens: list[str]
    entries: list[Entry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    replays_checked: int = 0
    committed_unacked: Counter[str] = field(default_factory=Counter)
    uncommitted_unacked: Counter[str] = field(default_factory=Counter)


async def send_round(
    drill: Drill, batch: list[Entry], *, concurrency: int, on_ack: asyncio.Event
) -> None:
    semaphore = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=drill.base, timeout=15, limits=limits) as client:

        async def one(entry: Entry) -> None:
            async with semaphore:
                entry.attempts += 1
                headers = {
                    "Authorization": f"Bearer {drill.tokens[entry.participant]}",
                    "Idempotency-Key": entry.key,
                }
                try:
                    response = await client.post(ENTRIES_PATH, json=entry.body, headers=headers)
                except httpx.TransportError as exc:
                    drill.statuses[type(exc).__name__] += 1
                    return
                drill.statuses[str(response.status_code)] += 1
                if response.status_code not in (200, 201):
                    if response.status_code != 503:
                        drill.problems.append(
                            f"entry {entry.body['id']}: {response.status_code} "
                            f"{response.text[:200]}"
                        )
                    return
                check_ack(drill, entry, response)
                entry.acknowledged = True
                on_ack.set()

        await asyncio.gather(*(one(e) for e in batch))


async def run_round(
    drill: Drill, batch: list[Entry], mode: str, proc: Proc, rng: random.Random
) -> None:
    """Send ``batch``; in a ``sigkill`` round, SIGKILL the API just after the first 2xx."""
    acked = asyncio.Event()
    killer = None
    if mode == "sigkill":

        async def kill_after_first_ack() -> None:
            await acked.wait()
            await asyncio.sleep(rng.uniform(0.0, 0.03))
            proc.signal(signal.SIGKILL)

        killer = asyncio.create_task(kill_after_first_ack())
    await send_round(drill, batch, concurrency=4, on_ack=acked)
    if killer is not None:
        if acked.is_set():
            await killer
        else:
            drill.problems.append("sigkill round: nothing acknowledged")
            killer.cancel()


def check_ack(drill: Drill, entry: Entry, response: httpx.Response) -> None:
    body = response.json()
    if body.get("id") != entry.body["id"]:
        drill.problems.append(f"entry {entry.body['id']}: answered with id {body.get('id')}")
    if entry.committed_before_retry is None:
        if response.status_code != 201:
            drill.problems.append(f"entry {entry.body['id']}: first answer {response.status_code}")
        return
    status, stored = entry.committed_before_retry
    drill.replays_checked += 1
    if response.status_code != status or body != stored:
        drill.problems.append(
            f"entry {entry.body['id']} committed before the crash: retry answered "
            f"{response.status_code}, stored {status}; same body: {body == stored}"
        )
    if response.headers.get("idempotent-replayed") != "true":
        drill.problems.append(f"entry {entry.body['id']}: retry not an idempotent replay")


def wait_sessions_gone(engine: Engine, timeout: float = 10.0) -> None:
    """PostgreSQL: wait until the dead API's database sessions ended (so whatever it had sent,
    a COMMIT included, is processed before the drill looks)."""
    if engine.dialect.name != "postgresql":
        return
    deadline = time.monotonic() + timeout
    sql = sa.text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND application_name <> :me"
    )
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if conn.execute(sql, {"me": APP_NAME}).scalar_one() == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("the dead API's database sessions did not end")


_STORED = sa.text("SELECT count(*) FROM diary_entry WHERE client_entry_id = :id").bindparams(
    sa.bindparam("id", type_=sa.Uuid())
)


def inspect_unacknowledged(engine: Engine, drill: Drill, mode: str) -> None:
    """After a crash: which unacknowledged entries were committed, with their stored answer."""
    pending = [e for e in drill.entries if not e.acknowledged and e.committed_before_retry is None]
    if not pending:
        return
    with engine.connect() as conn:
        for entry in pending:
            row = conn.execute(
                sa.text("SELECT status_code, response_body FROM idempotency_record WHERE key = :k"),
                {"k": entry.key},
            ).first()
            stored = conn.execute(_STORED, {"id": uuid.UUID(entry.body["id"])}).scalar_one()
            if stored and row is None:
                drill.problems.append(f"entry {entry.body['id']}: stored without its key")
            if row is not None:
                body = row[1] if not isinstance(row[1], str) else json.loads(row[1])
                entry.committed_before_retry = (int(row[0]), body)
                entry.crash_mode = mode
                drill.committed_unacked[mode] += 1
            else:
                drill.uncommitted_unacked[mode] += 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/crash_drill.py", description=__doc__.split("\n")[0])
    where = p.add_mutually_exclusive_group()
    where.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432")
    where.add_argument("--sqlite", action="store_true", help="a SQLite file instead")
    p.add_argument("--db", default="mgdiary_crash_drill", help="recreated, then dropped")
    p.add_argument("--rounds", type=int, default=2, help="crash rounds per kind")
    p.add_argument("--per-round", type=int, default=8, help="new entries per round")
    p.add_argument("--participants", type=int, default=6)
    p.add_argument("--timeout", type=float, default=240.0, help="the whole drill, seconds")
    p.add_argument("--keep", action="store_true", help="keep the database and logs")
    p.add_argument("--seed", type=int, default=32)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    deadline = started + args.timeout
    workdir = Path(tempfile.mkdtemp(prefix="mgdiary-crash-drill-"))
    if args.sqlite:
        url = f"sqlite:///{workdir / 'drill.sqlite3'}"
    else:
        url = recreate_pg_database(args.pg, args.db)
    api_log, worker_log = workdir / "api.log", workdir / "worker.log"
    rng = random.Random(args.seed)
    api: Proc | None = None
    worker: Proc | None = None
    engine: Engine | None = None
    ok = False
    try:
        seeded, study_id = seed_study(url, args.participants)
        tokens = [p["token"] for p in seeded]
        zones = [p["time_zone"] for p in seeded]
        with loopback_receiver() as receiver:
            matching, other = add_endpoints(url, study_id, receiver.url, matching=2, other=1)
            print(
                f"database {make_url(url).render_as_string(hide_password=True)}: "
                f"{len(tokens)} participants, {len(matching)}+{len(other)} endpoints, "
                f"receiver {receiver.url}"
            )
            engine = drill_engine(url)
            port = free_port()
            drill = Drill(base=f"http://127.0.0.1:{port}", tokens=tokens)
            modes = ["before_commit", "after_commit", "sigkill"] * args.rounds
            made = 0
            for number, mode in enumerate([*modes, "none"]):
                if time.monotonic() > deadline:
                    drill.problems.append("the drill ran out of time")
                    break
                extra: dict[str, str] = {}
                if mode in ("before_commit", "after_commit"):
                    extra = {
                        "MGDIARY_FAULT_INJECT": mode,
                        "MGDIARY_FAULT_INJECT_AFTER": str(rng.randint(1, 4)),
                    }
                api = api_process(url, port, api_log, **extra).start()
                wait_ready(drill.base, api)
                fresh = []
                if mode != "none":
                    for _ in range(args.per_round):
                        # The last two participants never have a fever (and get no alert).
                        participant = made % len(tokens)
                        lap = made // len(tokens)
                        fever = participant < len(tokens) - 2 and lap % 2 == 0
                        body = entry_body(zones[participant], fever=fever, minutes_ago=120 - made)
                        fresh.append(Entry(participant, body, f"drill-{uuid.uuid4()}", fever))
                        made += 1
                    drill.entries += fresh
                retries = [e for e in drill.entries if not e.acknowledged and e not in fresh]
                batch = retries + fresh
                asyncio.run(run_round(drill, batch, mode, api, rng))
                if mode == "none":
                    for _ in range(5):  # the final round: retry until acknowledged
                        rest = [e for e in drill.entries if not e.acknowledged]
                        if not rest:
                            break
                        asyncio.run(run_round(drill, rest, mode, api, rng))
                    api.stop()
                    break
                code = api.wait(10)
                if code is None:
                    drill.problems.append(f"round {number} ({mode}): the API did not die")
                    api.signal(signal.SIGKILL)
                    api.wait(5)
                elif mode != "sigkill" and code != 137:
                    drill.problems.append(f"round {number} ({mode}): exit status {code}")
                wait_sessions_gone(engine)
                inspect_unacknowledged(engine, drill, mode)
                unacked = sum(not e.acknowledged for e in drill.entries)
                print(
                    f"round {number + 1} {mode:>13}: sent {len(batch)} ({len(retries)} retries), "
                    f"API exit {code}, unacknowledged now {unacked}"
                )
            api = None

            acknowledged = {e.body["id"] for e in drill.entries if e.acknowledged}
            never = [e.body["id"] for e in drill.entries if not e.acknowledged]
            if never:
                drill.problems.append(f"{len(never)} entries never acknowledged")
            fevers_of: dict[str, int] = Counter()
            participant_ids = participant_hex_ids(tokens)
            for n in range(len(tokens)):
                fevers_of[participant_ids[n]] += 0
            for e in drill.entries:
                if e.acknowledged and e.fever:
                    fevers_of[participant_ids[e.participant]] += 1
            counts, problems = consistency_problems(
                engine, acknowledged, fevers_of, matching, other
            )
            drill.problems += problems
            if not drill.committed_unacked["after_commit"]:
                drill.problems.append("no entry was committed but unacknowledged (after_commit)")
            if not drill.uncommitted_unacked["before_commit"]:
                drill.problems.append("no entry was lost to a crash before commit")

            worker = worker_process(url, worker_log).start()
            drained, problems = wait_drained(
                engine, receiver, worker, timeout=max(5.0, min(60.0, deadline - time.monotonic()))
            )
            drill.problems += problems
            worker.stop()
            worker = None

        print(f"responses: {dict(sorted(drill.statuses.items()))}")
        print(
            "unacknowledged after a crash, committed / not committed: "
            + ", ".join(
                f"{m} {drill.committed_unacked[m]}/{drill.uncommitted_unacked[m]}"
                for m in ("before_commit", "after_commit", "sigkill")
            )
        )
        print(
            f"retries of entries committed before the crash, replayed identically: "
            f"{drill.replays_checked}"
        )
        print(
            f"alerts {counts['alerts']}, outbox rows {counts['outbox']}; deliveries "
            f"{drained['deliveries']}, delivered {drained['delivered']}, "
            f"received {drained['received']}"
        )
        for problem in drill.problems[:20]:
            print(f"PROBLEM: {problem}")
        ok = not drill.problems
        print(
            f"acknowledged {counts['acknowledged']}, stored {counts['stored']}, "
            f"duplicates {counts['duplicates']}, lost {counts['lost']}"
        )
    except Exception as exc:  # the verdict line must still be printed
        print(f"PROBLEM: the drill failed: {exc!r}")
        if api_log.exists():
            print(tail(api_log))
    finally:
        for proc in (api, worker):
            if proc is not None:
                proc.stop()
        if engine is not None:
            engine.dispose()
        if args.keep:
            print(f"kept {workdir} and the database")
        else:
            if not args.sqlite:
                drop_pg_database(url)
            shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.monotonic() - started
    print(f"CRASH DRILL {'PASSED' if ok else 'FAILED'} in {elapsed:.1f} s")
    return 0 if ok else 1


def participant_hex_ids(tokens: list[str]) -> list[str]:
    """The participant id of each token (its ``sub``)."""
    from jose import jwt

    return [hexid(jwt.get_unverified_claims(t)["sub"]) for t in tokens]


if __name__ == "__main__":
    raise SystemExit(main())
