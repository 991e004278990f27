"""The added cost of the safety rules on the single-entry POST (issue 6), measured in one run.

One app server (uvicorn, one worker, PostgreSQL), two studies in its database: one with the
protocol's safety rules as built in (``rules on``), one whose protocol switches every rule off
(``rules off``: the safety step returns at once and reads nothing). The same load generator
(bench/loadgen.py, ``--connections`` keep-alive connections, ``--duration`` s per run) drives
both in interleaved rounds, for two bodies:

- ``entry``: the usual benchmark mix (half MG-ADL, half vitals; many MG-ADLs and some heart
  rates can take part in a finding, so the rules read their context);
- ``fever``: every entry a temperature of 38.0-39.5 C - the worst case: each one takes the
  participant's advisory lock, reads the context, joins the open CRS signal and updates it.

Reports req/s and p50/p99 for each, and the median over rounds of rules-on / rules-off.
Correctness as in bench/run.py: rows stored equal 2xx responses, no failed request; and the
fevers must have produced signals (one open CRS signal per participant with a finding per
entry).

    .venv/bin/python -m bench.rules                      # 3 rounds x 10 s
    .venv/bin/python -m bench.rules --rounds 1 --duration 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from datetime import UTC, datetime
from typing import Any

import psycopg

from app.studies.protocol import SAFETY_RULE_IDS
from bench.run import (
    OUT_DIR,
    ROOT,
    Options,
    RowCounter,
    Server,
    Target,
    _fmt_run,
    _stop_all_children,
    app_env,
    app_settings,
    drive,
    machine_info,
    recreate_database,
)
from bench.seed import seed

LOADS = ("entry", "fever")
RULES_OFF = {"safety": {"rule_modes": dict.fromkeys(SAFETY_RULE_IDS, "off")}}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.rules", description=__doc__)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--participants", type=int, default=200)
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    p.add_argument("--db", default="mgdiary_bench_rules")
    return p.parse_args(argv)


def _signal_check(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT participant_id), coalesce(sum(finding_count), 0) "
            "FROM safety_signal WHERE category = 'crs'"
        ).fetchone()
        alerts = conn.execute(
            "SELECT count(*) FROM alert WHERE type LIKE 'safety.signal.%'"
        ).fetchone()
    if row is None or alerts is None:
        raise RuntimeError("counting signals returned no row")
    return {
        "crs_signals": int(row[0]),
        "participants_with_crs": int(row[1]),
        "findings": int(row[2]),
        "alerts": int(alerts[0]),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    machine = machine_info(args.pg, need_pg=True)
    print(
        f"machine: {machine['nproc']} x {machine['cpu_model']}; {machine['postgresql']}; "
        f"commit {machine['git']}",
        flush=True,
    )
    recreate_database(args.pg, args.db)
    url = args.pg.replace("postgresql://", "postgresql+psycopg://", 1) + f"/{args.db}"
    dsn = f"{args.pg}/{args.db}"
    settings = app_settings(url)
    cohorts = {
        "rules on": seed(settings, participants=args.participants),
        "rules off": seed(settings, participants=args.participants, protocol=RULES_OFF),
    }
    counter = RowCounter(pg_dsn=dsn)
    app = Target(
        "app",
        Server("app-rules", "app.main:create_app", app_env(url, [])),
        counter,
        "diary_entry",
        "step_interval",
    )
    failures: list[str] = []
    results: dict[str, Any] = {"machine": machine, "options": vars(args), "loads": {}}
    app.server.start()
    try:
        for load in LOADS:
            print(f"\n== single-entry POST, {load} bodies: rules on vs rules off", flush=True)
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in cohorts}
            order = list(cohorts)
            for round_no in range(args.rounds + (1 if args.warmup > 0 else 0)):
                warm = args.warmup > 0 and round_no == 0
                for name in order:
                    opts = Options(
                        rounds=args.rounds,
                        duration=args.duration,
                        warmup=args.warmup,
                        connections=args.connections,
                        timeout=args.timeout,
                        participants=cohorts[name],
                    )
                    result = drive(
                        app,
                        load,
                        opts,
                        duration=args.warmup if warm else args.duration,
                        seed=round_no,
                    )
                    label = "warmup" if warm else f"round {round_no}"
                    print(_fmt_run(name.replace(" ", "-"), label, result), flush=True)
                    for problem in result["problems"]:
                        failures.append(f"{load}/{name}/{label}: {problem}")
                        print(f"    CHECK FAILED: {problem}", flush=True)
                    if not warm:
                        runs[name].append(result)
                order.reverse()
            on, off = runs["rules on"], runs["rules off"]
            ratios = [a["req_per_s"] / b["req_per_s"] for a, b in zip(on, off, strict=True)]
            summary = {
                name: {
                    "req_per_s": statistics.median(r["req_per_s"] for r in rs),
                    "p50_ms": statistics.median(r["latency_ms"]["p50"] for r in rs),
                    "p99_ms": statistics.median(r["latency_ms"]["p99"] for r in rs),
                }
                for name, rs in runs.items()
            }
            summary["median_ratio"] = statistics.median(ratios)  # type: ignore[assignment]
            summary["ratios"] = ratios  # type: ignore[assignment]
            results["loads"][load] = summary
    finally:
        app.server.stop()
        _stop_all_children()
    signals = _signal_check(dsn)
    results["signals"] = signals
    counter.close()
    # Every fever participant ("rules on" only) has its open CRS signal; none in "rules off".
    if signals["participants_with_crs"] > args.participants:
        failures.append(f"CRS signals for more participants than the rules-on study: {signals}")
    if signals["crs_signals"] == 0:
        failures.append("the fevers raised no CRS signal")

    print("\n== Summary (medians over rounds; ratio = rules on / rules off, req/s)")
    for load, s in results["loads"].items():
        on, off = s["rules on"], s["rules off"]
        print(f"- {load}:")
        for name, m in (("rules on", on), ("rules off", off)):
            print(
                f"    {name:<9} {m['req_per_s']:8.1f} req/s  p50 {m['p50_ms']:6.1f}  "
                f"p99 {m['p99_ms']:6.1f} ms"
            )
        rounds = ", ".join(f"{r:.3f}" for r in s["ratios"])
        print(
            f"    ratio {s['median_ratio']:.3f} (rounds: {rounds}); added p50 "
            f"{on['p50_ms'] - off['p50_ms']:+.1f} ms, p99 {on['p99_ms'] - off['p99_ms']:+.1f} ms"
        )
    print(f"- signals after the run: {signals}")
    output = OUT_DIR / f"rules-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    output.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nresults: {output.relative_to(ROOT)}")
    if failures:
        print(f"\nbench: {len(failures)} check(s) FAILED:", file=sys.stderr)
        for f in failures:
            print(f"  - {f}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
