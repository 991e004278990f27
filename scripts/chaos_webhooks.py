"""Chaos drill "no alert lost" (issue 7 Done-when; checklist E31). Not a unit test.

Against a database of its own (PostgreSQL ``--db mgdiary_chaos`` on ``--pg``, dropped and
recreated; or ``--sqlite``, a fresh file under var/chaos/), migrated and seeded with the app's
own code (bench/seed.py):

- a loopback receiver (a thread) that verifies every request with ``standardwebhooks`` and
  records its ``webhook-id`` and the body's ``data.alert_id`` (bench/webhook_latency.py);
- the API under uvicorn (``MGDIARY_INPROCESS_WORKER=false``) and one ``mgdiary worker``
  process, with a compressed retry schedule and a short lease;
- an endpoint for ``safety.signal.raised`` registered through the portal API (admin token);
- ``--fevers`` fevers through ``POST /app/v1/diary/entries``, one per participant (each opens a
  CRS signal: exactly one ``safety.signal.raised`` alert), at ``--rate``/s; meanwhile the worker
  is SIGKILLed ``--kill-min``-``--kill-max`` s into each life (counted from its delivery loop's
  start; restarted at once), and the receiver goes down for ``--down-seconds`` (first half
  answering 503, second half refusing connections); the kills go on until the sends are done,
  the receiver is back and ``--min-chaos`` s have passed;
- then the chaos stops and the outbox is left to drain (at most ``--drain-timeout`` s).

Prints ``committed N, received M, missing K`` (N: alerts of the endpoint's event type committed
for its study; M: distinct alert ids received with a valid signature; K: committed and never
received), the duplicates, the outbox's final status counts and an attempt-log check. Exits 0
only if nothing is missing, no row is left pending or delivering and the attempt log is
consistent. Bounded: it stops by itself; loopback traffic only.

    .venv/bin/python scripts/chaos_webhooks.py            # PostgreSQL, database mgdiary_chaos
    .venv/bin/python scripts/chaos_webhooks.py --sqlite
    make chaos
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # bench/ is not an installed package

import httpx  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from app.alerts.models import Alert  # noqa: E402
from app.core.db import create_db_engine  # noqa: E402
from bench.seed import seed  # noqa: E402
from bench.webhook_latency import (  # noqa: E402
    EVENT_TYPE,
    VENV_BIN,
    VerifyingReceiver,
    admin_token,
    child_env,
    create_endpoint,
    fever_body,
    free_port,
    recreate_pg_database,
    settings_for,
    spawn,
    stop_process,
    tail,
    the_study,
    wait_ready,
)

OUT_DIR = ROOT / "var" / "chaos"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/chaos_webhooks.py", description=__doc__)
    where = p.add_mutually_exclusive_group()
    where.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    where.add_argument("--sqlite", action="store_true", help="the embedded SQLite database")
    p.add_argument("--db", default="mgdiary_chaos", help="recreated; the name must hold 'chaos'")
    p.add_argument("--fevers", type=int, default=500)
    p.add_argument("--rate", type=float, default=25.0, help="fevers per second")
    p.add_argument("--kill-min", type=float, default=0.5)
    p.add_argument("--kill-max", type=float, default=3.0)
    p.add_argument("--down-after", type=float, default=4.0, help="s after the first fever")
    p.add_argument("--down-seconds", type=float, default=15.0)
    p.add_argument(
        "--min-chaos", type=float, default=30.0, help="keep killing at least this long (s)"
    )
    p.add_argument("--drain-timeout", type=float, default=120.0)
    p.add_argument("--retry-schedule", default="0,1,2,3,5,5,5,5,5,5,5,5")
    p.add_argument("--lease-seconds", type=int, default=5)
    p.add_argument("--seed", type=int, default=31)
    args = p.parse_args(argv)
    if not 0 < args.kill_min <= args.kill_max:
        p.error("need 0 < --kill-min <= --kill-max")
    return args


class Worker:
    """The ``mgdiary worker`` process, SIGKILLed and restarted by the chaos thread. A new
    process takes a second or two to import the app; the kill interval counts from when its
    delivery loop is up (its start-up line in the log), so that every life delivers."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0
        self.uptime = 0.0
        self._up_at: float | None = None
        self._log_offset = 0
        self.lock = threading.Lock()

    def _spawn(self) -> None:
        self._log_offset = self.log.stat().st_size if self.log.exists() else 0
        self._up_at = None
        self.proc = spawn([str(VENV_BIN / "mgdiary"), "worker"], env=self.env, log=self.log)

    def start(self) -> None:
        with self.lock:
            self._spawn()

    def wait_up(self, stop: threading.Event, timeout: float = 30.0) -> bool:
        """Until the current process's delivery loop has started (or ``stop``, or timeout)."""
        assert self.proc is not None
        marker = f":{self.proc.pid}:"
        deadline = time.monotonic() + timeout
        while not stop.is_set() and time.monotonic() < deadline:
            with self.log.open("rb") as log:
                log.seek(self._log_offset)
                for line in log.read().decode(errors="replace").splitlines():
                    if marker in line and "webhook delivery" in line and "started" in line:
                        self._up_at = time.monotonic()
                        return True
            stop.wait(0.05)
        return False

    def kill_and_restart(self) -> None:
        with self.lock:
            stop_process(self.proc, kill=True)
            self.kills += 1
            if self._up_at is not None:
                self.uptime += time.monotonic() - self._up_at
            self._spawn()

    def ensure_running(self) -> None:
        with self.lock:
            if self.proc is None or self.proc.poll() is not None:
                self._spawn()

    def stop(self) -> None:
        with self.lock:
            stop_process(self.proc)


def killer(
    worker: Worker, stop: threading.Event, rng: random.Random, bounds: tuple[float, float]
) -> None:
    """SIGKILL the worker 0.5-3 s (``bounds``) into each life, restart it at once."""
    while not stop.is_set():
        worker.wait_up(stop)
        if stop.wait(rng.uniform(*bounds)):
            return
        worker.kill_and_restart()


def outage(receiver: VerifyingReceiver, *, after: float, seconds: float, log: list[str]) -> None:
    time.sleep(after)
    log.append(f"receiver answering 503 for {seconds / 2:.1f} s")
    receiver.mode = "503"
    time.sleep(seconds / 2)
    log.append(f"receiver refusing connections for {seconds / 2:.1f} s")
    receiver.go_down()
    receiver.mode = "ok"
    time.sleep(seconds / 2)
    receiver.come_up()
    log.append("receiver back up")


async def send_fevers(
    base: str, participants: list[dict[str, Any]], *, rate: float, seed: int
) -> Counter[int]:
    """One fever per participant at ``rate``/s; the answers' status codes (0: no answer)."""
    rng = random.Random(seed)
    statuses: Counter[int] = Counter()
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as api:

        async def fever(p: dict[str, Any]) -> None:
            headers = {
                "Authorization": f"Bearer {p['token']}",
                "Content-Type": "application/json",
            }
            body = fever_body(rng, p["time_zone"])
            try:
                response = await api.post("/app/v1/diary/entries", content=body, headers=headers)
                statuses[response.status_code] += 1
            except httpx.HTTPError:
                statuses[0] += 1

        tasks = []
        started = time.monotonic()
        for i, p in enumerate(participants):
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(fever(p)))
        await asyncio.gather(*tasks)
    return statuses


def scalar(engine: Engine, sql: str, **ids: uuid.UUID) -> int:
    statement = sa.text(sql).bindparams(*(sa.bindparam(k, type_=sa.Uuid()) for k in ids))
    with engine.connect() as conn:
        return int(conn.execute(statement, ids).scalar_one())


def status_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT status, count(*) FROM webhook_delivery GROUP BY status ORDER BY 1")
        ).all()
    return {str(status): int(n) for status, n in rows}


def committed_alerts(engine: Engine, study_id: uuid.UUID) -> set[str]:
    table = Alert.__table__  # type: ignore[attr-defined]
    statement = sa.select(table.c.id).where(
        table.c.type == EVENT_TYPE, table.c.study_id == study_id
    )
    with engine.connect() as conn:
        return {str(row[0]) for row in conn.execute(statement).all()}


def attempt_log_problems(engine: Engine) -> dict[str, int]:
    """Inconsistencies between the outbox and its attempt log (all should be 0)."""
    checks = {
        # a delivered row has exactly one delivered attempt (record() writes both at once)
        "delivered_without_delivered_attempt": (
            "SELECT count(*) FROM webhook_delivery d WHERE d.status = 'delivered' AND NOT EXISTS "
            "(SELECT 1 FROM webhook_attempt a WHERE a.delivery_id = d.id "
            "AND a.outcome = 'delivered')"
        ),
        "deliveries_with_two_delivered_attempts": (
            "SELECT count(*) FROM (SELECT delivery_id FROM webhook_attempt "
            "WHERE outcome = 'delivered' GROUP BY delivery_id HAVING count(*) > 1) x"
        ),
        # an attempt is numbered by its claim: never above the row's claim count, never twice
        "attempt_numbers_above_claims": (
            "SELECT count(*) FROM webhook_attempt a JOIN webhook_delivery d "
            "ON d.id = a.delivery_id WHERE a.attempt > d.attempts OR a.attempt < 1"
        ),
        "attempt_numbers_twice": (
            "SELECT count(*) FROM (SELECT delivery_id, attempt FROM webhook_attempt "
            "GROUP BY delivery_id, attempt HAVING count(*) > 1) x"
        ),
        "leases_left_on_finished_rows": (
            "SELECT count(*) FROM webhook_delivery WHERE status IN ('delivered', 'failed') "
            "AND (lease_until IS NOT NULL OR leased_by IS NOT NULL)"
        ),
    }
    return {name: scalar(engine, sql) for name, sql in checks.items()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    if args.sqlite:
        path = OUT_DIR / "chaos.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    else:
        url = recreate_pg_database(args.pg, args.db, must_contain="chaos")
    settings = settings_for(url)
    api_log, worker_log = OUT_DIR / "api.log", OUT_DIR / "worker.log"
    api_log.unlink(missing_ok=True)
    worker_log.unlink(missing_ok=True)

    started = time.monotonic()
    participants = seed(settings, participants=args.fevers)
    study_id = the_study(settings)
    print(
        f"database {url}: seeded {len(participants)} participants "
        f"in {time.monotonic() - started:.1f} s"
    )

    rng = random.Random(args.seed)
    receiver = VerifyingReceiver(keep_alive=False).start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = child_env(
        url,
        MGDIARY_INPROCESS_WORKER="false",
        MGDIARY_WEBHOOK_RETRY_SCHEDULE=args.retry_schedule,
        MGDIARY_WEBHOOK_LEASE_SECONDS=str(args.lease_seconds),
        MGDIARY_WEBHOOK_TIMEOUT_SECONDS="2",
        MGDIARY_WEBHOOK_POLL_SECONDS="0.2",
    )
    engine = create_db_engine(settings)
    api: subprocess.Popen[bytes] | None = None
    worker = Worker(env, worker_log)
    stop_chaos = threading.Event()
    events: list[str] = []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        api = spawn(
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
            log=api_log,
        )
        wait_ready(base, api, api_log)
        endpoint, receiver.secret = create_endpoint(
            base, admin_token(settings, study_id), study_id, receiver.url
        )
        endpoint_id = uuid.UUID(endpoint)
        worker.start()

        chaos = [
            threading.Thread(
                target=killer,
                args=(worker, stop_chaos, rng, (args.kill_min, args.kill_max)),
                daemon=True,
            ),
            threading.Thread(
                target=outage,
                kwargs={
                    "receiver": receiver,
                    "after": args.down_after,
                    "seconds": args.down_seconds,
                    "log": events,
                },
                daemon=True,
            ),
        ]
        for thread in chaos:
            thread.start()
        t_send = time.monotonic()
        statuses = asyncio.run(send_fevers(base, participants, rate=args.rate, seed=args.seed))
        sent_s = time.monotonic() - t_send
        chaos[1].join()  # the receiver is back
        stop_chaos.wait(max(0.0, t_send + args.min_chaos - time.monotonic()))
        stop_chaos.set()
        chaos[0].join()
        worker.ensure_running()
        chaos_s = time.monotonic() - t_send
        print(
            f"sent {sum(statuses.values())} fevers in {sent_s:.1f} s: "
            f"{dict(sorted(statuses.items()))}"
        )
        for line in events:
            print(line)
        print(
            f"worker SIGKILLed {worker.kills} times in {chaos_s:.1f} s of chaos "
            f"(delivery loop up {worker.uptime:.1f} s of it, the rest starting up)"
        )

        deadline = time.monotonic() + args.drain_timeout
        while time.monotonic() < deadline:
            counts = status_counts(engine)
            if not counts.get("pending") and not counts.get("delivering"):
                break
            time.sleep(0.5)
        drained_s = time.monotonic() - t_send - chaos_s
    finally:
        stop_chaos.set()
        worker.stop()
        stop_process(api)
        receiver.stop()

    committed = committed_alerts(engine, study_id)
    receipts = receiver.snapshot()
    received_ids = Counter(str(r.data.get("alert_id")) for r in receipts if r.type == EVENT_TYPE)
    webhook_ids = Counter(r.webhook_id for r in receipts)
    received = set(received_ids)
    missing = committed - received
    unexpected = received - committed
    duplicates = sum(n - 1 for n in received_ids.values())
    counts = status_counts(engine)
    without_delivery = scalar(
        engine,
        f"SELECT count(*) FROM alert a WHERE a.type = '{EVENT_TYPE}' AND a.study_id = :study "
        "AND NOT EXISTS (SELECT 1 FROM webhook_delivery d WHERE d.alert_id = a.id "
        "AND d.endpoint_id = :endpoint)",
        study=study_id,
        endpoint=endpoint_id,
    )
    problems = attempt_log_problems(engine)
    attempts = scalar(engine, "SELECT count(*) FROM webhook_attempt")
    engine.dispose()
    consistent = not any(problems.values()) and without_delivery == 0
    # Same webhook-id on every receipt of one alert: as many ids as alerts, no id shared.
    ids_per_alert: dict[str, set[str]] = {}
    for r in receipts:
        ids_per_alert.setdefault(str(r.data.get("alert_id")), set()).add(r.webhook_id)
    mixed_ids = sum(1 for ids in ids_per_alert.values() if len(ids) > 1)

    print(f"drained in {drained_s:.1f} s after the chaos")
    print(f"committed {len(committed)}, received {len(received)}, missing {len(missing)}")
    print(
        f"duplicates {duplicates} (receipts {len(receipts)}, distinct webhook-ids "
        f"{len(webhook_ids)}, alerts received under more than one webhook-id {mixed_ids}); "
        f"unexpected ids {len(unexpected)}; invalid signatures {receiver.invalid}; "
        f"503s {receiver.unavailable}"
    )
    print(f"final status counts: {counts}; attempt rows {attempts}")
    print(
        f"alerts without an outbox row {without_delivery}; attempt log: "
        f"{'consistent' if consistent else 'INCONSISTENT'} {problems}"
    )
    if missing:
        print(f"missing alert ids (first 10): {sorted(missing)[:10]}")
        print(tail(worker_log))
    left = counts.get("pending", 0) + counts.get("delivering", 0)
    ok = not missing and left == 0 and consistent and mixed_ids == 0 and not unexpected
    print(f"verdict: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
