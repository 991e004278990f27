"""Round trips of a single-entry write with safety follow-ups, and its error path, in process.

Serves the app through httpx's in-process transport against PostgreSQL (database
``mgdiary_bench_pipe``, recreated), counts psycopg's pipeline syncs and result flushes per
fever entry (every fever takes the participant's advisory lock, reads the rules' context and
updates a signal: the pipelined write of app/diary/capture.py), then sends 20 pairs of identical
entries at once (one of each pair must be 201, the other 409, and the connection must be usable
afterwards) and checks that the rows stored equal the 201s.

    .venv/bin/python -m bench.round_trips
"""

from __future__ import annotations

import asyncio
import collections
import random
import sys
import uuid
from collections.abc import Generator
from datetime import UTC, datetime
from typing import Any

import httpx2 as httpx
import psycopg
from psycopg import _pipeline_base

from bench.payloads import fever_tail
from bench.run import app_settings, recreate_database
from bench.seed import seed

PG = "postgresql://postgres@127.0.0.1:5432"
DB = "mgdiary_bench_pipe"
URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DB}"
COUNTS: collections.Counter[str] = collections.Counter()


def _count() -> None:
    """Wrap psycopg's pipeline sync and flush generators with counters."""
    base: Any = _pipeline_base.BasePipeline
    sync, fetch, leave = base._sync_gen, base._fetch_gen, base._exit_gen

    def sync_gen(self: Any) -> Generator[Any, Any, Any]:
        COUNTS["sync"] += 1
        return (yield from sync(self))

    def fetch_gen(self: Any, *, flush: bool) -> Generator[Any, Any, Any]:
        if flush:
            COUNTS["flush"] += 1
        return (yield from fetch(self, flush=flush))

    def exit_gen(self: Any) -> Generator[Any, Any, Any]:
        COUNTS["pipeline exit sync"] += 1
        return (yield from leave(self))

    base._sync_gen, base._fetch_gen, base._exit_gen = sync_gen, fetch_gen, exit_gen


async def run() -> int:
    from app.main import create_app

    settings = app_settings(URL)
    participants = seed(settings, participants=1)
    app = create_app(settings)
    rng = random.Random(1)
    headers = {
        "Authorization": f"Bearer {participants[0]['token']}",
        "Content-Type": "application/json",
    }
    zone = participants[0]["time_zone"]

    def body(entry_id: uuid.UUID) -> bytes:
        return b'{"id":"' + str(entry_id).encode() + fever_tail(rng, zone, datetime.now(UTC))

    transport = httpx.ASGITransport(app=app)
    acknowledged = 0
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://bench") as client,
    ):

        async def post(content: bytes) -> int:
            response = await client.post("/app/v1/diary/entries", content=content, headers=headers)
            return response.status_code

        assert await post(body(uuid.uuid4())) == 201  # warm-up
        acknowledged += 1
        COUNTS.clear()
        for _ in range(10):
            assert await post(body(uuid.uuid4())) == 201
            acknowledged += 1
        print("per fever entry:", {k: v / 10 for k, v in sorted(COUNTS.items())})
        codes: collections.Counter[int] = collections.Counter()
        for _ in range(20):
            same = body(uuid.uuid4())
            for code in await asyncio.gather(post(same), post(same)):
                codes[code] += 1
        acknowledged += codes[201]
        after = await post(body(uuid.uuid4()))
        acknowledged += after == 201
        print(f"20 concurrent pairs: {dict(codes)}; the next entry: {after}")
    with psycopg.connect(f"{PG}/{DB}") as conn:
        row = conn.execute("SELECT count(*) FROM diary_entry").fetchone()
    stored = row[0] if row else 0
    print(f"acknowledged {acknowledged}, stored {stored}")
    ok = codes == {201: 20, 409: 20} and after == 201 and stored == acknowledged
    print("check", "ok" if ok else "FAILED")
    return 0 if ok else 1


def main() -> int:
    from app.cli import migrate

    recreate_database(PG, DB)
    migrate(app_settings(URL))
    _count()
    return asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
