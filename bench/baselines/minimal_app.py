"""The baseline: the most this stack (FastAPI, pydantic, uvicorn, psycopg 3) can do here.

A minimal FastAPI app on the same paths as the real one. It validates the same bodies with the
same pydantic models (``app.diary.schemas``: the ENTRY envelope, then ``data`` by kind) and
writes them with raw SQL through psycopg 3's ``AsyncConnectionPool``:

- ``POST /app/v1/diary/entries``: one ``INSERT`` of one row; an entry that carries step samples
  (``data.intervals``) is written like a batch: the entry and its samples with ``COPY``;
- ``POST /app/v1/diary/sync``: up to 500 entries, all with one ``COPY`` (plus one for samples).

No authentication, no audit trail, no typed rows, no duplicate detection: only parse, validate,
store and commit. Serve it like the app::

    BENCH_BASELINE_DSN=postgresql://postgres@127.0.0.1:5432/mgdiary_bench_baseline \\
    uvicorn bench.baselines.minimal_app:create_app --factory --workers 1
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from pydantic import ValidationError

from app.diary.schemas import DATA_MODELS, EntryEnvelope, EntryIn, StepsData, SyncRequest

SCHEMA = """
CREATE TABLE IF NOT EXISTS bench_entry (
    client_entry_id uuid PRIMARY KEY,
    kind text NOT NULL,
    recorded_at timestamptz NOT NULL,
    time_zone text NOT NULL,
    data jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS bench_step_interval (
    id bigserial PRIMARY KEY,
    entry_id uuid NOT NULL,
    start_at timestamptz NOT NULL,
    end_at timestamptz NOT NULL,
    count integer NOT NULL
);
"""
TABLES = ("bench_entry", "bench_step_interval")
INSERT_ENTRY = (
    "INSERT INTO bench_entry (client_entry_id, kind, recorded_at, time_zone, data) "
    "VALUES (%s, %s, %s, %s, %s)"
)
COPY_ENTRIES = "COPY bench_entry (client_entry_id, kind, recorded_at, time_zone, data) FROM STDIN"
COPY_INTERVALS = "COPY bench_step_interval (entry_id, start_at, end_at, count) FROM STDIN"


def _invalid(errors: list[Any]) -> JSONResponse:
    return JSONResponse({"errors": errors}, status_code=422)


def _validate(raw: Any) -> tuple[EntryEnvelope, Any]:
    """Envelope, then ``data`` by kind: the app's own models."""
    envelope = raw if isinstance(raw, EntryEnvelope) else EntryEnvelope.model_validate(raw)
    return envelope, DATA_MODELS[envelope.kind].model_validate(envelope.data)


def _row(envelope: EntryEnvelope, data: Any) -> tuple[Any, ...]:
    canonical = json.dumps(data.model_dump(mode="json", exclude_none=True))
    return (envelope.id, envelope.kind, envelope.recorded_at, envelope.time_zone, canonical)


def create_app() -> FastAPI:
    dsn = os.environ.get(
        "BENCH_BASELINE_DSN", "postgresql://postgres@127.0.0.1:5432/mgdiary_bench_baseline"
    )
    max_size = int(os.environ.get("BENCH_BASELINE_POOL_MAX", "20"))
    pool = AsyncConnectionPool(dsn, min_size=max_size // 2, max_size=max_size, open=False)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await pool.open(wait=True)
        try:
            yield
        finally:
            await pool.close()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    async def copy_batch(items: list[tuple[EntryEnvelope, Any]]) -> None:
        async with pool.connection() as conn, conn.cursor() as cur:
            async with cur.copy(COPY_ENTRIES) as copy:
                for envelope, data in items:
                    await copy.write_row(_row(envelope, data))
            samples = [
                (envelope.id, i.start, i.end, i.count)
                for envelope, data in items
                if isinstance(data, StepsData)
                for i in data.intervals or ()
            ]
            if samples:
                async with cur.copy(COPY_INTERVALS) as copy:
                    for sample in samples:
                        await copy.write_row(sample)

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        async with pool.connection() as conn:
            await conn.execute("SELECT 1")
        return {"status": "ok"}

    @app.post("/app/v1/diary/entries", status_code=201)
    async def create_entry(body: EntryIn) -> JSONResponse:
        try:
            envelope, data = _validate(body)
        except ValidationError as exc:
            return _invalid(exc.errors(include_url=False, include_context=False))
        if isinstance(data, StepsData) and data.intervals:
            await copy_batch([(envelope, data)])
        else:
            async with pool.connection() as conn:
                await conn.execute(
                    INSERT_ENTRY,
                    (
                        envelope.id,
                        envelope.kind,
                        envelope.recorded_at,
                        envelope.time_zone,
                        Jsonb(data.model_dump(mode="json", exclude_none=True)),
                    ),
                )
        return JSONResponse({"id": str(envelope.id), "status": "created"}, status_code=201)

    @app.post("/app/v1/diary/sync")
    async def sync(body: SyncRequest) -> JSONResponse:
        items, results = [], []
        for raw in body.entries:
            try:
                envelope, data = _validate(raw)
            except ValidationError as exc:
                errors = exc.errors(include_url=False, include_context=False)
                results.append({"id": str(raw.get("id")), "status": "invalid", "errors": errors})
                continue
            items.append((envelope, data))
            results.append({"id": str(envelope.id), "status": "created"})
        if items:
            await copy_batch(items)
        return JSONResponse({"results": results})

    return app
