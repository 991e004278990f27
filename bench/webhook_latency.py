"""Alert latency from the diary POST to receipt at a webhook receiver (issue 7 Done-when:
p50 and p99 with the worker running; target p99 under 2 s).

One run, on PostgreSQL (a database recreated for it, default ``mgdiary_bench_webhooks``):

1. migrate and seed ``rate x duration`` participants (plus a few for warm-up) with the app's own
   code (bench/seed.py);
2. a loopback receiver (a thread here) verifying every request with the ``standardwebhooks``
   package and recording when each arrived (``time.monotonic``);
3. the app as ``mgdiary serve`` - the API with the webhook worker in-process, as deployed by
   default - or, with ``--separate-worker``, uvicorn (``MGDIARY_INPROCESS_WORKER=false``) plus a
   ``mgdiary worker`` process; ``MGDIARY_WEBHOOK_POLL_SECONDS`` left at its default (0.5 s);
4. an endpoint registered through ``POST /portal/v1/webhook-endpoints`` (admin token), for
   ``safety.signal.raised``;
5. fevers at a steady ``--rate`` for ``--duration`` s, one per participant (each opens a CRS
   signal: exactly one ``safety.signal.raised`` alert), each timed from its 2xx response to the
   receipt of its alert (matched by ``data.participant_id`` of the webhook body);
6. beside it, same run, same pacing: a signed POST straight from this script to the receiver,
   timed from before the send to the receipt - the network and receiver floor.

Prints count, p50, p95, p99 and max for both, the server-side ``delivered_at - created_at``
of the outbox rows, and the verdict (p99 < 2 s); writes ``var/bench/webhook-latency-*.json``.

    .venv/bin/python -m bench.webhook_latency
    .venv/bin/python -m bench.webhook_latency --rate 20 --duration 15 --separate-worker

The ``VerifyingReceiver`` here is also the receiver of scripts/chaos_webhooks.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
import standardwebhooks
from sqlmodel import Session, select

from app.audit.service import Actor
from app.auth import service as auth_service
from app.cli import staff_token
from app.core.config import Settings
from app.core.db import create_db_engine
from app.webhooks import signing

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
OUT_DIR = ROOT / "var" / "bench"
JWT_SECRET = "mgdiary-bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
TOKEN_TTL_SECONDS = 4 * 3600
TARGET_P99_S = 2.0
EVENT_TYPE = "safety.signal.raised"
BENCH_ACTOR = Actor(type="system", id="mgdiary-bench", role="system")


# --- the receiver -------------------------------------------------------------------------


@dataclass
class Receipt:
    webhook_id: str
    at: float  # time.monotonic() when the request was read
    type: str
    data: dict[str, Any]


@dataclass
class VerifyingReceiver:
    """A webhook receiver on 127.0.0.1 that verifies every request with ``standardwebhooks``
    (wrong signature or stale timestamp: 400, counted in ``invalid``) and records the verified
    ones. ``mode``: ``ok`` (204), ``503`` (answers 503, records nothing) or, after
    ``go_down()``, no listener at all (connections refused) until ``come_up()`` (same port).
    ``keep_alive=False`` answers HTTP/1.0 and closes every connection, so that taking the
    receiver down refuses the very next attempt."""

    keep_alive: bool = True
    port: int = 0
    secret: str | None = None
    mode: str = "ok"
    receipts: list[Receipt] = field(default_factory=list)
    invalid: int = 0
    unavailable: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _verifier: tuple[str, standardwebhooks.Webhook] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/mgdiary"

    def verify(self, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
        secret = self.secret
        if secret is None:
            raise standardwebhooks.WebhookVerificationError("no secret yet")
        if self._verifier is None or self._verifier[0] != secret:
            self._verifier = (secret, standardwebhooks.Webhook(secret))
        payload: dict[str, Any] = self._verifier[1].verify(body, headers)
        return payload

    def start(self) -> VerifyingReceiver:
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, name="receiver", daemon=True).start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def go_down(self) -> None:
        self.stop()

    def come_up(self) -> None:
        if self._server is None:
            self.start()

    def snapshot(self) -> list[Receipt]:
        with self.lock:
            return list(self.receipts)


def _handler(receiver: VerifyingReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1" if receiver.keep_alive else "HTTP/1.0"

        def log_message(self, format: str, *args: object) -> None:
            return None

        def _answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            at = time.monotonic()
            if receiver.mode == "503":
                with receiver.lock:
                    receiver.unavailable += 1
                self._answer(503)
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                payload = receiver.verify(body, headers)
            except standardwebhooks.WebhookVerificationError:
                with receiver.lock:
                    receiver.invalid += 1
                self._answer(400)
                return
            receipt = Receipt(headers["webhook-id"], at, str(payload["type"]), payload["data"])
            with receiver.lock:
                receiver.receipts.append(receipt)
            self._answer(204)

    return Handler


# --- processes, database, endpoint ----------------------------------------------------------


def spawn(args: Sequence[str], *, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A child in its own process group (killed with its threads), output appended to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            list(args),
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_process(proc: subprocess.Popen[bytes] | None, *, kill: bool = False) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
    except ProcessLookupError:
        pass


def wait_ready(base: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited during start-up:\n{tail(log)}")
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server was not ready within {timeout:.0f} s:\n{tail(log)}")


def tail(log: Path, lines: int = 30) -> str:
    if not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def child_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MGDIARY_")}
    env.update(
        {
            "MGDIARY_ENV": "development",
            "MGDIARY_DATABASE_URL": database_url,
            "MGDIARY_JWT_SECRET": JWT_SECRET,
            "MGDIARY_ACCESS_TOKEN_TTL_SECONDS": str(TOKEN_TTL_SECONDS),
            "MGDIARY_WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
            "PYTHONDONTWRITEBYTECODE": "1",
            **extra,
        }
    )
    return env


def settings_for(database_url: str) -> Settings:
    return Settings(
        env="development",
        database_url=database_url,
        jwt_secret=JWT_SECRET,
        access_token_ttl_seconds=TOKEN_TTL_SECONDS,
        inprocess_worker=False,
    )


def recreate_pg_database(pg: str, name: str, *, must_contain: str) -> str:
    """Drop and create ``name`` (which must contain ``must_contain``: never a suite's or a
    deployment's database); returns its SQLAlchemy URL."""
    forbidden = {"postgres", "test", "mgdiary_ci", "mgdiary_main", "template0", "template1"}
    if must_contain not in name or name in forbidden or not name.replace("_", "").isalnum():
        raise SystemExit(f"refusing to recreate database {name!r} (must contain {must_contain!r})")
    with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return pg.replace("postgresql://", "postgresql+psycopg://", 1) + f"/{name}"


def the_study(settings: Settings) -> uuid.UUID:
    from app.studies.models import Study

    engine = create_db_engine(settings)
    try:
        with Session(engine) as session:
            [study] = session.exec(select(Study)).all()
            return study.id
    finally:
        engine.dispose()


def admin_token(settings: Settings, study_id: uuid.UUID) -> str:
    """A study admin (membership granted with the app's own service) and a portal token."""
    subject = f"bench-admin-{uuid.uuid4().hex[:8]}"
    engine = create_db_engine(settings)
    try:
        with Session(engine) as session:
            user = auth_service.get_or_create_staff_user(
                session, subject=subject, actor=BENCH_ACTOR
            )
            auth_service.grant_membership(
                session,
                user=user,
                role="admin",
                study_id=study_id,
                site_id=None,
                actor=BENCH_ACTOR,
            )
            session.commit()
    finally:
        engine.dispose()
    return staff_token(settings, subject=subject, role="admin", ttl=3600, studies=[study_id])


def create_endpoint(base: str, token: str, study_id: uuid.UUID, url: str) -> tuple[str, str]:
    """Register ``url`` for ``safety.signal.raised`` through the portal API: (id, secret)."""
    response = httpx.post(
        f"{base}/portal/v1/webhook-endpoints",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "study_id": str(study_id),
            "url": url,
            "event_types": [EVENT_TYPE],
            "description": "bench receiver on loopback",
        },
        timeout=30,
    )
    if response.status_code != 201:
        raise RuntimeError(f"creating the endpoint: {response.status_code} {response.text}")
    body = response.json()
    return str(body["id"]), str(body["secret"])


def fever_body(rng: random.Random, zone: str) -> bytes:
    from bench.payloads import fever_tail

    return b'{"id":"' + str(uuid.uuid4()).encode() + fever_tail(rng, zone, datetime.now(UTC))


# --- the run ------------------------------------------------------------------------------


def pct(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (``nan`` for no values)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "count": len(values),
        "p50_s": pct(values, 50),
        "p95_s": pct(values, 95),
        "p99_s": pct(values, 99),
        "max_s": max(values) if values else math.nan,
    }


def fmt(name: str, s: dict[str, float]) -> str:
    def ms(v: float) -> str:
        return f"{v * 1000:8.1f} ms"

    return (
        f"{name:<38} n={int(s['count']):>4}  p50 {ms(s['p50_s'])}  p95 {ms(s['p95_s'])}  "
        f"p99 {ms(s['p99_s'])}  max {ms(s['max_s'])}"
    )


@dataclass
class Sent:
    participant_id: str | None
    status: int
    answered_at: float


async def drive(
    base: str,
    receiver: VerifyingReceiver,
    participants: list[dict[str, Any]],
    *,
    rate: float,
    seed: int,
    label: str,
) -> tuple[list[Sent], dict[str, float]]:
    """One fever per participant at ``rate``/s; beside each, a direct signed POST to the
    receiver (the floor). Returns the fevers and {baseline webhook-id: send time}."""
    rng = random.Random(seed)
    sent: list[Sent] = []
    floor: dict[str, float] = {}
    assert receiver.secret is not None
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with (
        httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as api,
        httpx.AsyncClient(timeout=30) as direct,
    ):

        async def fever(p: dict[str, Any]) -> None:
            body = fever_body(rng, p["time_zone"])
            headers = {
                "Authorization": f"Bearer {p['token']}",
                "Content-Type": "application/json",
            }
            try:
                response = await api.post("/app/v1/diary/entries", content=body, headers=headers)
            except httpx.HTTPError:
                sent.append(Sent(None, 0, time.monotonic()))
                return
            at = time.monotonic()
            pid = response.json().get("participant_id") if response.status_code == 201 else None
            sent.append(Sent(pid, response.status_code, at))

        async def baseline(i: int) -> None:
            msg_id = f"msg_floor{label}{i:06d}"
            body = json.dumps({"type": "bench.floor", "timestamp": "", "data": {"i": i}})
            headers = {
                **signing.headers([receiver.secret or ""], msg_id, int(time.time()), body),
                "content-type": "application/json",
            }
            floor[msg_id] = time.monotonic()
            await direct.post(receiver.url, content=body.encode(), headers=headers)

        tasks = []
        started = time.monotonic()
        for i, p in enumerate(participants):
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(fever(p)))
            await asyncio.sleep(0.5 / rate)  # the floor probe half a tick later
            tasks.append(asyncio.create_task(baseline(i)))
        await asyncio.gather(*tasks)
    return sent, floor


def delivery_stats(database_url: str) -> dict[str, Any]:
    dsn = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT extract(epoch FROM delivered_at - created_at), attempts FROM webhook_delivery "
            "WHERE status = 'delivered'"
        ).fetchall()
        statuses: dict[str, int] = {
            str(status): int(n)
            for status, n in conn.execute(
                "SELECT status, count(*) FROM webhook_delivery GROUP BY status"
            ).fetchall()
        }
    return {
        "outbox_to_delivered": summary([float(r[0]) for r in rows]),
        "retried": sum(1 for r in rows if r[1] > 1),
        "statuses": statuses,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.webhook_latency", description=__doc__)
    p.add_argument("--rate", type=float, default=20.0, help="fevers per second")
    p.add_argument("--duration", type=float, default=15.0, help="seconds of load")
    p.add_argument("--warmup", type=int, default=10, help="fevers before the measured ones")
    p.add_argument("--drain-timeout", type=float, default=30.0)
    p.add_argument(
        "--separate-worker",
        action="store_true",
        help="uvicorn + a `mgdiary worker` process instead of `mgdiary serve`",
    )
    p.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    p.add_argument("--db", default="mgdiary_bench_webhooks")
    p.add_argument("--seed", type=int, default=7)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    log = OUT_DIR / "server-webhook-latency.log"
    log.unlink(missing_ok=True)
    measured = int(args.rate * args.duration)
    url = recreate_pg_database(args.pg, args.db, must_contain="bench")
    settings = settings_for(url)

    from bench.seed import seed

    t0 = time.monotonic()
    participants = seed(settings, participants=args.warmup + measured)
    print(f"seeded {len(participants)} participants in {time.monotonic() - t0:.1f} s")
    study_id = the_study(settings)
    receiver = VerifyingReceiver(keep_alive=True).start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    procs: list[subprocess.Popen[bytes]] = []
    mode = "uvicorn + mgdiary worker" if args.separate_worker else "mgdiary serve (in-process)"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        if args.separate_worker:
            env = child_env(url, MGDIARY_INPROCESS_WORKER="false")
            procs.append(
                spawn(
                    [
                        str(VENV_BIN / "uvicorn"),
                        "app.main:create_app",
                        "--factory",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--log-level",
                        "warning",
                        "--no-access-log",
                    ],
                    env=env,
                    log=log,
                )
            )
            procs.append(spawn([str(VENV_BIN / "mgdiary"), "worker"], env=env, log=log))
        else:
            env = child_env(url, MGDIARY_INPROCESS_WORKER="true")
            procs.append(
                spawn(
                    [
                        str(VENV_BIN / "mgdiary"),
                        "serve",
                        "--no-migrate",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                    ],
                    env=env,
                    log=log,
                )
            )
        wait_ready(base, procs[0], log)
        _, receiver.secret = create_endpoint(
            base, admin_token(settings, study_id), study_id, receiver.url
        )

        warm, load = participants[: args.warmup], participants[args.warmup :]
        asyncio.run(drive(base, receiver, warm, rate=args.rate, seed=args.seed, label="warm"))
        deadline = time.monotonic() + args.drain_timeout
        while len(receiver.snapshot()) < 2 * len(warm) and time.monotonic() < deadline:
            time.sleep(0.1)
        skip = {r.webhook_id for r in receiver.snapshot()}

        print(f"load: {len(load)} fevers at {args.rate:g}/s ({mode}, default poll interval)")
        sent, floor = asyncio.run(
            drive(base, receiver, load, rate=args.rate, seed=args.seed + 1, label="load")
        )
        wanted = {s.participant_id for s in sent if s.participant_id is not None}
        deadline = time.monotonic() + args.drain_timeout
        while time.monotonic() < deadline:
            got = {
                r.data.get("participant_id")
                for r in receiver.snapshot()
                if r.webhook_id not in skip and r.type == EVENT_TYPE
            }
            if wanted <= got:
                break
            time.sleep(0.1)

        first_receipt: dict[str, float] = {}
        floor_receipt: dict[str, float] = {}
        for r in receiver.snapshot():
            if r.webhook_id in skip:
                continue
            if r.type == EVENT_TYPE:
                pid = str(r.data.get("participant_id"))
                first_receipt[pid] = min(r.at, first_receipt.get(pid, math.inf))
            elif r.webhook_id in floor:
                floor_receipt[r.webhook_id] = r.at
        alert_lat = [
            first_receipt[s.participant_id] - s.answered_at
            for s in sent
            if s.participant_id is not None and s.participant_id in first_receipt
        ]
        floor_lat = [at - floor[m] for m, at in floor_receipt.items()]
        ok = sum(1 for s in sent if s.status == 201)
        missing = len(wanted) - len(alert_lat)
        server = delivery_stats(url)
    finally:
        for proc in reversed(procs):
            stop_process(proc)
        receiver.stop()

    alerts = summary(alert_lat)
    floor_s = summary(floor_lat)
    verdict = ok == len(load) and missing == 0 and alerts["p99_s"] < TARGET_P99_S
    print(
        f"fevers answered 201: {ok} of {len(load)}; alerts received: {len(alert_lat)}, "
        f"missing {missing}; invalid signatures {receiver.invalid}"
    )
    print(fmt("alert: POST 2xx -> receipt", alerts))
    print(fmt("floor: direct POST -> receipt", floor_s))
    print(fmt("server: outbox row -> delivered_at", server["outbox_to_delivered"]))
    print(f"retried deliveries: {server['retried']}; statuses: {server['statuses']}")
    print(
        f"verdict: p99 {alerts['p99_s'] * 1000:.0f} ms vs target < {TARGET_P99_S * 1000:.0f} ms:"
        f" {'PASS' if verdict else 'FAIL'}"
    )
    result = {
        "at": stamp,
        "mode": mode,
        "rate_per_s": args.rate,
        "duration_s": args.duration,
        "poll_seconds": "default (0.5)",
        "fevers": len(load),
        "answered_201": ok,
        "missing": missing,
        "invalid_signatures": receiver.invalid,
        "alert_latency": alerts,
        "floor_latency": floor_s,
        "server": server,
        "target_p99_s": TARGET_P99_S,
        "pass": verdict,
    }
    out = OUT_DIR / f"webhook-latency-{stamp}.json"
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"results: {out.relative_to(ROOT)}")
    return 0 if verdict else 1


if __name__ == "__main__":
    raise SystemExit(main())
