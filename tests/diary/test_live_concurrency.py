"""Concurrent duplicates against a live server (checklist F38): uvicorn with two worker
processes on a committed database, the same entry sent twice at once with the same
Idempotency-Key, many times over.

Policy (api-contract.md, issue 3): one request stores the entry (201); its twin either lost the
race and gets 409 problem+json, or ran after it and gets the replayed 201. Never two rows,
never a 5xx.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2 as httpx
import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.alerts.models import Alert
from app.diary.models import DiaryEntry
from app.safety.models import SafetyFinding, SafetySignal
from tests.factories import bearer, create_participant, create_study, participant_token
from tests.scratch_database import scratch_engines

PAIRS = 40


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def live() -> Iterator[tuple[str, Engine]]:
    with scratch_engines(1) as (engine,):
        port = _free_port()
        env = {
            **os.environ,
            "MGDIARY_DATABASE_URL": engine.url.render_as_string(hide_password=False),
            "MGDIARY_INPROCESS_WORKER": "false",
        }
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "app.main:create_app",
                "--factory",
                "--workers",
                "2",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            env=env,
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the live server did not become ready")
                time.sleep(0.2)
            yield base, engine
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


def _entry() -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "kind": "vitals",
        "recorded_at": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
        "time_zone": "Europe/Berlin",
        "data": {"temperature_c": 37.0, "heart_rate_bpm": 70},
    }


async def _pairs(base: str, headers: dict[str, str]) -> list[tuple[httpx.Response, ...]]:
    limits = httpx.Limits(max_connections=2 * PAIRS)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:

        async def pair() -> tuple[httpx.Response, ...]:
            body = _entry()
            keyed = {**headers, "Idempotency-Key": f"k-{uuid.uuid4()}"}
            return tuple(
                await asyncio.gather(
                    client.post("/app/v1/diary/entries", json=body, headers=keyed),
                    client.post("/app/v1/diary/entries", json=body, headers=keyed),
                )
            )

        return list(await asyncio.gather(*(pair() for _ in range(PAIRS))))


def test_concurrent_duplicates_store_one_entry_each(live: tuple[str, Engine]) -> None:
    base, engine = live
    with Session(engine, expire_on_commit=False) as session:
        study, sites = create_study(session)
        participant, _ = create_participant(
            session, study=study, site=sites["X"], enrolled_on=datetime.now(UTC).date()
        )
        session.commit()
    pairs = asyncio.run(_pairs(base, bearer(participant_token(participant))))

    outcomes: dict[tuple[int, int], int] = {}
    for first, second in pairs:
        statuses = tuple(sorted((first.status_code, second.status_code)))
        outcomes[statuses] = outcomes.get(statuses, 0) + 1  # type: ignore[index]
        assert statuses in {(201, 201), (201, 409)}, (first.text, second.text)
        if statuses == (201, 201):  # the later one replayed the first's answer
            assert first.json() == second.json()
            assert "true" in (
                first.headers.get("idempotent-replayed"),
                second.headers.get("idempotent-replayed"),
            )
        else:
            loser = first if first.status_code == 409 else second
            assert loser.headers["content-type"].startswith("application/problem+json")
    with Session(engine) as session:
        stored = session.exec(
            select(func.count())
            .select_from(DiaryEntry)
            .where(DiaryEntry.participant_id == participant.id)
        ).one()
    assert stored == PAIRS, outcomes


FEVERS = 24


async def _fevers(base: str, headers: dict[str, str]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=FEVERS)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:

        def fever(i: int) -> dict[str, Any]:
            recorded = datetime.now(UTC) - timedelta(minutes=30 - i)
            return {
                **_entry(),
                "recorded_at": recorded.isoformat(),
                "data": {"temperature_c": 38.5},
            }

        return list(
            await asyncio.gather(
                *(
                    client.post("/app/v1/diary/entries", json=fever(i), headers=headers)
                    for i in range(FEVERS)
                )
            )
        )


def test_concurrent_fevers_of_one_participant_make_one_signal(live: tuple[str, Engine]) -> None:
    """Issue 6 item 2 under concurrency: fevers of one participant sent at once to two worker
    processes join one signal with one alert (each write takes the participant's advisory lock
    before it reads the open signals; SQLite serialises writers)."""
    base, engine = live
    with Session(engine, expire_on_commit=False) as session:
        study, sites = create_study(session)
        participant, _ = create_participant(
            session, study=study, site=sites["X"], enrolled_on=datetime.now(UTC).date()
        )
        session.commit()
    answers = asyncio.run(_fevers(base, bearer(participant_token(participant))))
    assert [a.status_code for a in answers] == [201] * FEVERS, [a.text for a in answers]
    with Session(engine) as session:
        signals = session.exec(
            select(SafetySignal).where(SafetySignal.participant_id == participant.id)
        ).all()
        findings = session.exec(
            select(func.count())
            .select_from(SafetyFinding)
            .where(SafetyFinding.participant_id == participant.id)
        ).one()
        alerts = session.exec(
            select(Alert.type).where(Alert.participant_id == participant.id)
        ).all()
    assert len(signals) == 1
    assert findings == FEVERS
    assert list(alerts) == ["safety.signal.raised"]
