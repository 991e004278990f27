"""CPU per request, in process: the app's own cost of a request, without HTTP sockets, the load
generator or the baseline sharing the cores.

The load benchmark (bench/run.py) gives the verdicts; this one is for finding where the time
goes between runs of it. It serves the ASGI app through httpx's in-process transport on one
event loop, one request at a time, and reports this process's CPU time per request
(``time.process_time``: immune to other processes on the machine, unlike wall time) for:

- ``GET /healthz``: the middleware and routing floor;
- ``GET /app/v1/me``: plus participant authentication (token, one SELECT, a transaction);
- ``POST /app/v1/diary/entries``: a single ``mg_adl`` or ``vitals`` entry; the same for a
  study whose protocol switches every safety rule off; and fevers only (every one a finding);
- ``POST /app/v1/diary/sync``: CPU per *entry* in batches of 50 and of 500 offline entries
  (the sync benchmark's body: three days of them), and the ratio of the two. The batch path
  should be linear in the batch size, so the ratio should stay near 1 (fixed per-request costs
  spread over more entries make it a little lower); a ratio well above 1 means something in
  it grows faster than the batch (it was 1.31 when the safety rules scanned every observation
  of the batch for each entry's evidence window: 960 us per entry at 500, 735 at 50; 0.65
  after, 364 and 561).

Usage::

    python -m bench.cpu                      # PostgreSQL at 127.0.0.1 (database mgdiary_bench_cpu)
    python -m bench.cpu --sqlite             # the embedded default
    python -m bench.cpu --requests 3000
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2 as httpx

from bench.payloads import fever_tail, random_entry_tail
from bench.run import app_settings, recreate_database
from bench.seed import seed


async def _measure(
    client: httpx.AsyncClient, make: Any, requests: int, expect: set[int]
) -> list[float]:
    rounds = []
    per_round = max(1, requests // 5)
    for _ in range(5):
        start = time.process_time()
        for _ in range(per_round):
            response = await make()
            if response.status_code not in expect:
                raise SystemExit(f"unexpected {response.status_code}: {response.text[:300]}")
        rounds.append((time.process_time() - start) / per_round * 1e6)
    return rounds


async def run(database_url: str, requests: int) -> dict[str, float]:
    from app.main import create_app

    settings = app_settings(database_url)
    participants = seed(settings, participants=20)
    from bench.rules import RULES_OFF

    rules_off = seed(settings, participants=20, protocol=RULES_OFF)
    app = create_app(settings)
    rng = random.Random(7)
    results: dict[str, float] = {}
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://bench") as client,
    ):
        headers = [{"Authorization": f"Bearer {p['token']}"} for p in participants]
        headers_off = [{"Authorization": f"Bearer {p['token']}"} for p in rules_off]
        zones = [p["time_zone"] for p in participants]
        counter = {"n": 0}

        def who() -> int:
            counter["n"] += 1
            return counter["n"] % len(participants)

        async def healthz() -> httpx.Response:
            return await client.get("/healthz")

        async def me() -> httpx.Response:
            return await client.get("/app/v1/me", headers=headers[who()])

        async def post_entry(tokens: list[dict[str, str]]) -> httpx.Response:
            n = who()
            tail = random_entry_tail(rng, zones[n], datetime.now(UTC), max_age_s=3600)
            body = b'{"id":"' + str(uuid.uuid4()).encode() + tail
            return await client.post(
                "/app/v1/diary/entries",
                content=body,
                headers={**tokens[n], "Content-Type": "application/json"},
            )

        async def entry() -> httpx.Response:
            return await post_entry(headers)

        async def entry_rules_off() -> httpx.Response:
            return await post_entry(headers_off)

        async def fever() -> httpx.Response:
            n = who()
            body = b'{"id":"' + str(uuid.uuid4()).encode()
            body += fever_tail(rng, zones[n], datetime.now(UTC))
            return await client.post(
                "/app/v1/diary/entries",
                content=body,
                headers={**headers[n], "Content-Type": "application/json"},
            )

        def sync_batch(size: int) -> Any:
            # One template per participant, new ids per request: every entry is created.
            now = datetime.now(UTC)
            tails = [
                [random_entry_tail(rng, zone, now, max_age_s=3 * 86_400) for _ in range(size)]
                for zone in zones
            ]

            async def post() -> httpx.Response:
                n = who()
                parts = [b'{"id":"' + str(uuid.uuid4()).encode() + tail for tail in tails[n]]
                return await client.post(
                    "/app/v1/diary/sync",
                    content=b'{"entries":[' + b",".join(parts) + b"]}",
                    headers={**headers[n], "Content-Type": "application/json"},
                )

            return post

        for name, make, expect in (
            ("GET /healthz", healthz, {200}),
            ("GET /app/v1/me", me, {200}),
            ("POST /app/v1/diary/entries", entry, {201}),
            ("  the same, safety rules off", entry_rules_off, {201}),
            ("  fevers only (rules on)", fever, {201}),
        ):
            await _measure(client, make, max(50, requests // 10), expect)  # warm-up
            rounds = await _measure(client, make, requests, expect)
            results[name] = statistics.median(rounds)
            spread = ", ".join(f"{r:.0f}" for r in rounds)
            print(f"  {name:32s} {results[name]:8.0f} us CPU/request  (rounds: {spread})")
        per_entry = {}
        for size, batches in ((50, max(10, requests // 20)), (500, max(5, requests // 200))):
            make = sync_batch(size)
            await _measure(client, make, 5, {200})  # warm-up
            rounds = [r / size for r in await _measure(client, make, batches, {200})]
            name = f"POST /app/v1/diary/sync x{size}"
            per_entry[size] = results[name] = statistics.median(rounds)
            spread = ", ".join(f"{r:.0f}" for r in rounds)
            print(f"  {name:32s} {results[name]:8.0f} us CPU/entry    (rounds: {spread})")
        results["sync 500 / 50 per entry"] = per_entry[500] / per_entry[50]
        print(
            f"  sync per-entry CPU, 500-entry batch / 50-entry batch: "
            f"{results['sync 500 / 50 per entry']:.2f} (linear: about 1)"
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sqlite", action="store_true", help="the embedded SQLite default")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--db", default="mgdiary_bench_cpu")
    opts = parser.parse_args(argv)
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    if opts.sqlite:
        url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='mgdiary-bench-cpu-')) / 'cpu.sqlite3'}"
    else:
        recreate_database(opts.pg, opts.db)
        url = opts.pg.replace("postgresql://", "postgresql+psycopg://", 1) + f"/{opts.db}"
    print(f"CPU per request, in process, on {url.split('://')[0]} ({opts.requests} requests each)")
    asyncio.run(run(url, opts.requests))
    return 0


if __name__ == "__main__":
    sys.exit(main())
