"""Benchmark a restart with many runs waiting at gates: time to ready and memory.

For each database (a SQLite file; a fresh PostgreSQL schema on 127.0.0.1:5432), two
databases are prepared: an empty one (schema only) and one with `--gates` runs (default
10,000) waiting at an approval gate, each with a deadline (spread over three days) and
a reminder (spread over the next hour); see bench/_waiting_runs.py. Then a real
`opsloop serve --no-slack` process is started on each in turn, `--rounds` times
(alternating), and the bench takes:

- ready s: from spawning the process to its "serving" line (imports, schema check,
  recovery, timers loaded: the moment `serve --no-slack` starts serving);
- RSS MB: the process's resident memory at that moment (VmRSS), and its peak (VmHWM).

Reported: medians, and the ratios waiting / empty in the same run. Targets: ready at
most 1.5x of empty, RSS within 20 MB of empty.

    .venv/bin/python bench/waiting.py [--skip-postgres] [--gates 10000] [--rounds 3]
        [--json PATH]

`OPSLOOP_BENCH_CODE=/path/to/checkout` runs the processes (and the set-up) from another
checkout of opsloop with this venv's packages, to measure an older version the same way.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(os.environ.get("OPSLOOP_BENCH_CODE") or Path(__file__).resolve().parent.parent)
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import argparse  # noqa: E402
import json  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import sqlalchemy as sa  # noqa: E402
from _databases import database_url  # noqa: E402
from _waiting_runs import WORKFLOW, populate  # noqa: E402

from storage.engine import create_engine  # noqa: E402

READY_LINE = "opsloop: serving"
START_TIMEOUT_S = 300.0


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process, in MB."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = dict(line.split(":", 1) for line in lines)
    rss, peak = (int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM"))
    return rss, peak


def serve_once(url: str, workflows: Path) -> dict[str, float]:
    """Start `serve --no-slack` on `url`; time to its serving line and memory then."""
    path = os.pathsep.join([str(ROOT), str(Path(__file__).resolve().parent)])  # engine_tasks
    env = {**os.environ, "DATABASE_URL": url, "OPSLOOP_WORKFLOWS": str(workflows),
           "OPSLOOP_SHUTDOWN_GRACE": "5", "PYTHONPATH": path}  # fmt: skip
    began = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve", "--no-slack"], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if READY_LINE in line:
                ready = time.monotonic() - began
                rss, peak = memory_mb(proc.pid)
                break
            if time.monotonic() - began > START_TIMEOUT_S:
                raise RuntimeError("serve did not start in time")
        else:
            raise RuntimeError(f"serve exited with {proc.wait()} before serving")
        return {"ready_s": ready, "rss_mb": rss, "peak_mb": peak}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def analyze(url: str) -> None:
    """Fresh statistics after the bulk copy, as autovacuum would keep them."""
    engine = create_engine(url)
    try:
        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                conn.execute(sa.text("ANALYZE"))
    finally:
        engine.dispose()


def measure(kind: str, gates: int, rounds: int) -> dict[str, dict[str, float]]:
    results: dict[str, list[dict[str, float]]] = {"empty": [], "waiting": []}
    with (
        tempfile.TemporaryDirectory(prefix="bench-waiting-") as tmp,
        database_url(kind, "bench-empty-") as empty,
        database_url(kind, "bench-waiting-") as full,
    ):  # fmt: skip
        workflows = Path(tmp)
        (workflows / "waiting.yaml").write_text(WORKFLOW)
        began = time.monotonic()
        populate(empty, 0)
        populate(full, gates)
        analyze(full)
        print(f"  {kind}: {gates} waiting runs set up in {time.monotonic() - began:.1f} s",
              flush=True)  # fmt: skip
        for _ in range(rounds):
            for name, url in (("empty", empty), ("waiting", full)):
                results[name].append(serve_once(url, workflows))
    return {name: {key: statistics.median(r[key] for r in rows) for key in rows[0]}
            for name, rows in results.items()}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--gates", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args, _ = parser.parse_known_args()
    kinds = ["sqlite"] if args.skip_postgres else ["sqlite", "postgres"]
    print(f"code: {ROOT}; {args.gates} waiting gates vs an empty database, "
          f"median of {args.rounds}")  # fmt: skip
    print(f"| database | ready s empty | ready s {args.gates:,} | ratio | RSS MB empty | "
          f"RSS MB {args.gates:,} | difference | peak MB empty / waiting |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    report = {}
    for kind in kinds:
        got = report[kind] = measure(kind, args.gates, args.rounds)
        e, w = got["empty"], got["waiting"]
        print(f"| {kind} | {e['ready_s']:.2f} | {w['ready_s']:.2f} | "
              f"{w['ready_s'] / e['ready_s']:.2f}x | {e['rss_mb']:.1f} | {w['rss_mb']:.1f} | "
              f"{w['rss_mb'] - e['rss_mb']:+.1f} | {e['peak_mb']:.1f} / {w['peak_mb']:.1f} |",
              flush=True)  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
