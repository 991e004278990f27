"""The load generator: N keep-alive HTTP/1.1 connections, closed loop, one process.

Run by ``bench/run.py`` as its own process (``python -m bench.loadgen SPEC.json``); prints one
JSON object with the counts and latencies. Lean on purpose, since it shares two cores with the
server and PostgreSQL: uvloop, httptools' C parser, a raw ``asyncio.Protocol`` per connection and
bodies from prebuilt byte templates (one ``uuid4`` per entry).

Each connection sends requests back to back until ``duration`` has passed, then stops *issuing*
and waits for the response it has in flight (a drain, bounded by ``timeout``): every request
sent is answered and counted, so rows stored can be checked against 2xx responses exactly.
Throughput is counted over the whole time, drain included.

Read scenarios pass ``gets``: a list of ``[path, token]`` pairs, requested round-robin with
``GET`` (no body); each 2xx counts as one item, and the mean response size is reported.

The mixed scenario of ``bench/run.py`` starts one load generator per request class (sync,
entry, trend, list) with three optional keys:

- ``"barrier": true``: print ``ready`` once the bodies are built, then wait for a line on
  stdin before issuing anything, so that all classes start at the same moment;
- ``"output": PATH``: write the JSON result to PATH instead of stdout;
- ``"latencies": true``: the result also holds every latency (``latencies_ms``), so that the
  classes' latencies can be merged into overall percentiles;
- scenario ``mixed_sync``: ``/app/v1/diary/sync`` with batches of 5-50 mixed entries
  (``bench/payloads.py``); ``items`` counts the ``created`` results and ``items_sent`` the
  entries sent in requests answered 2xx (they must be equal).
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time
from collections import Counter
from typing import Any

import httptools
import uvloop

from bench.payloads import BodyFactory, Participant

PATHS = {
    "entry": "/app/v1/diary/entries",
    "fever": "/app/v1/diary/entries",
    "sync": "/app/v1/diary/sync",
    "mixed_sync": "/app/v1/diary/sync",
    "steps": "/app/v1/diary/entries",
}
CREATED_MARKERS = (b'"status":"created"', b'"status": "created"')


class RequestTimeout(Exception):
    pass


class Connection(asyncio.Protocol):
    """One HTTP/1.1 keep-alive connection with one request in flight at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[tuple[int, bytes, bool]] | None = None
        self.chunks: list[bytes] = []
        self.closed = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(exc or ConnectionResetError("connection closed by the server"))

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        body, self.chunks = b"".join(self.chunks), []
        if waiter is not None and not waiter.done():
            status = self.parser.get_status_code()
            waiter.set_result((status, body, self.parser.should_keep_alive()))

    def _fail(self, exc: BaseException) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    async def request(self, data: bytes, timeout: float) -> tuple[int, bytes, bool]:
        assert self.transport is not None
        waiter: asyncio.Future[tuple[int, bytes, bool]] = self.loop.create_future()
        self.waiter = waiter
        timer = self.loop.call_later(timeout, self._fail, RequestTimeout())
        self.transport.write(data)
        try:
            return await waiter
        finally:
            timer.cancel()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    scenario = spec["scenario"]
    host, port = spec["host"], int(spec["port"])
    gets: list[list[str]] | None = spec.get("gets")
    if gets:
        # Reads: prebuilt GET requests, round-robin; no body and nothing to count but 2xx.
        requests = [
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Authorization: Bearer {token}\r\nAccept: application/json\r\n\r\n"
            ).encode()
            for path, token in gets
        ]
        count = len(requests)

        def make_request(index: int) -> tuple[bytes, int]:
            return requests[index], 1
    else:
        participants = [Participant(**p) for p in spec["participants"]]
        factory = BodyFactory(scenario, participants, seed=int(spec.get("seed", 1)))
        path = spec.get("path") or PATHS[scenario]
        heads = [
            (
                f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Authorization: Bearer {p.token}\r\nContent-Type: application/json\r\n"
                "Content-Length: "
            ).encode()
            for p in participants
        ]
        count = len(participants)

        def make_request(index: int) -> tuple[bytes, int]:
            body = factory.make(index)
            head = heads[index] + str(len(body)).encode() + b"\r\n\r\n"
            return head + body, factory.last_items

    duration, timeout = float(spec["duration"]), float(spec.get("timeout", 60))
    connections = int(spec["connections"])
    count_created = scenario in ("sync", "mixed_sync")

    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    samples: list[str] = []
    created_items = 0
    sent_items = 0
    response_bytes = 0
    next_participant = 0

    async def connect() -> Connection:
        _, protocol = await loop.create_connection(lambda: Connection(loop), host, port)
        return protocol

    async def worker(conns: list[Connection], deadline: float) -> None:
        nonlocal created_items, sent_items, response_bytes, next_participant
        conn = await connect()
        conns.append(conn)
        while time.perf_counter() < deadline:
            index = next_participant
            next_participant = (next_participant + 1) % count
            data, items = make_request(index)
            started = time.perf_counter()
            try:
                status, payload, keep_alive = await conn.request(data, timeout)
            except (RequestTimeout, OSError, httptools.HttpParserError) as exc:
                errors[type(exc).__name__] += 1
                conn.close()
                conn = await connect()
                conns.append(conn)
                continue
            latencies.append(time.perf_counter() - started)
            statuses[status] += 1
            if 200 <= status < 300:
                response_bytes += len(payload)
                sent_items += items
                if count_created:
                    created_items += sum(payload.count(m) for m in CREATED_MARKERS)
            elif len(samples) < 3:
                samples.append(f"{status} {payload[:400].decode(errors='replace')}")
            if not keep_alive:
                conn.close()
                conn = await connect()
                conns.append(conn)

    conns: list[Connection] = []
    if spec.get("barrier"):
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        await loop.run_in_executor(None, sys.stdin.readline)
    gc.collect()
    gc.disable()
    cpu_started = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(worker(conns, started + duration) for _ in range(connections)))
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    gc.enable()
    for conn in conns:
        conn.close()

    ok = sum(n for s, n in statuses.items() if 200 <= s < 300)
    if not count_created:
        created_items = ok * (1 if gets else BodyFactory.ITEMS_PER_REQUEST[scenario])
    ordered = sorted(latencies)
    ms = 1000.0
    result: dict[str, Any] = {
        "scenario": scenario,
        "connections": connections,
        "duration": duration,
        "elapsed": elapsed,
        "requests": len(latencies) + sum(errors.values()),
        "ok": ok,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "errors": dict(errors),
        "non_2xx_samples": samples,
        "items": created_items,
        "items_sent": sent_items,
        "bytes_per_response": response_bytes / ok if ok else 0,
        "req_per_s": ok / elapsed,
        "items_per_s": created_items / elapsed,
        "latency_ms": {
            "p50": (percentile(ordered, 50) or 0) * ms,
            "p95": (percentile(ordered, 95) or 0) * ms,
            "p99": (percentile(ordered, 99) or 0) * ms,
            "max": (ordered[-1] if ordered else 0) * ms,
            "mean": (sum(ordered) / len(ordered) if ordered else 0) * ms,
        },
        "driver_cpu_s": cpu,
    }
    if spec.get("latencies"):
        result["latencies_ms"] = [round(v * ms, 3) for v in latencies]
    return result


def main(argv: list[str]) -> int:
    with open(argv[1], encoding="utf-8") as fh:
        spec = json.load(fh)
    result = uvloop.run(run(spec))
    if spec.get("output"):
        with open(spec["output"], "w", encoding="utf-8") as fh:
            json.dump(result, fh)
        return 0
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
