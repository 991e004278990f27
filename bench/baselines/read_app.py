"""The read baseline: the same reads as the app's portal, each as one PostgreSQL query.

A minimal FastAPI app on the app's portal paths, reading the app's own tables (the same rows:
``BENCH_BASELINE_DSN`` names the app's database) through psycopg 3's ``AsyncConnectionPool``.
Each route is one SQL statement that builds the JSON in PostgreSQL; the route hands the text
back unchanged. No authentication, no protocol rules, no events, no adherence:

- ``GET /portal/v1/participants/{id}/trends/mg_adl``: the MG-ADL series (diary and clinic
  values, current versions, by date) with ``json_agg``;
- ``GET /portal/v1/studies/{id}/participants``: the first page (``limit``, default 50) by
  subject code, each row with the latest MG-ADL and its change from the baseline value (the
  last value on or before day 0 within the 28 days before it), by index-driven ``LATERAL``
  subqueries;
- ``GET /portal/v1/studies/{id}/outcomes``: the same latest value and change for every
  participant of the study with a day 0, summarised (n, mean, SD, median of the change).

Serve it like the app::

    BENCH_BASELINE_DSN=postgresql://postgres@127.0.0.1:5432/mgdiary_bench \\
    uvicorn bench.baselines.read_app:create_app --factory --workers 1
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import FastAPI, Query
from fastapi.responses import Response
from psycopg_pool import AsyncConnectionPool

#: The default baseline rule's window (``BaselineRule.lookback_days``).
LOOKBACK_DAYS = 28

SERIES = """
SELECT json_build_object(
    'instrument', 'mg_adl',
    'points', coalesce(json_agg(
        json_build_object('date', s.d, 'value', s.v, 'source', s.src) ORDER BY s.d, s.r, s.t
    ), '[]'::json)
)::text
FROM (
    SELECT e.diary_date AS d, m.total AS v, 'diary' AS src, 0 AS r, e.recorded_at AS t
    FROM diary_entry e
    JOIN diary_entry_version dv ON dv.entry_id = e.id AND dv.version = e.current_version
    JOIN mg_adl_response m ON m.version_id = dv.id
    WHERE e.participant_id = %(pid)s AND e.kind = 'mg_adl'
    UNION ALL
    SELECT cv.assessed_date, cv.total, 'clinic', 1, cv.assessed_at
    FROM clinic_assessment ca
    JOIN clinic_assessment_version cv
        ON cv.assessment_id = ca.id AND cv.version = ca.current_version
    WHERE ca.participant_id = %(pid)s AND ca.instrument = 'mg_adl'
) s
"""

#: The newest MG-ADL value of participant ``p`` within ``{bounds}`` (diary or clinic; on one
#: date the clinic value wins, as in the app's series order).
_VALUE = """
LEFT JOIN LATERAL (
    SELECT x.d, x.v FROM (
        (SELECT e.diary_date AS d, m.total AS v, 0 AS r, e.recorded_at AS t
         FROM diary_entry e
         JOIN diary_entry_version dv ON dv.entry_id = e.id AND dv.version = e.current_version
         JOIN mg_adl_response m ON m.version_id = dv.id
         WHERE e.participant_id = p.id AND e.kind = 'mg_adl' {diary_bounds}
         ORDER BY e.diary_date DESC, e.recorded_at DESC LIMIT 1)
        UNION ALL
        (SELECT cv.assessed_date, cv.total, 1, cv.assessed_at
         FROM clinic_assessment_version cv
         JOIN clinic_assessment ca
             ON ca.id = cv.assessment_id AND cv.version = ca.current_version
         WHERE cv.participant_id = p.id AND cv.instrument = 'mg_adl' {clinic_bounds}
         ORDER BY cv.assessed_date DESC, cv.assessed_at DESC LIMIT 1)
    ) x ORDER BY x.d DESC, x.r DESC, x.t DESC LIMIT 1
) {alias} ON true
"""
_LATEST = _VALUE.format(diary_bounds="", clinic_bounds="", alias="l")
_BASELINE = _VALUE.format(
    diary_bounds=f"AND e.diary_date BETWEEN p.day0_date - {LOOKBACK_DAYS} AND p.day0_date",
    clinic_bounds=f"AND cv.assessed_date BETWEEN p.day0_date - {LOOKBACK_DAYS} AND p.day0_date",
    alias="b",
)

PAGE = f"""
SELECT json_build_object(
    'items', coalesce(json_agg(json_build_object(
        'id', p.id,
        'subject_code', p.subject_code,
        'site_id', p.site_id,
        'status', p.status,
        'day0_date', p.day0_date,
        'latest_mg_adl', l.v,
        'latest_mg_adl_date', l.d,
        'mg_adl_baseline', b.v,
        'mg_adl_change_from_baseline', l.v - b.v
    ) ORDER BY p.subject_code, p.id), '[]'::json),
    'next_cursor', null
)::text
FROM (
    SELECT * FROM participant WHERE study_id = %(sid)s
    ORDER BY subject_code, id LIMIT %(limit)s
) p
{_LATEST}
{_BASELINE}
"""

OUTCOMES = f"""
SELECT json_build_object(
    'study_id', %(sid)s::text,
    'participants_with_day0', count(*),
    'participants_with_baseline', count(c.baseline),
    'n', count(c.change),
    'mean_change', avg(c.change),
    'sd', stddev_samp(c.change),
    'median_change', percentile_cont(0.5) WITHIN GROUP (ORDER BY c.change)
)::text
FROM (
    SELECT b.v AS baseline, l.v - b.v AS change
    FROM participant p
    {_LATEST}
    {_BASELINE}
    WHERE p.study_id = %(sid)s AND p.day0_date IS NOT NULL
) c
"""


def create_app() -> FastAPI:
    dsn = os.environ.get("BENCH_BASELINE_DSN", "postgresql://postgres@127.0.0.1:5432/mgdiary_bench")
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

    async def one_json(sql: str, params: dict[str, object]) -> Response:
        async with pool.connection() as conn:
            cur = await conn.execute(sql, params)
            row = await cur.fetchone()
        assert row is not None
        return Response(row[0], media_type="application/json")

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        async with pool.connection() as conn:
            await conn.execute("SELECT 1")
        return {"status": "ok"}

    @app.get("/portal/v1/participants/{participant_id}/trends/mg_adl")
    async def trend(participant_id: uuid.UUID) -> Response:
        return await one_json(SERIES, {"pid": participant_id})

    @app.get("/portal/v1/studies/{study_id}/participants")
    async def participants(
        study_id: uuid.UUID, limit: Annotated[int, Query(ge=1, le=200)] = 50
    ) -> Response:
        return await one_json(PAGE, {"sid": study_id, "limit": limit})

    @app.get("/portal/v1/studies/{study_id}/outcomes")
    async def outcomes(study_id: uuid.UUID) -> Response:
        return await one_json(OUTCOMES, {"sid": study_id})

    return app
