"""Benchmark schedules: 1,000 schedules due in the same minute, on one replica and on two.

For each database (a SQLite file; a fresh PostgreSQL schema on 127.0.0.1:5432), one
workflow carries 1,000 schedules all due at 03:00 UTC. The replicas are Orchestrators
in this process sharing one FakeClock (each with its own database engine, as separate
processes would have); the clock jumps from 02:59:59 to 03:00:00 and the bench takes,
for every run, the real time from the jump until the front end hears `run_started`
(the fire's transaction committed and the run was handed to its engine). Reported:
p50 / p99 / max of that delay and the ratio 2 replicas / 1 replica. Target: all 1,000
started within 5 s of the due time on one replica.

Each fire is one transaction (claim the due time, insert the run), so the time is that
of 1,000 small write transactions plus starting 1,000 runs; with two replicas they split
the fires (the loser of a race skips it).

    .venv/bin/python bench/schedules.py [--skip-postgres] [--count 1000] [--json PATH]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime  # noqa: E402

import sqlalchemy as sa  # noqa: E402
from _databases import database_url  # noqa: E402

from orchestrator.clock import FakeClock  # noqa: E402
from orchestrator.engine import Orchestrator  # noqa: E402
from orchestrator.protocol import RunView, SilentFrontEnd  # noqa: E402
from orchestrator.workflow.loader import parse_workflow  # noqa: E402
from storage.engine import create_engine  # noqa: E402
from storage.schema import setup  # noqa: E402

DUE = datetime(2030, 1, 8, 3, 0, tzinfo=UTC)


def workflow(count: int) -> str:
    entries = "".join(f'  - {{id: s{n}, cron: "0 3 * * *"}}\n' for n in range(count))
    return f'name: nightly\nschedules:\n{entries}steps:\n  - id: work\n    shell: ["true"]\n'


class Stamps(SilentFrontEnd):
    """Real time at which each run was handed to an engine."""

    def __init__(self, count: int) -> None:
        self.at: dict[str, float] = {}
        self.count = count
        self.lock = threading.Lock()
        self.all = threading.Event()

    def run_started(self, run: RunView) -> None:
        with self.lock:
            self.at.setdefault(run.id, time.monotonic())
            if len(self.at) >= self.count:
                self.all.set()


def measure(url: str, count: int, replicas: int) -> dict[str, float]:
    flow = {"nightly": parse_workflow(workflow(count))}
    clock = FakeClock(DUE.replace(minute=0, hour=2, second=59))
    stamps = Stamps(count)
    engines = [create_engine(url) for _ in range(replicas)]
    setup(engines[0])
    orchs = [Orchestrator(e, flow, front_end=stamps, max_workers=8, clock=clock)
             for e in engines]  # fmt: skip
    try:
        for orch in orchs:
            orch.start(recover=True)  # syncs the schedules; nothing is due yet
        jump = time.monotonic()
        clock.set(DUE)
        committed = _all_committed(engines[0], count) - jump
        if not stamps.all.wait(300):
            raise SystemExit(f"only {len(stamps.at)} of {count} runs started in 300 s")
        delays = sorted(t - jump for t in stamps.at.values())
    finally:
        for orch in orchs:
            orch.close()
        for engine in engines:
            engine.dispose()
    return {
        "committed_s": committed,
        "p50_s": statistics.median(delays),
        "p99_s": delays[min(len(delays) - 1, int(len(delays) * 0.99))],
        "max_s": delays[-1],
    }


def _all_committed(engine: sa.Engine, count: int) -> float:
    """When every fire's run row was committed (polled every 20 ms: the fire is the
    run's start in the database; run_started follows once the pool takes it)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if conn.execute(sa.text("SELECT count(*) FROM workflow_run")).scalar() >= count:
                return time.monotonic()
        time.sleep(0.02)
    raise SystemExit(f"fewer than {count} runs committed in 300 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--json", help="write the results here")
    args, _ = parser.parse_known_args()
    kinds = ["sqlite"] if args.skip_postgres else ["sqlite", "postgres"]
    results = {}
    print(f"{args.count} schedules due at once: real time from the due instant to run_started")
    print(f"{'database':<10} {'replicas':>8} {'committed s':>12} {'p50 s':>8} {'p99 s':>8} "
          f"{'max s':>8}")  # fmt: skip
    for kind in kinds:
        for replicas in (1, 2):
            with database_url(kind) as url:
                r = measure(url, args.count, replicas)
            results[f"{kind}-{replicas}"] = r
            print(f"{kind:<10} {replicas:>8} {r['committed_s']:>12.2f} {r['p50_s']:>8.2f} "
                  f"{r['p99_s']:>8.2f} "
                  f"{r['max_s']:>8.2f}")  # fmt: skip
        one, two = results[f"{kind}-1"], results[f"{kind}-2"]
        print(f"{kind:<10} ratio 2/1: p50 {two['p50_s'] / one['p50_s']:.2f}x, "
              f"max {two['max_s'] / one['max_s']:.2f}x")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
