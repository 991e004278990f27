"""``make bench``: the app against its baseline on PostgreSQL, and the SQLite default under load.

Serves the app and the baseline (``bench/baselines/minimal_app.py``) with uvicorn, one worker
each, and drives them from a separate process (``bench/loadgen.py``) with ``--connections``
keep-alive connections for ``--duration`` seconds per run, in ``--rounds`` interleaved rounds
(baseline then app, then app then baseline, ...). Reports per round and as the median of the
per-round ratios; checks after every run that the rows stored equal the 2xx responses and that
no request failed. Exit status: 0 when every check passed, 1 when a correctness check failed,
3 when the single-entry ratio is below the regression floor, 2 on a usage or setup error.

The ``mixed`` scenario (issue 8, part of the default set, run after the reads) is the evening
sync peak: four request classes at the same time, each from its own load generator process
(started together through a barrier, joined at the end), over ``--mixed-connections``
(default ``--connections``) split by ``--mixed-mix`` (default 14 / 8 / 5 / 5 of 32):

- ``sync``: participants' ``POST /app/v1/diary/sync`` of 5-50 entries (MG-ADL and vitals of the
  last two days, about 1 in 40 a fever that the safety rules act on);
- ``entry``: single-entry ``POST /app/v1/diary/entries`` (the two write classes go round-robin
  over disjoint shares of the ``--participants``, in proportion to their connections);
- ``trend``: an investigator's ``GET /portal/v1/participants/{id}/trends/mg_adl``, round-robin
  over the trend participant and 50 cohort participants;
- ``list``: ``GET /portal/v1/studies/{id}/participants`` (the cohort's first page of 50).

Its baseline is the write baseline for the writes plus the read baseline for the reads, both
under load in the same run; rounds interleave with the app's as elsewhere, each run
``--mixed-duration`` (default ``--duration``) seconds. Reported per class and overall, for the
app beside its baseline: req/s, rows/s, p50/p95/p99, errors and 5xx (any is a failed check),
each server's peak RSS during the run (VmHWM after a reset, cross-checked by sampling VmRSS)
and PostgreSQL's CPU. Rows stored must equal the entries created in 2xx responses. It writes
as the ``--participants`` participants and reads the read scenarios' data (``--cohort``,
``--cohort-days``, ``--trend-days``), seeded once for both; run alone, smaller values set up
faster (``--cohort 200 --cohort-days 120 --trend-days 180``: seconds instead of about a minute).
``--profile`` does not profile it.

    .venv/bin/python -m bench.run                 # everything (what `make bench` runs)
    .venv/bin/python -m bench.run --quick         # one round: a smoke run
    .venv/bin/python -m bench.run --scenarios entry,sqlite --rounds 3 --duration 5
    .venv/bin/python -m bench.run --profile       # also one py-spy profile of the app per scenario
    .venv/bin/python -m bench.run --scenarios mixed --rounds 1 --duration 8 \
        --cohort 200 --cohort-days 120 --trend-days 180   # the mixed load alone, small data

See docs/performance.md for the figures and what they mean.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import platform
import re
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
OUT_DIR = ROOT / "var" / "bench"
JWT_SECRET = "mgdiary-bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
TOKEN_TTL_SECONDS = 4 * 3600
PG_SCENARIOS = ("entry", "sync", "steps")
BATCH_SCENARIOS = ("sync", "steps")
#: Portal reads (issue 4, bench/reads.py), against bench/baselines/read_app.py.
READ_SCENARIOS = ("trend", "list", "outcomes")
#: The mixed load (issue 8): its request classes, run at the same time, and their loads.
MIXED_CLASSES = ("sync", "entry", "trend", "list")
MIXED_WRITE_CLASSES = ("sync", "entry")
MIXED_LOADS = {"sync": "mixed_sync", "entry": "entry", "trend": "trend", "list": "list"}
MIXED_DEFAULT_MIX = "sync=45,entry=25,trend=15,list=15"
ALL_SCENARIOS = (*PG_SCENARIOS, "sqlite", *READ_SCENARIOS, "mixed")

#: Targets from the issue. Ratios are app / baseline; higher is better.
ENTRY_TARGET, ENTRY_REGRESSION = 0.30, 0.15
BATCH_TARGET, BATCH_P99_LIMIT_MS = 0.25, 500.0
SQLITE_P99_LIMIT_MS = 100.0
#: Issue 4: trend ratio >= 0.3 and p50 < 50 ms (one connection); a participant-list page
#: under 150 ms; outcomes within 15x of the LATERAL baseline (a ratio of at least 1/15).
TREND_TARGET, TREND_P50_LIMIT_MS = 0.30, 50.0
LIST_P50_LIMIT_MS = 150.0
OUTCOMES_MAX_SLOWDOWN = 15.0

SCENARIO_TITLES = {
    "entry": "single-entry POST /app/v1/diary/entries",
    "sync": "500-entry POST /app/v1/diary/sync",
    "steps": "1,440-sample steps entry POST /app/v1/diary/entries",
    "sqlite": "single-entry POST on the SQLite default",
    "trend": "GET /portal/v1/participants/{id}/trends/mg_adl (2 years of daily entries)",
    "list": "GET /portal/v1/studies/{id}/participants (page of 50; 1,000 x 1 year)",
    "outcomes": "GET /portal/v1/studies/{id}/outcomes (1,000 participants x 1 year)",
    "mixed": "mixed load (evening sync peak): syncs of 5-50 entries and single entries while "
    "investigators read trends and the participant list",
}
#: What a "row" is per scenario (rows/s = items/s).
ITEM_NAMES = {
    "entry": "entries",
    "sync": "entries",
    "steps": "samples",
    "sqlite": "entries",
    **dict.fromkeys(READ_SCENARIOS, "responses"),
    "mixed": "entries",
}


# --- processes ----------------------------------------------------------------------------

_children: list[subprocess.Popen[bytes]] = []


def _stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(5)


def _stop_all_children() -> None:
    while _children:
        _stop_process(_children.pop())


def _on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def _spawn(args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    # Own process group: the server and its threads die together, and a terminal's Ctrl-C
    # reaches only us (we stop the children in order).
    proc = subprocess.Popen(args, start_new_session=True, **kwargs)
    _children.append(proc)
    return proc


def _forget(proc: subprocess.Popen[bytes]) -> None:
    if proc in _children:
        _children.remove(proc)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    name: str
    app_ref: str
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    workers: int = 1
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def start(self) -> None:
        self.log_path = OUT_DIR / f"server-{self.name}.log"
        log = self.log_path.open("wb")
        self.proc = _spawn(
            [
                str(VENV_BIN / "uvicorn"),
                self.app_ref,
                "--factory",
                "--workers",
                str(self.workers),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60.0) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.port}/readyz"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SetupError(f"{self.name} exited during start-up:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise SetupError(f"{self.name} was not ready within {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None:
            _stop_process(self.proc)
            _forget(self.proc)
            self.proc = None


class SetupError(RuntimeError):
    pass


# --- CPU accounting -----------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _proc_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process, all its threads included."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0, 0.0
    return int(fields[11]) / _TICK, int(fields[12]) / _TICK


def _proc_cpu(pid: int) -> float:
    return sum(_proc_times(pid))


def _postgres_cpu() -> dict[int, float]:
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    out[int(entry.name)] = _proc_cpu(int(entry.name))
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
    return out


def _machine_cpu() -> tuple[float, float]:
    parts = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + parts[4]
    return sum(parts) / _TICK, idle / _TICK


@dataclass
class CpuSnapshot:
    server: tuple[float, float]
    postgres: dict[int, float]
    machine: tuple[float, float]
    wall: float

    @classmethod
    def take(cls, server_pid: int) -> CpuSnapshot:
        return cls(_proc_times(server_pid), _postgres_cpu(), _machine_cpu(), time.monotonic())

    def since(self, before: CpuSnapshot) -> dict[str, float]:
        wall = self.wall - before.wall
        pg = sum(v - before.postgres.get(pid, 0.0) for pid, v in self.postgres.items())
        total = self.machine[0] - before.machine[0]
        idle = self.machine[1] - before.machine[1]
        return {
            "server_cpu_pct": 100 * (sum(self.server) - sum(before.server)) / wall,
            "server_sys_cpu_pct": 100 * (self.server[1] - before.server[1]) / wall,
            "postgres_cpu_pct": 100 * pg / wall,
            "machine_busy_pct": 100 * (total - idle) / total if total else 0.0,
        }


# --- databases ----------------------------------------------------------------------------


def _check_db_name(name: str) -> None:
    if name.startswith("mgdiary_test") or "bench" not in name or not re.fullmatch(r"\w+", name):
        raise SetupError(f"refusing to use database {name!r}: the name must contain 'bench'")


def recreate_database(pg: str, name: str) -> None:
    _check_db_name(name)
    with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


class RowCounter:
    """Counts the rows a target stores (between runs, while its server is idle)."""

    def __init__(self, *, pg_dsn: str | None = None, sqlite_path: Path | None = None) -> None:
        self.pg = psycopg.connect(pg_dsn, autocommit=True) if pg_dsn else None
        self.sqlite_path = sqlite_path

    def count(self, table: str) -> int:
        if self.pg is not None:
            row = self.pg.execute(f"SELECT count(*) FROM {table}").fetchone()
            assert row is not None
            return int(row[0])
        assert self.sqlite_path is not None
        with sqlite3.connect(self.sqlite_path) as conn:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    def checkpoint(self) -> None:
        if self.pg is not None:
            self.pg.execute("CHECKPOINT")

    def close(self) -> None:
        if self.pg is not None:
            self.pg.close()


@dataclass
class Target:
    """A server under load plus how to count what it stored."""

    kind: str  # "app", "baseline" or "sqlite"
    server: Server
    counter: RowCounter
    entry_table: str
    sample_table: str


# --- runs ---------------------------------------------------------------------------------


@dataclass
class Options:
    rounds: int
    duration: float
    warmup: float
    connections: int
    timeout: float
    probe_duration: float = 0.0
    participants: list[dict[str, Any]] = field(default_factory=list)
    read_connections: int = 1
    #: Per read scenario: the ``[path, token]`` pairs the load generator requests.
    reads: dict[str, list[list[str]]] = field(default_factory=dict)
    #: The mixed scenario: seconds per run, connections per class, the read classes' GETs.
    mixed_duration: float = 0.0
    mixed_connections: dict[str, int] = field(default_factory=dict)
    mixed_gets: dict[str, list[list[str]]] = field(default_factory=dict)


def drive(
    target: Target,
    scenario: str,
    opts: Options,
    *,
    duration: float,
    seed: int,
    connections: int | None = None,
) -> dict[str, Any]:
    """One run: the load generator in its own process, then the correctness checks."""
    load = "entry" if scenario == "sqlite" else scenario
    read = scenario in READ_SCENARIOS
    spec: dict[str, Any] = {
        "scenario": load,
        "host": "127.0.0.1",
        "port": target.server.port,
        "duration": duration,
        "connections": connections or opts.connections,
        "timeout": opts.timeout,
        "seed": seed,
        "participants": [] if read else opts.participants,
    }
    if read:
        spec["gets"] = opts.reads[scenario]
    entries_before = 0 if read else target.counter.count(target.entry_table)
    samples_before = target.counter.count(target.sample_table) if load == "steps" else 0
    target.counter.checkpoint()
    with tempfile.NamedTemporaryFile("w", suffix=".json", dir=OUT_DIR, delete=False) as fh:
        json.dump(spec, fh)
        spec_path = fh.name
    try:
        before = CpuSnapshot.take(target.server.pid)
        proc = _spawn(
            [sys.executable, "-m", "bench.loadgen", spec_path],
            cwd=ROOT,
            stdout=subprocess.PIPE,
        )
        try:
            out, _ = proc.communicate(timeout=duration + opts.timeout + 60)
        except subprocess.TimeoutExpired as exc:
            raise SetupError("the load generator did not finish in time") from exc
        finally:
            _stop_process(proc)
            _forget(proc)
        after = CpuSnapshot.take(target.server.pid)
    finally:
        os.unlink(spec_path)
    if proc.returncode != 0:
        raise SetupError(f"the load generator failed (exit {proc.returncode})")
    result: dict[str, Any] = json.loads(out)
    result.update(after.since(before))
    result["driver_cpu_pct"] = 100 * result["driver_cpu_s"] / result["elapsed"]
    entries = 0 if read else target.counter.count(target.entry_table) - entries_before
    problems = []
    if not target.server.alive():
        problems.append(f"the {target.server.name} server died:\n{target.server.log_tail()}")
    failed = result["requests"] - result["ok"]
    if failed:
        problems.append(
            f"{failed} requests failed: statuses {result['statuses']}, errors {result['errors']}"
            + "".join(f"\n    {s}" for s in result["non_2xx_samples"])
        )
    if result["ok"] == 0:
        problems.append("no request succeeded")
    if read:
        result["rows_stored"] = {}  # reads store nothing; every request must answer 2xx
    elif load == "steps":
        samples = target.counter.count(target.sample_table) - samples_before
        result["rows_stored"] = {"entries": entries, "samples": samples}
        if entries != result["ok"] or samples != result["items"]:
            problems.append(
                f"stored {entries} entries and {samples} samples for {result['ok']} 2xx "
                f"responses ({result['items']} samples)"
            )
    else:
        result["rows_stored"] = {"entries": entries}
        per_request = 500 if load == "sync" else 1
        if result["items"] != result["ok"] * per_request:
            problems.append(
                f"{result['items']} entries created in {result['ok']} 2xx responses, "
                f"expected {per_request} each"
            )
        if entries != result["items"]:
            problems.append(
                f"stored {entries} entries for {result['items']} created in 2xx responses"
            )
    result["check"] = "ok" if not problems else "FAILED"
    result["problems"] = problems
    return result


def _fmt_run(kind: str, label: str, r: dict[str, Any]) -> str:
    lat = r["latency_ms"]
    return (
        f"  {label:<10} {kind:<8} {r['req_per_s']:8.1f} req/s {r['items_per_s']:10.0f} rows/s "
        f"p50 {lat['p50']:7.1f} p95 {lat['p95']:7.1f} p99 {lat['p99']:7.1f} ms  "
        f"ok {r['ok']:6d} err {r['requests'] - r['ok']:d}  "
        f"cpu srv {r['server_cpu_pct']:3.0f}% (sys {r['server_sys_cpu_pct']:2.0f}%) "
        f"pg {r['postgres_cpu_pct']:3.0f}% "
        f"drv {r['driver_cpu_pct']:3.0f}%  check {r['check']}"
    )


def _fmt_freshness(f: dict[str, Any]) -> str:
    return (
        f"  outcomes, one request each (app / baseline): first {f['first_app_ms']:.0f} / "
        f"{f['first_baseline_ms']:.0f} ms; after a new entry for {f['changed_participants']} "
        f"participants {f['after_change_app_ms']:.0f} / {f['after_change_baseline_ms']:.0f} ms; "
        f"repeat {f['repeat_app_ms']:.0f} / {f['repeat_baseline_ms']:.0f} ms"
    )


def run_pg_scenario(
    scenario: str, app: Target, baseline: Target, opts: Options, failures: list[str]
) -> dict[str, Any]:
    print(f"\n== {SCENARIO_TITLES[scenario]}: app vs baseline", flush=True)
    runs: dict[str, list[dict[str, Any]]] = {"app": [], "baseline": []}
    # Reads run at --read-connections (default 1: one request's own latency).
    conns = opts.read_connections if scenario in READ_SCENARIOS else None

    def one(
        target: Target,
        label: str,
        duration: float,
        seed: int,
        keep: bool,
        connections: int | None = None,
    ) -> dict[str, Any]:
        result = drive(
            target, scenario, opts, duration=duration, seed=seed, connections=connections
        )
        print(_fmt_run(target.kind, label, result), flush=True)
        for p in result["problems"]:
            failures.append(f"{scenario}/{target.kind}/{label}: {p}")
            print(f"    CHECK FAILED: {p}", flush=True)
        if keep:
            runs[target.kind].append(result)
        return result

    if opts.warmup > 0:
        for target in (baseline, app):
            one(target, "warm-up", opts.warmup, seed=0, keep=False, connections=conns)
    for rnd in range(opts.rounds):
        order = (baseline, app) if rnd % 2 == 0 else (app, baseline)
        for target in order:
            one(
                target,
                f"round {rnd + 1}",
                opts.duration,
                seed=rnd + 1,
                keep=True,
                connections=conns,
            )
    rows = []
    for rnd, (a, b) in enumerate(zip(runs["app"], runs["baseline"], strict=True)):
        rows.append(
            {
                "round": rnd + 1,
                "app_items_per_s": a["items_per_s"],
                "baseline_items_per_s": b["items_per_s"],
                "ratio": a["items_per_s"] / b["items_per_s"] if b["items_per_s"] else 0.0,
                "app_p99_ms": a["latency_ms"]["p99"],
                "baseline_p99_ms": b["latency_ms"]["p99"],
                "p99_ratio": a["latency_ms"]["p99"] / b["latency_ms"]["p99"]
                if b["latency_ms"]["p99"]
                else 0.0,
            }
        )
    unloaded = {}
    if scenario in BATCH_SCENARIOS and opts.probe_duration > 0:
        # Little's law: at 32 connections a batch's latency is mostly queueing (32 / batches
        # per second), whatever the code does. One connection shows one batch's own time.
        for target in (baseline, app):
            result = one(target, "1 conn", opts.probe_duration, seed=77, keep=False, connections=1)
            unloaded[target.kind] = {
                "req_per_s": result["req_per_s"],
                "p50_ms": result["latency_ms"]["p50"],
                "p99_ms": result["latency_ms"]["p99"],
                "max_ms": result["latency_ms"]["max"],
            }
    summary = {
        "scenario": scenario,
        "connections": conns or opts.connections,
        "unloaded_1_connection": unloaded,
        "rounds": rows,
        "median_ratio": statistics.median(r["ratio"] for r in rows),
        "median_p99_ratio": statistics.median(r["p99_ratio"] for r in rows),
        "app": _medians(runs["app"]),
        "baseline": _medians(runs["baseline"]),
        "runs": runs,
    }
    return summary


def _medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def med(key: str) -> float:
        return float(statistics.median(r[key] for r in runs))

    def med_lat(key: str) -> float:
        return float(statistics.median(r["latency_ms"][key] for r in runs))

    return {
        "req_per_s": med("req_per_s"),
        "items_per_s": med("items_per_s"),
        "bytes_per_response": med("bytes_per_response"),
        "p50_ms": med_lat("p50"),
        "p95_ms": med_lat("p95"),
        "p99_ms": med_lat("p99"),
        "max_ms": max(r["latency_ms"]["max"] for r in runs),
        "server_cpu_pct": med("server_cpu_pct"),
        "server_sys_cpu_pct": med("server_sys_cpu_pct"),
        "postgres_cpu_pct": med("postgres_cpu_pct"),
        "driver_cpu_pct": med("driver_cpu_pct"),
        "requests_ok": sum(r["ok"] for r in runs),
        "requests_failed": sum(r["requests"] - r["ok"] for r in runs),
    }


def run_sqlite(target: Target, opts: Options, failures: list[str]) -> dict[str, Any]:
    print(f"\n== {SCENARIO_TITLES['sqlite']}", flush=True)
    runs = []
    if opts.warmup > 0:
        drive_and_print(target, opts, "warm-up", opts.warmup, 0, failures)
    for rnd in range(opts.rounds):
        runs.append(
            drive_and_print(target, opts, f"round {rnd + 1}", opts.duration, rnd + 1, failures)
        )
    return {
        "scenario": "sqlite",
        "rounds": [
            {"round": i + 1, "req_per_s": r["req_per_s"], "p99_ms": r["latency_ms"]["p99"]}
            for i, r in enumerate(runs)
        ],
        "app": _medians(runs),
        "runs": {"app": runs},
    }


def drive_and_print(
    target: Target, opts: Options, label: str, duration: float, seed: int, failures: list[str]
) -> dict[str, Any]:
    result = drive(target, "sqlite", opts, duration=duration, seed=seed)
    print(_fmt_run("sqlite", label, result), flush=True)
    for p in result["problems"]:
        failures.append(f"sqlite/{label}: {p}")
        print(f"    CHECK FAILED: {p}", flush=True)
    return result


# --- mixed load ---------------------------------------------------------------------------


def parse_mix(text: str) -> dict[str, int]:
    """``sync=45,entry=25,trend=15,list=15`` -> weights per class (all four, positive)."""
    weights: dict[str, int] = {}
    for part in text.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep or name not in MIXED_CLASSES or not value.isdigit() or int(value) < 1:
            raise ValueError(f"bad class weight {part.strip()!r}")
        weights[name] = int(value)
    if set(weights) != set(MIXED_CLASSES):
        raise ValueError(f"give a weight for each of {', '.join(MIXED_CLASSES)}")
    return weights


def split_connections(total: int, weights: dict[str, int]) -> dict[str, int]:
    """``total`` connections in proportion to ``weights`` (largest remainder, each >= 1)."""
    whole = sum(weights.values())
    shares = {name: total * w / whole for name, w in weights.items()}
    out = {name: max(1, int(share)) for name, share in shares.items()}
    by_remainder = sorted(shares, key=lambda n: shares[n] - int(shares[n]), reverse=True)
    for name in by_remainder:
        if sum(out.values()) >= total:
            break
        out[name] += 1
    while sum(out.values()) > total:  # the minimum of 1 took some from the largest
        out[max(out, key=out.__getitem__)] -= 1
    return out


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (uvicorn with ``--workers N`` > 1 serves from children)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, []))
    return out


def _status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except (OSError, IndexError, ValueError):
        pass
    return 0


class MemoryWatch:
    """Peak resident memory of each server (its process tree) during one run.

    Before the run each process's high-water mark is reset (``5`` to ``/proc/PID/clear_refs``);
    after it, ``VmHWM`` is that run's peak. A thread also samples ``VmRSS`` every 0.1 s: a
    cross-check, and the figure used when the kernel refuses the reset.
    """

    def __init__(self, servers: list[Server]) -> None:
        self.trees = {s.name: _process_tree(s.pid) for s in servers}
        self.sampled = dict.fromkeys(self.trees, 0)
        self.start_kib = dict.fromkeys(self.trees, 0)
        self.reset = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _rss(self, name: str) -> int:
        return sum(_status_kib(pid, "VmRSS:") for pid in self.trees[name])

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            for name in self.trees:
                self.sampled[name] = max(self.sampled[name], self._rss(name))

    def start(self) -> None:
        for name, pids in self.trees.items():
            for pid in pids:
                try:
                    Path(f"/proc/{pid}/clear_refs").write_text("5")
                except OSError:
                    self.reset = False
            self.start_kib[name] = self.sampled[name] = self._rss(name)
        self._thread.start()

    def stop(self) -> dict[str, dict[str, Any]]:
        self._stop.set()
        self._thread.join()
        out = {}
        for name, pids in self.trees.items():
            end = self._rss(name)
            sampled = max(self.sampled[name], end)
            hwm = sum(_status_kib(pid, "VmHWM:") for pid in pids)
            peak = hwm if self.reset and hwm else sampled
            out[name] = {
                "processes": len(pids),
                "rss_start_mib": round(self.start_kib[name] / 1024, 1),
                "rss_end_mib": round(end / 1024, 1),
                "peak_rss_mib": round(peak / 1024, 1),
                "peak_rss_sampled_mib": round(sampled / 1024, 1),
                "peak_source": "VmHWM" if self.reset and hwm else "VmRSS sampled",
            }
        return out


@dataclass
class MixedTarget:
    """Where the mixed load's classes go: the app for all four, or the write baseline for the
    writes and the read baseline for the reads."""

    kind: str  # "app" or "baseline"
    ports: dict[str, int]
    servers: list[Server]
    counter: RowCounter
    entry_table: str


def _class_figures(r: dict[str, Any], write: bool) -> dict[str, Any]:
    failed = r["requests"] - r["ok"]
    status_5xx = sum(n for s, n in r["statuses"].items() if int(s) >= 500)
    return {
        **r,
        "failed": failed,
        "status_5xx": status_5xx,
        "error_rate": failed / r["requests"] if r["requests"] else 0.0,
        "rows_per_s": r["items_per_s"] if write else 0.0,
    }


def mixed_writers(
    participants: list[dict[str, Any]], connections: dict[str, int]
) -> dict[str, list[dict[str, Any]]]:
    """The write classes' participants: disjoint sets in proportion to their connections (a
    phone syncs a batch or sends one entry, not both at once; and two classes going round-robin
    over the same participants at similar rates would keep meeting on one participant's lock)."""
    sync, entry = connections["sync"], connections["entry"]
    k = round(len(participants) * sync / (sync + entry))
    k = min(max(k, 1), len(participants) - 1)
    return {"sync": participants[:k], "entry": participants[k:]}


def drive_mixed(
    target: MixedTarget, opts: Options, *, duration: float, seed: int
) -> dict[str, Any]:
    """One mixed run: a load generator per class, started together (a barrier), joined; then
    the checks. Figures per class and overall, CPU and each server's peak RSS."""
    from bench.loadgen import percentile

    writers = mixed_writers(opts.participants, opts.mixed_connections)
    entries_before = target.counter.count(target.entry_table)
    target.counter.checkpoint()
    paths: list[str] = []
    procs: dict[str, subprocess.Popen[bytes]] = {}
    outputs: dict[str, str] = {}
    try:
        for n, name in enumerate(MIXED_CLASSES):
            spec: dict[str, Any] = {
                "scenario": MIXED_LOADS[name],
                "host": "127.0.0.1",
                "port": target.ports[name],
                "duration": duration,
                "connections": opts.mixed_connections[name],
                "timeout": opts.timeout,
                "seed": seed * 10 + n,
                "participants": writers.get(name, []),
                "barrier": True,
                "latencies": True,
            }
            if name not in MIXED_WRITE_CLASSES:
                spec["gets"] = opts.mixed_gets[name]
            with tempfile.NamedTemporaryFile(
                "w", suffix=f"-{name}.json", dir=OUT_DIR, delete=False
            ) as fh:
                outputs[name] = fh.name.replace(".json", ".out.json")
                spec["output"] = outputs[name]
                json.dump(spec, fh)
                paths.append(fh.name)
            procs[name] = _spawn(
                [sys.executable, "-m", "bench.loadgen", fh.name],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
        for name, proc in procs.items():
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != b"ready":
                proc.wait(10)
                raise SetupError(f"the {name} load generator failed (exit {proc.returncode})")
        memory = MemoryWatch(target.servers)
        memory.start()
        before = CpuSnapshot.take(target.servers[0].pid)
        servers_before = {s.name: _proc_times(s.pid) for s in target.servers}
        for proc in procs.values():
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            proc.stdin.flush()
        deadline = time.monotonic() + duration + opts.timeout + 60
        for name, proc in procs.items():
            try:
                proc.wait(max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired as exc:
                raise SetupError(f"the {name} load generator did not finish in time") from exc
            if proc.returncode != 0:
                raise SetupError(f"the {name} load generator failed (exit {proc.returncode})")
        after = CpuSnapshot.take(target.servers[0].pid)
        servers_after = {s.name: _proc_times(s.pid) for s in target.servers}
        mem = memory.stop()
        raw = {name: json.loads(Path(outputs[name]).read_text()) for name in MIXED_CLASSES}
    finally:
        for proc in procs.values():
            _stop_process(proc)
            _forget(proc)
        for path in [*paths, *outputs.values()]:
            Path(path).unlink(missing_ok=True)

    latencies: list[float] = []
    classes = {}
    for name in MIXED_CLASSES:
        latencies.extend(raw[name].pop("latencies_ms"))
        classes[name] = _class_figures(raw[name], name in MIXED_WRITE_CLASSES)
    latencies.sort()
    elapsed = max(c["elapsed"] for c in classes.values())
    cpu = after.since(before)
    wall = after.wall - before.wall
    cpu["server_cpu_pct"] = sum(
        100 * (sum(servers_after[n]) - sum(servers_before[n])) / wall for n in servers_after
    )
    cpu["server_sys_cpu_pct"] = sum(
        100 * (servers_after[n][1] - servers_before[n][1]) / wall for n in servers_after
    )
    requests = sum(c["requests"] for c in classes.values())
    failed = sum(c["failed"] for c in classes.values())
    overall = {
        "connections": sum(opts.mixed_connections.values()),
        "elapsed": elapsed,
        "requests": requests,
        "ok": sum(c["ok"] for c in classes.values()),
        "failed": failed,
        "status_5xx": sum(c["status_5xx"] for c in classes.values()),
        "error_rate": failed / requests if requests else 0.0,
        "req_per_s": sum(c["req_per_s"] for c in classes.values()),
        "rows_per_s": sum(c["rows_per_s"] for c in classes.values()),
        "latency_ms": {
            "p50": percentile(latencies, 50) or 0.0,
            "p95": percentile(latencies, 95) or 0.0,
            "p99": percentile(latencies, 99) or 0.0,
            "max": latencies[-1] if latencies else 0.0,
        },
        "driver_cpu_pct": 100 * sum(c["driver_cpu_s"] for c in classes.values()) / elapsed,
        **cpu,
        "peak_rss_mib": round(sum(m["peak_rss_mib"] for m in mem.values()), 1),
    }

    problems = []
    for server in target.servers:
        if not server.alive():
            problems.append(f"the {server.name} server died:\n{server.log_tail()}")
    for name, c in classes.items():
        if c["failed"]:
            problems.append(
                f"{name}: {c['failed']} requests failed ({c['status_5xx']} 5xx): statuses "
                f"{c['statuses']}, errors {c['errors']}"
                + "".join(f"\n    {s}" for s in c["non_2xx_samples"])
            )
        if c["ok"] == 0:
            problems.append(f"{name}: no request succeeded")
    sync, entry = classes["sync"], classes["entry"]
    if sync["items"] != sync["items_sent"]:
        problems.append(
            f"sync: {sync['items']} entries created in 2xx responses carrying "
            f"{sync['items_sent']} entries"
        )
    if entry["items"] != entry["ok"]:
        problems.append(f"entry: {entry['items']} entries created in {entry['ok']} 2xx responses")
    entries = target.counter.count(target.entry_table) - entries_before
    if entries != sync["items"] + entry["items"]:
        problems.append(
            f"stored {entries} entries for {sync['items']} (sync) + {entry['items']} (entry) "
            "created in 2xx responses"
        )
    return {
        "classes": classes,
        "overall": overall,
        "memory": mem,
        "rows_stored": {"entries": entries},
        "check": "ok" if not problems else "FAILED",
        "problems": problems,
    }


def _fmt_mixed_run(kind: str, label: str, r: dict[str, Any]) -> str:
    lines = []
    rows = [(name, r["classes"][name]) for name in MIXED_CLASSES] + [("all", r["overall"])]
    for n, (name, c) in enumerate(rows):
        lat = c["latency_ms"]
        head = f"  {label:<10} {kind:<8}" if n == 0 else " " * 21
        rows_s = "-" if name in ("trend", "list") else f"{c['rows_per_s']:.0f}"
        lines.append(
            f"{head} {name:<5} {c['req_per_s']:8.1f} req/s {rows_s:>8} rows/s "
            f"p50 {lat['p50']:7.1f} p95 {lat['p95']:7.1f} p99 {lat['p99']:7.1f} ms  "
            f"ok {c['ok']:6d} err {c['failed']:d} 5xx {c['status_5xx']:d}"
        )
    o = r["overall"]
    memory = ", ".join(f"{name} {m['peak_rss_mib']:.0f}" for name, m in r["memory"].items())
    lines.append(
        f"{' ' * 27}peak RSS {memory} MiB  cpu srv {o['server_cpu_pct']:3.0f}% "
        f"(sys {o['server_sys_cpu_pct']:2.0f}%) pg {o['postgres_cpu_pct']:3.0f}% "
        f"drv {o['driver_cpu_pct']:3.0f}%  stored {r['rows_stored']['entries']}  "
        f"check {r['check']}"
    )
    return "\n".join(lines)


def _mixed_medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def figures(items: list[dict[str, Any]]) -> dict[str, Any]:
        def med(key: str) -> float:
            return float(statistics.median(c[key] for c in items))

        def med_lat(key: str) -> float:
            return float(statistics.median(c["latency_ms"][key] for c in items))

        requests = sum(c["requests"] for c in items)
        failed = sum(c["failed"] for c in items)
        return {
            "connections": items[0].get("connections"),
            "req_per_s": med("req_per_s"),
            "rows_per_s": med("rows_per_s"),
            "p50_ms": med_lat("p50"),
            "p95_ms": med_lat("p95"),
            "p99_ms": med_lat("p99"),
            "max_ms": max(c["latency_ms"]["max"] for c in items),
            "requests": requests,
            "requests_failed": failed,
            "status_5xx": sum(c["status_5xx"] for c in items),
            "error_rate": failed / requests if requests else 0.0,
        }

    overall = figures([r["overall"] for r in runs])
    for key in ("server_cpu_pct", "server_sys_cpu_pct", "postgres_cpu_pct", "driver_cpu_pct"):
        overall[key] = float(statistics.median(r["overall"][key] for r in runs))
    names = list(runs[0]["memory"])
    return {
        "classes": {n: figures([r["classes"][n] for r in runs]) for n in MIXED_CLASSES},
        "overall": overall,
        "memory": {
            "peak_rss_mib": max(r["overall"]["peak_rss_mib"] for r in runs),
            "servers": {
                name: {
                    "peak_rss_mib": max(r["memory"][name]["peak_rss_mib"] for r in runs),
                    "rss_start_mib": runs[0]["memory"][name]["rss_start_mib"],
                    "rss_end_mib": runs[-1]["memory"][name]["rss_end_mib"],
                    "peak_source": runs[-1]["memory"][name]["peak_source"],
                }
                for name in names
            },
        },
    }


def run_mixed_scenario(
    app: MixedTarget, baseline: MixedTarget, opts: Options, failures: list[str]
) -> dict[str, Any]:
    conns = ", ".join(f"{n} {opts.mixed_connections[n]}" for n in MIXED_CLASSES)
    print(
        f"\n== {SCENARIO_TITLES['mixed']}: app vs baseline, {opts.mixed_duration:g} s per run, "
        f"connections {conns}",
        flush=True,
    )
    runs: dict[str, list[dict[str, Any]]] = {"app": [], "baseline": []}

    def one(target: MixedTarget, label: str, duration: float, seed: int, keep: bool) -> None:
        result = drive_mixed(target, opts, duration=duration, seed=seed)
        print(_fmt_mixed_run(target.kind, label, result), flush=True)
        for p in result["problems"]:
            failures.append(f"mixed/{target.kind}/{label}: {p}")
            print(f"    CHECK FAILED: {p}", flush=True)
        if keep:
            runs[target.kind].append(result)

    if opts.warmup > 0:
        for target in (baseline, app):
            one(target, "warm-up", opts.warmup, seed=0, keep=False)
    for rnd in range(opts.rounds):
        for target in (baseline, app) if rnd % 2 == 0 else (app, baseline):
            one(target, f"round {rnd + 1}", opts.mixed_duration, seed=rnd + 1, keep=True)

    def ratio(a: float, b: float) -> float:
        return a / b if b else 0.0

    rows = []
    for rnd, (a, b) in enumerate(zip(runs["app"], runs["baseline"], strict=True)):
        rows.append(
            {
                "round": rnd + 1,
                "req_per_s_ratio": ratio(a["overall"]["req_per_s"], b["overall"]["req_per_s"]),
                "rows_per_s_ratio": ratio(a["overall"]["rows_per_s"], b["overall"]["rows_per_s"]),
                **{
                    f"{n}_ratio": ratio(
                        a["classes"][n]["items_per_s"], b["classes"][n]["items_per_s"]
                    )
                    for n in MIXED_CLASSES
                },
            }
        )
    return {
        "scenario": "mixed",
        "duration": opts.mixed_duration,
        "connections": opts.mixed_connections,
        "rounds": rows,
        "median_ratio": {
            key: statistics.median(r[key] for r in rows)
            for key in ("req_per_s_ratio", "rows_per_s_ratio")
            + tuple(f"{n}_ratio" for n in MIXED_CLASSES)
        },
        "app": _mixed_medians(runs["app"]),
        "baseline": _mixed_medians(runs["baseline"]),
        "runs": runs,
    }


def mixed_summary(s: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The summary's lines and verdicts for the mixed scenario."""
    conns = ", ".join(f"{n} {s['connections'][n]}" for n in MIXED_CLASSES)
    lines = [f"- {SCENARIO_TITLES['mixed']}; {s['duration']:g} s per run; connections {conns}:"]
    lines.append(
        "    class target     req/s   rows/s     p50     p95     p99 ms  requests  errors  "
        "5xx  ratio"
    )
    for name in (*MIXED_CLASSES, "overall"):
        key = "req_per_s_ratio" if name == "overall" else f"{name}_ratio"
        for kind in ("app", "baseline"):
            m = s[kind]["overall"] if name == "overall" else s[kind]["classes"][name]
            tail = f"  {s['median_ratio'][key]:.3f}" if kind == "app" else ""
            rows_s = "-" if name in ("trend", "list") else f"{m['rows_per_s']:.0f}"
            lines.append(
                f"    {name if kind == 'app' else '':<7} {kind:<8} {m['req_per_s']:7.1f} "
                f"{rows_s:>8} {m['p50_ms']:7.1f} {m['p95_ms']:7.1f} "
                f"{m['p99_ms']:7.1f}    {m['requests']:7d} {m['requests_failed']:7d} "
                f"{m['status_5xx']:4d}{tail}"
            )
    a, b = s["app"], s["baseline"]
    for kind, m in (("app", a), ("baseline", b)):
        servers = m["memory"]["servers"]
        parts = " + ".join(
            f"{name} {v['peak_rss_mib']:.0f} (start {v['rss_start_mib']:.0f})"
            for name, v in servers.items()
        )
        o = m["overall"]
        lines.append(
            f"    {kind:<8} peak RSS {m['memory']['peak_rss_mib']:.0f} MiB ({parts}); "
            f"cpu srv {o['server_cpu_pct']:.0f}% pg {o['postgres_cpu_pct']:.0f}% "
            f"drv {o['driver_cpu_pct']:.0f}%"
        )
    per_round = ", ".join(f"{r['req_per_s_ratio']:.3f}" for r in s["rounds"])
    lines.append(
        f"    ratio = app / baseline (median of rounds; per class rows/s or responses/s); "
        f"overall req/s by round: {per_round}"
    )
    o = a["overall"]
    ok = o["status_5xx"] == 0 and o["requests_failed"] == 0 and o["requests"] > 0
    verdicts = [
        f"mixed: app {o['status_5xx']} 5xx, error rate {100 * o['error_rate']:.3f} % of "
        f"{o['requests']} requests (baseline {b['overall']['status_5xx']} 5xx, "
        f"{100 * b['overall']['error_rate']:.3f} %) vs 0 5xx and 0 errors: "
        + ("meets target" if ok else "FAILED"),
        f"mixed: app peak RSS {a['memory']['peak_rss_mib']:.0f} MiB vs baseline "
        f"{b['memory']['peak_rss_mib']:.0f} MiB (write + read servers); overall p99 "
        f"{o['p99_ms']:.0f} ms vs baseline {b['overall']['p99_ms']:.0f} ms",
    ]
    return lines, verdicts


# --- profiling ----------------------------------------------------------------------------


def profile_app(target: Target, scenario: str, opts: Options) -> Path | None:
    """One extra, unmeasured run of the app under ``py-spy record`` (GIL holder only)."""
    py_spy = VENV_BIN / "py-spy"
    if not py_spy.exists():
        print("  (py-spy is not installed: .venv/bin/pip install py-spy)", flush=True)
        return None
    out = OUT_DIR / f"profile-{scenario}.txt"
    spy = _spawn(
        [
            str(py_spy),
            "record",
            "--pid",
            str(target.server.pid),
            "--rate",
            "250",
            "--gil",
            "--nonblocking",
            "--full-filenames",
            "--format",
            "raw",
            "--duration",
            str(int(opts.duration) + 1),
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    result = drive(
        target,
        "sqlite" if target.kind == "sqlite" else scenario,
        opts,
        duration=opts.duration,
        seed=99,
        connections=opts.read_connections if scenario in READ_SCENARIOS else None,
    )
    print(_fmt_run(target.kind, "profiled", result), flush=True)
    for p in result["problems"]:
        # Not counted as a failure: the profiler slows the server down.
        print(f"    (under the profiler) {p.splitlines()[0]}", flush=True)
    try:
        spy.wait(opts.duration + 30)
    except subprocess.TimeoutExpired:
        _stop_process(spy)
    _forget(spy)
    if not out.exists():
        print("  (py-spy wrote no profile; it needs ptrace permission)", flush=True)
        return None
    from bench.profile_summary import summarize

    try:
        print(summarize(out, top=15), flush=True)
    except (ValueError, IndexError) as exc:
        print(f"  (could not summarise {out}: {exc})", flush=True)
    return out


# --- report -------------------------------------------------------------------------------


def _git_revision() -> str | None:
    """The commit measured, with ``+dirty`` when app/ or bench/ differ from it (read-only)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "app", "bench", "migrations"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
    except OSError:
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def machine_info(pg: str, *, need_pg: bool) -> dict[str, Any]:
    cpu_model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    row: Any = None
    settings: dict[str, Any] = {}
    try:
        conn = psycopg.connect(f"{pg}/postgres", connect_timeout=5)
    except psycopg.OperationalError as exc:
        if need_pg:
            raise SetupError(
                f"PostgreSQL is not reachable at {pg} ({exc}); start it, or pass --pg, "
                "or run only --scenarios sqlite"
            ) from exc
    else:
        with conn:
            row = conn.execute("SELECT version()").fetchone()
            settings = dict(
                conn.execute(
                    "SELECT name, current_setting(name) FROM pg_settings WHERE name IN "
                    "('shared_buffers', 'synchronous_commit', 'fsync', 'max_connections')"
                ).fetchall()
            )
    packages: dict[str, str | None] = {}
    for name in (
        "fastapi",
        "starlette",
        "pydantic",
        "sqlalchemy",
        "sqlmodel",
        "uvicorn",
        "uvloop",
        "httptools",
        "psycopg",
        "psycopg-pool",
        "python-jose",
    ):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    return {
        "git": _git_revision(),
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "postgresql": row[0] if row else None,
        "postgresql_settings": settings,
        "python": platform.python_version(),
        "packages": packages,
    }


def _verdict(ok: bool) -> str:
    return "meets target" if ok else "BELOW TARGET"


def print_summary(results: dict[str, Any]) -> tuple[list[str], bool]:
    lines = ["", "== Summary (medians over rounds; ratio = app / baseline, per round)"]
    regression = False
    verdicts = []
    for scenario in PG_SCENARIOS:
        s = results["scenarios"].get(scenario)
        if s is None:
            continue
        a, b = s["app"], s["baseline"]
        per_round = ", ".join(f"{r['ratio']:.3f}" for r in s["rounds"])
        unit = ITEM_NAMES[scenario]
        lines.append(f"- {SCENARIO_TITLES[scenario]}:")
        lines.append(
            f"    app      {a['req_per_s']:8.1f} req/s {a['items_per_s']:10.0f} {unit}/s  "
            f"p50 {a['p50_ms']:.1f} p95 {a['p95_ms']:.1f} p99 {a['p99_ms']:.1f} ms"
        )
        lines.append(
            f"    baseline {b['req_per_s']:8.1f} req/s {b['items_per_s']:10.0f} {unit}/s  "
            f"p50 {b['p50_ms']:.1f} p95 {b['p95_ms']:.1f} p99 {b['p99_ms']:.1f} ms"
        )
        lines.append(
            f"    ratio {s['median_ratio']:.3f} (rounds: {per_round}); "
            f"p99 app/baseline {s['median_p99_ratio']:.2f}"
        )
        if scenario == "entry":
            ok = s["median_ratio"] >= ENTRY_TARGET
            if s["median_ratio"] < ENTRY_REGRESSION:
                regression = True
                verdicts.append(
                    f"entry: ratio {s['median_ratio']:.3f} is a REGRESSION (< {ENTRY_REGRESSION})"
                )
            else:
                verdicts.append(
                    f"entry: ratio {s['median_ratio']:.3f} vs target >= {ENTRY_TARGET}: "
                    f"{_verdict(ok)}"
                )
        else:
            ok = s["median_ratio"] >= BATCH_TARGET
            verdicts.append(
                f"{scenario}: rows/s ratio {s['median_ratio']:.3f} vs target >= {BATCH_TARGET}: "
                f"{_verdict(ok)}"
            )
            verdicts.append(
                f"{scenario}: p99 per batch at {results['options']['connections']} connections "
                f"{a['p99_ms']:.0f} ms (baseline {b['p99_ms']:.0f} ms) vs < "
                f"{BATCH_P99_LIMIT_MS:.0f} ms: {_verdict(a['p99_ms'] < BATCH_P99_LIMIT_MS)}"
            )
            alone = s.get("unloaded_1_connection", {})
            if "app" in alone:
                lines.append(
                    f"    1 connection: app p50 {alone['app']['p50_ms']:.0f} p99 "
                    f"{alone['app']['p99_ms']:.0f} ms, baseline p50 "
                    f"{alone['baseline']['p50_ms']:.0f} p99 {alone['baseline']['p99_ms']:.0f} ms"
                )
                p99 = alone["app"]["p99_ms"]
                verdicts.append(
                    f"{scenario}: p99 per batch alone (1 connection) {p99:.0f} ms vs < "
                    f"{BATCH_P99_LIMIT_MS:.0f} ms: {_verdict(p99 < BATCH_P99_LIMIT_MS)}"
                )
    for scenario in READ_SCENARIOS:
        s = results["scenarios"].get(scenario)
        if s is None:
            continue
        a, b = s["app"], s["baseline"]
        per_round = ", ".join(f"{r['ratio']:.3f}" for r in s["rounds"])
        lines.append(f"- {SCENARIO_TITLES[scenario]}, {s['connections']} connection(s):")
        for kind, m in (("app", a), ("baseline", b)):
            lines.append(
                f"    {kind:<8} {m['req_per_s']:8.1f} req/s  p50 {m['p50_ms']:.1f} "
                f"p95 {m['p95_ms']:.1f} p99 {m['p99_ms']:.1f} ms  "
                f"{m['bytes_per_response'] / 1024:.1f} KiB per response"
            )
        slowdown = a["p50_ms"] / b["p50_ms"] if b["p50_ms"] else 0.0
        lines.append(
            f"    ratio {s['median_ratio']:.3f} (rounds: {per_round}); "
            f"p50 app/baseline {slowdown:.1f}x"
        )
        if scenario == "trend":
            verdicts.append(
                f"trend: ratio {s['median_ratio']:.3f} vs target >= {TREND_TARGET}: "
                f"{_verdict(s['median_ratio'] >= TREND_TARGET)}"
            )
            verdicts.append(
                f"trend: p50 {a['p50_ms']:.1f} ms vs < {TREND_P50_LIMIT_MS:.0f} ms: "
                f"{_verdict(a['p50_ms'] < TREND_P50_LIMIT_MS)}"
            )
        elif scenario == "list":
            verdicts.append(
                f"list: page p50 {a['p50_ms']:.1f} ms (p99 {a['p99_ms']:.1f}) vs < "
                f"{LIST_P50_LIMIT_MS:.0f} ms: {_verdict(a['p50_ms'] < LIST_P50_LIMIT_MS)}"
            )
        else:
            verdicts.append(
                f"outcomes: ratio {s['median_ratio']:.3f} ({1 / s['median_ratio']:.1f}x the "
                f"baseline's time) vs within {OUTCOMES_MAX_SLOWDOWN:.0f}x: "
                f"{_verdict(s['median_ratio'] * OUTCOMES_MAX_SLOWDOWN >= 1)}"
                if s["median_ratio"]
                else "outcomes: no successful request"
            )
    s = results["scenarios"].get("mixed")
    if s is not None:
        mixed_lines, mixed_verdicts = mixed_summary(s)
        lines += mixed_lines
        verdicts += mixed_verdicts
    s = results["scenarios"].get("sqlite")
    if s is not None:
        a = s["app"]
        per_round = ", ".join(f"{r['p99_ms']:.0f}" for r in s["rounds"])
        lines.append(f"- {SCENARIO_TITLES['sqlite']}:")
        lines.append(
            f"    app      {a['req_per_s']:8.1f} req/s  p50 {a['p50_ms']:.1f} "
            f"p95 {a['p95_ms']:.1f} p99 {a['p99_ms']:.1f} ms (rounds p99: {per_round} ms)"
        )
        verdicts.append(
            f"sqlite: p99 {a['p99_ms']:.0f} ms vs < {SQLITE_P99_LIMIT_MS:.0f} ms: "
            f"{_verdict(a['p99_ms'] < SQLITE_P99_LIMIT_MS)}"
        )
    lines.append("")
    lines += [f"  {v}" for v in verdicts]
    print("\n".join(lines), flush=True)
    return verdicts, regression


# --- main ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per run (default 10)")
    p.add_argument("--connections", type=int, default=32, help="connections (default 32)")
    p.add_argument(
        "--warmup",
        type=float,
        default=3.0,
        help="seconds of unmeasured load per target before a scenario (default 3)",
    )
    p.add_argument("--quick", action="store_true", help="one round: a smoke run")
    p.add_argument(
        "--scenarios",
        default=",".join(ALL_SCENARIOS),
        help=f"comma-separated, of {', '.join(ALL_SCENARIOS)} (default: all)",
    )
    p.add_argument(
        "--probe-duration",
        type=float,
        default=5.0,
        help="seconds of a 1-connection run per target after the batch scenarios' rounds "
        "(one batch's own latency; 0 to skip; default 5)",
    )
    p.add_argument("--participants", type=int, default=200, help="participants (default 200)")
    p.add_argument(
        "--read-connections",
        type=int,
        default=1,
        help="connections for the read scenarios (default 1: one request's own latency)",
    )
    p.add_argument(
        "--cohort",
        type=int,
        default=1000,
        help="participants of the list/outcomes study, also read by mixed (default 1000)",
    )
    p.add_argument(
        "--cohort-days", type=int, default=365, help="days of diary per cohort participant"
    )
    p.add_argument(
        "--trend-days", type=int, default=730, help="days of diary of the trend participant"
    )
    p.add_argument(
        "--mixed-duration",
        type=float,
        help="seconds per run of the mixed scenario (default: --duration)",
    )
    p.add_argument(
        "--mixed-connections",
        type=int,
        help="connections of the mixed scenario, all classes together (default: --connections)",
    )
    p.add_argument(
        "--mixed-mix",
        default=MIXED_DEFAULT_MIX,
        help="the mixed scenario's connections per class, as weights "
        f"(default {MIXED_DEFAULT_MIX}: 70 %% writes)",
    )
    p.add_argument("--timeout", type=float, default=60.0, help="per-request timeout in seconds")
    p.add_argument(
        "--pg",
        default="postgresql://postgres@127.0.0.1:5432",
        help="PostgreSQL server (libpq URL without a database)",
    )
    p.add_argument("--db", default="mgdiary_bench", help="the app's database (recreated)")
    p.add_argument(
        "--baseline-db",
        default="mgdiary_bench_baseline",
        help="the baseline's database (recreated)",
    )
    p.add_argument(
        "--app-env",
        action="append",
        default=[],
        metavar="MGDIARY_X=VALUE",
        help="extra setting for the app server (repeatable), e.g. MGDIARY_DATABASE_POOL_SIZE=5",
    )
    p.add_argument(
        "--app-workers",
        type=int,
        default=1,
        help="uvicorn worker processes of the app (default 1; the baseline keeps 1)",
    )
    p.add_argument(
        "--app-factory",
        default="app.main:create_app",
        help="the app factory uvicorn serves (default app.main:create_app); another one "
        "(on PYTHONPATH) lets you try a variant without editing app/",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="after the measured rounds, one py-spy profile of the app per scenario",
    )
    p.add_argument("--output", type=Path, help="results JSON (default var/bench/results-*.json)")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds = 1
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.scenarios) - set(ALL_SCENARIOS)
    if unknown or not args.scenarios:
        p.error(f"unknown scenarios {sorted(unknown)}; choose from {', '.join(ALL_SCENARIOS)}")
    if args.rounds < 1 or args.duration <= 0 or args.connections < 1:
        p.error("--rounds, --duration and --connections must be positive")
    if min(args.read_connections, args.cohort, args.cohort_days, args.trend_days) < 1:
        p.error("--read-connections, --cohort, --cohort-days and --trend-days must be positive")
    if min(args.cohort_days, args.trend_days) <= 28:
        p.error("--cohort-days and --trend-days must be more than the 28 screening days")
    args.mixed_duration = args.mixed_duration or args.duration
    args.mixed_connections = args.mixed_connections or args.connections
    try:
        weights = parse_mix(args.mixed_mix)
    except ValueError as exc:
        p.error(f"--mixed-mix: {exc}")
    if args.mixed_duration <= 0 or args.mixed_connections < len(MIXED_CLASSES):
        p.error("--mixed-duration must be positive and --mixed-connections at least 4")
    if "mixed" in args.scenarios and args.participants < 2:
        p.error("the mixed scenario needs --participants of at least 2")
    args.mixed_split = split_connections(args.mixed_connections, weights)
    for item in args.app_env:
        if not re.fullmatch(r"MGDIARY_\w+=.*", item):
            p.error(f"--app-env takes MGDIARY_NAME=VALUE, not {item!r}")
    return args


def app_env(database_url: str, extra: list[str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MGDIARY_")}
    env.update(
        {
            "MGDIARY_ENV": "development",
            "MGDIARY_DATABASE_URL": database_url,
            "MGDIARY_INPROCESS_WORKER": "false",
            "MGDIARY_JWT_SECRET": JWT_SECRET,
            "MGDIARY_ACCESS_TOKEN_TTL_SECONDS": str(TOKEN_TTL_SECONDS),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    for item in extra:
        key, _, value = item.partition("=")
        env[key] = value
    return env


def app_settings(database_url: str) -> Any:
    from app.core.config import Settings

    return Settings(
        env="development",
        database_url=database_url,
        jwt_secret=JWT_SECRET,
        access_token_ttl_seconds=TOKEN_TTL_SECONDS,
        inprocess_worker=False,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    atexit.register(_stop_all_children)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    os.chdir(ROOT)
    from bench.seed import seed

    started = time.monotonic()
    failures: list[str] = []
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(
            [Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]
        ),
        "options": {
            "rounds": args.rounds,
            "duration": args.duration,
            "connections": args.connections,
            "warmup": args.warmup,
            "participants": args.participants,
            "read_connections": args.read_connections,
            "cohort": args.cohort,
            "cohort_days": args.cohort_days,
            "trend_days": args.trend_days,
            "scenarios": args.scenarios,
            "app_env": args.app_env,
            "app_factory": args.app_factory,
            "app_workers": args.app_workers,
            "mixed_duration": args.mixed_duration,
            "mixed_connections": args.mixed_split,
        },
        "machine": {},
        "scenarios": {},
    }
    try:
        results["machine"] = machine_info(
            args.pg, need_pg=any(s != "sqlite" for s in args.scenarios)
        )
    except SetupError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    m = results["machine"]
    print(
        f"machine: {m['nproc']} x {m['cpu_model']}, {m['memory_gib']} GiB; {m['postgresql']}; "
        f"Python {m['python']}; commit {m['git']}",
        flush=True,
    )
    opts = Options(
        rounds=args.rounds,
        duration=args.duration,
        warmup=args.warmup,
        connections=args.connections,
        timeout=args.timeout,
        probe_duration=args.probe_duration,
        read_connections=args.read_connections,
        mixed_duration=args.mixed_duration,
        mixed_connections=args.mixed_split,
    )
    counters: list[RowCounter] = []
    try:
        pg_scenarios = [s for s in args.scenarios if s in PG_SCENARIOS]
        read_scenarios = [s for s in args.scenarios if s in READ_SCENARIOS]
        mixed = "mixed" in args.scenarios
        # The mixed load writes like the write scenarios and reads the read scenarios' data.
        need_writes, need_reads = bool(pg_scenarios) or mixed, bool(read_scenarios) or mixed
        if need_writes or need_reads:
            print("setting up PostgreSQL databases ...", flush=True)
            recreate_database(args.pg, args.db)
            app_url = args.pg.replace("postgresql://", "postgresql+psycopg://", 1) + f"/{args.db}"
            app_dsn = f"{args.pg}/{args.db}"
            app_counter = RowCounter(pg_dsn=app_dsn)
            counters.append(app_counter)
            app = Target(
                "app",
                Server(
                    "app",
                    args.app_factory,
                    app_env(app_url, args.app_env),
                    workers=args.app_workers,
                ),
                app_counter,
                "diary_entry",
                "step_interval",
            )
            base_env = {k: v for k, v in os.environ.items() if not k.startswith("MGDIARY_")}
            targets: dict[str, Target] = {}
            if need_writes:
                recreate_database(args.pg, args.baseline_db)
                opts.participants = seed(app_settings(app_url), participants=args.participants)
                baseline_dsn = f"{args.pg}/{args.baseline_db}"
                from bench.baselines.minimal_app import SCHEMA

                with psycopg.connect(baseline_dsn, autocommit=True) as conn:
                    conn.execute(SCHEMA)
                base_counter = RowCounter(pg_dsn=baseline_dsn)
                counters.append(base_counter)
                targets["write"] = Target(
                    "baseline",
                    Server(
                        "baseline",
                        "bench.baselines.minimal_app:create_app",
                        {**base_env, "BENCH_BASELINE_DSN": baseline_dsn},
                    ),
                    base_counter,
                    "bench_entry",
                    "bench_step_interval",
                )
            fixtures = None
            if need_reads:
                from bench.reads import mixed_gets, seed_reads

                print(
                    f"seeding the read data: 1 participant x {args.trend_days} days, "
                    f"{args.cohort} participants x {args.cohort_days} days ...",
                    flush=True,
                )
                fixtures = seed_reads(
                    app_settings(app_url),
                    app_dsn,
                    cohort=args.cohort,
                    cohort_days=args.cohort_days,
                    trend_days=args.trend_days,
                    token_ttl_seconds=TOKEN_TTL_SECONDS,
                )
                results["read_data"] = fixtures.summary()
                print(
                    f"  {fixtures.entries} diary entries in "
                    f"{fixtures.seconds['total']:.0f} s ({fixtures.summary()['seed_seconds']})",
                    flush=True,
                )
                opts.reads = {s: fixtures.gets(s) for s in read_scenarios}
                if mixed:
                    opts.mixed_gets = mixed_gets(fixtures, app_dsn)
                # The read baseline reads the app's own rows.
                targets["read"] = Target(
                    "baseline",
                    Server(
                        "baseline-reads",
                        "bench.baselines.read_app:create_app",
                        {**base_env, "BENCH_BASELINE_DSN": app_dsn},
                    ),
                    app_counter,
                    "diary_entry",
                    "step_interval",
                )
            app.server.start()
            for target in targets.values():
                target.server.start()
            try:
                for scenario in pg_scenarios:
                    results["scenarios"][scenario] = run_pg_scenario(
                        scenario, app, targets["write"], opts, failures
                    )
                for scenario in read_scenarios:
                    assert fixtures is not None
                    from bench.reads import same_answer

                    freshness = None
                    if scenario == "outcomes":
                        from bench.reads import outcomes_freshness

                        freshness = outcomes_freshness(
                            fixtures, app.server.port, targets["read"].server.port, app_dsn
                        )
                        print(_fmt_freshness(freshness), flush=True)
                        if not freshness["document_changed"]:
                            failures.append("outcomes: new entries did not change the outcomes")
                    problems = same_answer(
                        scenario, fixtures, app.server.port, targets["read"].server.port
                    )
                    for problem in problems:
                        failures.append(f"{scenario}: app and baseline disagree: {problem}")
                        print(f"CHECK FAILED ({scenario}): {problem}", flush=True)
                    results["scenarios"][scenario] = run_pg_scenario(
                        scenario, app, targets["read"], opts, failures
                    )
                    results["scenarios"][scenario]["same_answer"] = problems or "ok"
                    if freshness is not None:
                        results["scenarios"][scenario]["freshness"] = freshness
                if mixed:
                    assert fixtures is not None
                    from bench.reads import same_answer

                    problems = []
                    for read in ("trend", "list"):
                        if read not in read_scenarios:  # else checked above
                            problems += same_answer(
                                read, fixtures, app.server.port, targets["read"].server.port
                            )
                    for problem in problems:
                        failures.append(f"mixed: app and baseline disagree: {problem}")
                        print(f"CHECK FAILED (mixed): {problem}", flush=True)
                    write, read_t = targets["write"], targets["read"]
                    results["scenarios"]["mixed"] = run_mixed_scenario(
                        MixedTarget(
                            "app",
                            dict.fromkeys(MIXED_CLASSES, app.server.port),
                            [app.server],
                            app.counter,
                            app.entry_table,
                        ),
                        MixedTarget(
                            "baseline",
                            {
                                n: (write if n in MIXED_WRITE_CLASSES else read_t).server.port
                                for n in MIXED_CLASSES
                            },
                            [write.server, read_t.server],
                            write.counter,
                            write.entry_table,
                        ),
                        opts,
                        failures,
                    )
                if args.profile:
                    for scenario in [*pg_scenarios, *read_scenarios]:
                        print(f"\n== profile of the app: {SCENARIO_TITLES[scenario]}", flush=True)
                        path = profile_app(app, scenario, opts)
                        results["scenarios"][scenario]["profile"] = str(path) if path else None
            finally:
                app.server.stop()
                for target in targets.values():
                    target.server.stop()
        if "sqlite" in args.scenarios:
            print("\nsetting up the SQLite database ...", flush=True)
            path = OUT_DIR / "mgdiary-bench.sqlite3"
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            url = f"sqlite:///{path}"
            opts.participants = seed(app_settings(url), participants=args.participants)
            counter = RowCounter(sqlite_path=path)
            target = Target(
                "sqlite",
                Server("app-sqlite", args.app_factory, app_env(url, args.app_env)),
                counter,
                "diary_entry",
                "step_interval",
            )
            target.server.start()
            try:
                results["scenarios"]["sqlite"] = run_sqlite(target, opts, failures)
                if args.profile:
                    print(f"\n== profile of the app: {SCENARIO_TITLES['sqlite']}", flush=True)
                    p = profile_app(target, "sqlite", opts)
                    results["scenarios"]["sqlite"]["profile"] = str(p) if p else None
            finally:
                target.server.stop()
    except SetupError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    finally:
        for c in counters:
            c.close()
        _stop_all_children()

    verdicts, regression = print_summary(results)
    results["verdicts"] = verdicts
    results["failures"] = failures
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    output = args.output or OUT_DIR / f"results-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2))
    print(f"\nresults: {output} ({results['elapsed_s']:.0f} s)", flush=True)
    if failures:
        print(f"\nbench: {len(failures)} correctness check(s) FAILED:", file=sys.stderr)
        for f in failures:
            print(f"  - {f}", file=sys.stderr)
        return 1
    if regression:
        print("bench: the single-entry ratio is below the regression floor", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
