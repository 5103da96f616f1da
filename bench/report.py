"""Benchmark reports: 100,000 runs, 1,000,000 step rows and their gates, on a SQLite file
and on PostgreSQL (fresh schema, dropped at the end).

Baseline, measured in the same run on the same data: one full scan of the step table
(`SELECT count(*), sum(attempts), max(finished_at) FROM step_run`, which reads every
row). Timed: `build_report` for a 7-day and a 90-day window (target: at most 1.5x the
scan), and drawing the 90-day chart (matplotlib, Agg; the first draw includes the import).

Data: runs spread evenly over 180 days (so 7 days hold ~3,900 runs, 90 days half of
them), 10 steps each (one an approval gate), 12% failed, 3% cancelled, 1% still waiting;
each run's gate is an interaction, 80% answered by a person after 1-120 minutes.

    .venv/bin/python bench/report.py [--runs 100000] [--repeat 3] [--db sqlite|postgres|both]
                                     [--before CHECKOUT --rounds 3] [--url URL]

With `--before` (e.g. a detached worktree of the last commit) the code of both checkouts
reads the same seeded database, each in a fresh process that measures its own scan then
its reports, alternating for `--rounds` rounds; reported: the median of each figure and
of each round's ratio. Before the rounds, this checkout's first 90-day report, which
rolls up the closed days (orchestrator/reports/rollup.py), is timed once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import sysconfig
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._databases import database_url
from orchestrator.interactions import INTERACTIONS
from orchestrator.reports.build import build_report
from orchestrator.reports.chart import render_chart
from orchestrator.runs import RUNS, STEPS
from storage.engine import create_engine
from storage.schema import setup

NOW = datetime(2030, 7, 1, tzinfo=UTC)
SPAN = timedelta(days=180)
STEPS_PER_RUN = 10
WORKFLOWS = ("deploy", "db-maintenance", "backup", "rotate-keys", "hello")


def seed(engine: sa.Engine, n_runs: int) -> None:
    rng = random.Random(1)
    chunk = 5_000
    for start in range(0, n_runs, chunk):
        runs, steps, gates = [], [], []
        for i in range(start, min(start + chunk, n_runs)):
            created = NOW - SPAN + SPAN * (i / n_runs)
            roll = rng.random()
            status = ("failed" if roll < 0.12 else "cancelled" if roll < 0.15
                      else "waiting" if roll > 0.99 else "succeeded")  # fmt: skip
            took = timedelta(seconds=rng.uniform(5, 1800))
            finished = None if status == "waiting" else created + took
            rid = f"r-{i:010d}"
            runs.append({"id": rid, "workflow": WORKFLOWS[i % len(WORKFLOWS)],
                         "definition_hash": "x", "params": {}, "started_by": "U0BENCH",
                         "status": status, "version": 0, "created_at": created,
                         "started_at": created, "finished_at": finished,
                         "updated_at": created})  # fmt: skip
            for s in range(STEPS_PER_RUN):
                st = created + took * (s / STEPS_PER_RUN)
                failed = status == "failed" and s == STEPS_PER_RUN - 1
                steps.append({"run_id": rid, "step_id": f"s{s}", "attempts": 1, "version": 0,
                              "workflow": WORKFLOWS[i % len(WORKFLOWS)], "run_created_at": created,
                              "status": "failed" if failed else "succeeded",
                              "error": "exit 1: boom" if failed else None, "started_at": st,
                              "finished_at": st + took / STEPS_PER_RUN,
                              "updated_at": st})  # fmt: skip
            answered = rng.random() < 0.8 and status != "waiting"
            wait = timedelta(minutes=rng.uniform(1, 120))
            gates.append({"id": f"i-{i:010d}", "run_id": rid, "step_id": "s1", "kind": "approval",
                          "workflow": WORKFLOWS[i % len(WORKFLOWS)],
                          "purpose": "gate", "prompt": "ok?", "responses": [], "version": 0,
                          "required_approvals": 1, "allow_requester": False, "notify": "thread",
                          "status": "approved" if answered else "pending" if status == "waiting"
                          else "rejected", "answered_by": "U0BOSS" if answered else "opsloop",
                          "answered_at": created + wait if answered else None,
                          "created_at": created})  # fmt: skip
        with engine.begin() as conn:
            conn.execute(sa.insert(RUNS), runs)
            conn.execute(sa.insert(STEPS), steps)
            conn.execute(sa.insert(INTERACTIONS), gates)
    # Plans from real statistics; on PostgreSQL autovacuum would also have marked the
    # pages all-visible (index-only scans): do that now. VACUUM needs autocommit.
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text("VACUUM ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(sa.text("ANALYZE"))


def timed(fn, repeat: int) -> float:
    fn()  # warm: caches and plans, as a server that reports weekly has them
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def scan(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        conn.execute(sa.select(sa.func.count(), sa.func.sum(STEPS.c.attempts),
                               sa.func.max(STEPS.c.finished_at))).one()  # fmt: skip


PROBE = """
import json, statistics, sys, time
from datetime import UTC, datetime, timedelta
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import sqlalchemy as sa
from orchestrator.reports.build import build_report
from storage.engine import create_engine
engine, repeat = create_engine(sys.argv[3]), int(sys.argv[4])
now = datetime(2030, 7, 1, tzinfo=UTC)
def scan():
    with engine.connect() as conn:
        sql = "SELECT count(*), sum(attempts), max(finished_at) FROM step_run"
        conn.execute(sa.text(sql)).one()
def timed(fn):
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter(); fn(); times.append(time.perf_counter() - t0)
    return statistics.median(times)
out = {"scan": timed(scan)}
for days in (7, 90):
    out[f"{days}d"] = timed(lambda: build_report(engine, now, timedelta(days=days)))
print(json.dumps(out))
"""


def side_by_side(url: str, before: str, rounds: int, repeat: int) -> None:
    """Both checkouts' scan and reports on the same database, alternating processes."""
    site = sysconfig.get_paths()["purelib"]
    checkouts = {"before": before, "after": str(Path(__file__).resolve().parent.parent)}
    got: dict[str, list[dict[str, float]]] = {name: [] for name in checkouts}
    for i in range(rounds):
        for name in sorted(checkouts, reverse=i % 2 == 1):
            argv = [sys.executable, "-S", "-c", PROBE, checkouts[name], site, url, str(repeat)]
            done = subprocess.run(argv, capture_output=True, text=True, check=True)
            got[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
    for name, results in got.items():
        cells = []
        for key in ("scan", "7d", "90d"):
            ms = statistics.median(r[key] for r in results) * 1000
            ratio = statistics.median(r[key] / r["scan"] for r in results)
            cells.append(f"{key} {ms:6.0f} ms {ratio:5.2f}x")
        print(f"  {name:7} " + "   ".join(cells))


def bench(kind: str, n_runs: int, repeat: int, before: str | None, rounds: int,
          seeded: str | None = None) -> None:  # fmt: skip
    with contextlib.nullcontext(seeded) if seeded else database_url(kind) as url:
        engine = create_engine(url)
        setup(engine)
        if seeded:  # a database this bench seeded before: its kept days go, to time them
            with engine.begin() as conn:
                conn.execute(sa.text("DELETE FROM report_day"))
            print(f"{kind}: the database seeded before, {seeded.split('@')[-1]}")
        else:
            t0 = time.perf_counter()
            seed(engine, n_runs)
            print(f"{kind}: seeded {n_runs:,} runs, {n_runs * STEPS_PER_RUN:,} steps, "
                  f"{n_runs:,} gates in {time.perf_counter() - t0:.0f} s")  # fmt: skip
        print(f"  load average {os.getloadavg()[0]:.1f}")
        if before:
            t0 = time.perf_counter()
            build_report(engine, NOW, timedelta(days=90))
            print(f"  first 90-day report, rolling up {time.perf_counter() - t0:.2f} s")
            side_by_side(url, before, rounds, repeat)
            print(f"  load average {os.getloadavg()[0]:.1f}")
            engine.dispose()
            return
        base = timed(lambda: scan(engine), repeat)
        print(f"  full scan of step_run        {base * 1000:8.0f} ms   1.00x")
        for days in (7, 90):
            t = timed(lambda d=days: build_report(engine, NOW, timedelta(days=d)), repeat)
            print(f"  report, {days:2d} days             {t * 1000:8.0f} ms   {t / base:.2f}x")
        report = build_report(engine, NOW, timedelta(days=90))
        t0 = time.perf_counter()
        png = render_chart(report)
        first = time.perf_counter() - t0
        t = timed(lambda: render_chart(report), repeat)
        print(f"  chart, 90 days               {t * 1000:8.0f} ms   (first draw with import "
              f"{first * 1000:.0f} ms; {len(png) / 1024:.0f} KB)")  # fmt: skip
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--before", metavar="CHECKOUT", help="also time another checkout")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--url", help="a database this bench seeded and kept (one --db)")
    args = parser.parse_args()
    for kind in ("sqlite", "postgres") if args.db == "both" else (args.db,):
        bench(kind, args.runs, args.repeat, args.before, args.rounds, args.url)


if __name__ == "__main__":
    main()
