"""Summarise a ``py-spy record --format raw --full-filenames`` profile (collapsed stacks).

    .venv/bin/python -m bench.profile_summary var/bench/profile-entry.txt [--top 25]

Prints where the sampled time goes: self time by package (the leaf frame's), and the functions
with the most inclusive and self time. Line numbers are dropped, so a function is one row.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*) \((?P<path>.*?)(?::\d+)?\)$")
_PACKAGES = (
    ("app/", "app"),
    ("bench/", "bench"),
    ("sqlalchemy/", "sqlalchemy"),
    ("sqlmodel/", "sqlmodel"),
    ("psycopg_pool/", "psycopg"),
    ("psycopg/", "psycopg"),
    ("pydantic_core/", "pydantic"),
    ("pydantic/", "pydantic"),
    ("fastapi/", "fastapi"),
    ("starlette/", "starlette"),
    ("anyio/", "anyio"),
    ("uvicorn/", "uvicorn"),
    ("jose/", "python-jose"),
    ("cryptography/", "python-jose"),
    ("json/", "json (stdlib)"),
    ("zoneinfo/", "zoneinfo (stdlib)"),
    ("alembic/", "alembic"),
)


def _short(path: str) -> str:
    for marker in ("site-packages/", "/work/main/", "/lib/python3."):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "/lib/python3.":
                path = path.split("/", 1)[-1]
            break
    return path


def _frame(raw: str) -> tuple[str, str]:
    match = _FRAME.match(raw.strip())
    if not match:
        return raw.strip(), ""
    return match["func"], _short(match["path"])


def _package(path: str) -> str:
    for prefix, name in _PACKAGES:
        if path.startswith(prefix) or f"/{prefix}" in path:
            return name
    return "other (stdlib, interpreter)" if path else "native"


def load(path: Path) -> list[tuple[list[tuple[str, str]], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        stack, _, count = line.rpartition(" ")
        frames = [_frame(f) for f in stack.split(";") if f]
        if frames and count.isdigit():
            stacks.append((frames, int(count)))
    return stacks


def summarize(path: Path, *, top: int = 20) -> str:
    stacks = load(path)
    total = sum(c for _, c in stacks)
    if not total:
        return f"{path}: no samples"
    inclusive: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    for frames, count in stacks:
        names = {f"{func} ({p})" for func, p in frames}
        for name in names:
            inclusive[name] += count
        func, p = frames[-1]
        self_time[f"{func} ({p})"] += count
        by_package[_package(p)] += count

    def pct(n: int) -> str:
        return f"{100 * n / total:5.1f}%"

    out = [f"{path.name}: {total} samples (GIL holder)", "", "self time by package:"]
    out += [f"  {pct(n)}  {name}" for name, n in by_package.most_common()]
    out += ["", f"top {top} by inclusive time:"]
    out += [f"  {pct(n)}  {name}" for name, n in inclusive.most_common(top)]
    out += ["", f"top {top} by self time:"]
    out += [f"  {pct(n)}  {name}" for name, n in self_time.most_common(top)]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--grep", help="only the inclusive rows whose name contains this text", default=None
    )
    args = parser.parse_args()
    if args.grep:
        stacks = load(args.profile)
        total = sum(c for _, c in stacks)
        inclusive: Counter[str] = Counter()
        for frames, count in stacks:
            for name in {f"{func} ({p})" for func, p in frames}:
                if args.grep in name:
                    inclusive[name] += count
        for name, n in inclusive.most_common(args.top):
            print(f"  {100 * n / total:5.1f}%  {name}")
        return
    print(summarize(args.profile, top=args.top))


if __name__ == "__main__":
    main()
