"""Run every benchmark in one go and write docs/benchmarks.md (and docs/benchmarks.json).

    uv run python -m bench.run_all [--quick] [--only ingest,writer,...]

Each benchmark runs as its own process, one after the other (never two at once:
they would measure each other), with its full output kept in bench/out/. The
figures each one publishes (bench/results.py) become the tables of the report,
together with the machine, the date, the commit and the load average before
and after each benchmark, so a noisy run is visible as such.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"

# (name, full arguments, quick arguments). The reference rates (raw aiokafka,
# raw insert_many) are measured inside the ingest and writer benchmarks.
BENCHES: list[tuple[str, list[str], list[str]]] = [
    ("ingest", [], ["--rounds", "3", "--seconds", "3"]),
    ("writer", [], ["--events", "50000", "--rounds", "2", "--seconds", "5"]),
    # 1M events: the bench's own default (10M, issue 15's size) loads for about 45 minutes
    # on a 2-core box; docs/query.md has a 10M run. Rollup-based answers read the same
    # number of documents at 1M as at 10M (every hour x service x level exists at both).
    ("query", ["--events", "1000000"], ["--events", "200000"]),
    ("stream", ["--max-clients", "2000"], ["--duration", "8", "--max-clients", "1500"]),
    ("alerter", [], ["--events", "100000", "--bursts", "3"]),
    ("client", [], ["--rounds", "3"]),
    ("e2e", [], ["--quick"]),
]

TARGETS = {
    "ingest": "gateway >= 60% of a raw aiokafka producer and >= 30,000 events/s",
    "writer": "writer >= 80% of a raw insert_many loop; ingest-to-stored p50/p99 at 5,000/s",
    "query": "(issue 15, set for 10M events over 7 days, 20 clients) filtered pages p99 < 50 ms; "
    "histograms by level and by service uncached: 24 h p99 < 100 ms, 7 days p99 < 300 ms; "
    "cached answers p99 < 10 ms; errors, services and top messages uncached p99 < 100 ms; "
    "whole-word search over 24 h p99 < 300 ms",
    "stream": "p99 ingest-to-delivery < 250 ms with 1,000 clients at 2,000 events/s",
    "alerter": "keeps up with the writer; first error to notification within window + 2 s",
    "client": "logging call costs a few microseconds",
    "e2e": "end-to-end stored events/s >= the original design's bulk endpoint and >= 70% of "
    "raw insert_many; gateway alone >= 60% of raw send_batch(); logriver services <= 60 us "
    "CPU per stored event (gateway and writer <= 20 us each, stream <= 10 us at 10 clients); "
    "queryable p99 < 1 s, live-tail p99 < 250 ms",
}


def machine() -> dict[str, str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    ).stdout.strip()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
        "cpu": f"{os.cpu_count()} x {cpu}",
        "memory": f"{mem_kib / 1024 / 1024:.0f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "stack": "everything co-located on this machine: Kafka 4.1.1 (1 broker), MongoDB 6.0.5 "
        "rs0 (3 members), Redis 7, PostgreSQL 15, Jaeger 2.13, the services",
    }


def run_bench(name: str, args: list[str], results: Path) -> dict[str, Any]:
    OUT.mkdir(exist_ok=True)
    log = OUT / f"{name}.log"
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    print(f"== {name} {' '.join(args)} (output in {log.relative_to(ROOT)})", flush=True)
    with log.open("wb") as out:
        code = subprocess.run(
            [sys.executable, "-m", f"bench.{name}_bench", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "LOGRIVER_BENCH_RESULTS": str(results)},
            cwd=ROOT,
            check=False,
        ).returncode
    return {
        "bench": name,
        "args": args,
        "exit_code": code,
        "seconds": round(time.monotonic() - started, 1),
        "load_before": round(load_before, 1),
        "load_after": round(os.getloadavg()[0], 1),
    }


def render(meta: dict[str, str], runs: list[dict[str, Any]], figures: dict[str, Any]) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Written by `uv run python -m bench.run_all`; every figure below was printed by a",
        "script in bench/ during one run on the machine described here. Medians of",
        "rounds where a bench runs rounds; reference rates (raw Kafka producer, raw",
        "`insert_many`, the original design) come from the same run.",
        "",
        "| machine | |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in meta.items()),
        "",
    ]
    for run in runs:
        lines += render_section(run, figures.get(run["bench"]))
    return "\n".join(lines)


def render_section(run: dict[str, Any], found: dict[str, Any] | None) -> list[str]:
    name = run["bench"]
    lines = [f"## {name}", "", f"Target: {TARGETS[name]}.", ""]
    lines.append(
        f"Run: `python -m bench.{name}_bench {' '.join(run['args'])}`, "
        f"{run['seconds']} s, load average {run['load_before']} before and "
        f"{run['load_after']} after, exit code {run['exit_code']}."
    )
    lines.append("")
    if found is None:
        return [*lines, "No figures were published: see the bench's log.", ""]
    if found.get("notes"):
        lines += [found["notes"], ""]
    lines += ["| measure | value |", "|---|---:|"]
    for key, value in found["figures"].items():
        shown = f"{value:,}" if isinstance(value, int | float) else str(value)
        lines.append(f"| {key} | {shown} |")
    lines.append("")
    return lines


def replace_section(
    name: str, args: list[str], figures: dict[str, Any], notes: str, *, seconds: float = 0.0
) -> None:
    """Put one bench's section (run on its own) into docs/benchmarks.md, replacing its old one.

    The machine table is left as it is; the section says when and at which commit it ran.
    """
    path = ROOT / "docs" / "benchmarks.md"
    meta = machine()
    run = {
        "bench": name,
        "args": args,
        "seconds": round(seconds, 1),
        "load_before": "-",
        "load_after": round(os.getloadavg()[0], 1),
        "exit_code": 0,
    }
    section = render_section(run, {"figures": figures, "notes": notes})
    section.insert(2, f"Run on its own on {meta['date']} at commit {meta['commit']}.")
    section.insert(3, "")
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    heading = f"## {name}\n"
    if heading in text:
        before, rest = text.split(heading, 1)
        after = rest[rest.index("\n## ") + 1 :] if "\n## " in rest else ""
        text = before + "\n".join(section) + "\n" + after
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(section) + "\n"
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a few minutes)")
    parser.add_argument("--only", help="comma-separated subset, e.g. ingest,e2e")
    args = parser.parse_args()
    chosen = set(args.only.split(",")) if args.only else {name for name, _, _ in BENCHES}
    OUT.mkdir(exist_ok=True)
    results = OUT / "results.jsonl"
    results.unlink(missing_ok=True)
    meta = machine()
    runs = [
        run_bench(name, quick if args.quick else full, results)
        for name, full, quick in BENCHES
        if name in chosen
    ]
    figures = {}
    if results.exists():
        for line in results.read_bytes().splitlines():
            entry = orjson.loads(line)
            figures[entry["bench"]] = entry
    (ROOT / "docs" / "benchmarks.md").write_text(render(meta, runs, figures) + "\n")
    payload = {"machine": meta, "runs": runs, "results": figures}
    (ROOT / "docs" / "benchmarks.json").write_bytes(
        orjson.dumps(payload, option=orjson.OPT_INDENT_2) + b"\n"
    )
    failed = [r["bench"] for r in runs if r["exit_code"] != 0]
    print(f"wrote docs/benchmarks.md and docs/benchmarks.json; failed: {failed or 'none'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
