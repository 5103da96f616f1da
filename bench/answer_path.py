"""The SQL between an answer and the start of the step after the gate, counted and listed.

`--runs` runs wait at an approval gate (bench/_waiting_runs.py); an Orchestrator starts
as `serve` does and answers them one at a time. A SQLAlchemy event listener on the
engine records every statement (with BEGIN, COMMIT and ROLLBACK, each a round trip on
PostgreSQL too, unless the connection is in autocommit) from the `decide()` call to the
moment the step after the gate starts (it stamps `time.monotonic()`); statements still
in flight then (the front end's, say) are off the critical path and listed apart. Prints
the median count and the statements of one answer, in order, with the thread that sent each.

    .venv/bin/python bench/answer_path.py [--database postgres|sqlite] [--runs 20]

`OPSLOOP_BENCH_CODE=/path/to/checkout` measures another checkout of opsloop.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = Path(os.environ.get("OPSLOOP_BENCH_CODE") or BENCH.parent)
sys.path[:0] = [str(ROOT), str(BENCH)]

import sqlalchemy as sa  # noqa: E402
from _databases import database_url  # noqa: E402
from _waiting_runs import WORKFLOW, Finished, populate  # noqa: E402

from orchestrator.engine import Orchestrator  # noqa: E402
from orchestrator.workflow.loader import parse_workflow  # noqa: E402
from storage.engine import create_engine  # noqa: E402


def short(sql: str) -> str:
    """A statement on one line, its column lists elided."""
    text = re.sub(r"\s+", " ", sql).strip()
    text = re.sub(r"SELECT (.{40}).*? FROM", r"SELECT \1... FROM", text)
    text = re.sub(r"SET (.{40}).*? WHERE", r"SET \1... WHERE", text)
    return text[:150]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with database_url(args.database, "bench-answer-") as url:
        populate(url, args.runs)
        engine = create_engine(url)
        with engine.connect() as conn:
            gate_of = dict(conn.execute(sa.text(
                "SELECT run_id, id FROM interaction WHERE status = 'pending' ORDER BY run_id"
            )).all())  # fmt: skip
        log: list[tuple[float, str, str]] = []

        def record(what: str) -> None:
            log.append((time.monotonic(), threading.current_thread().name, what))

        sa.event.listen(engine, "before_cursor_execute",
                        lambda conn, cur, sql, *rest: record(short(sql)))  # fmt: skip

        # Without a transaction (autocommit) the driver sends no BEGIN, COMMIT or ROLLBACK.
        def bracket(what: str) -> Any:
            def listener(conn: sa.Connection) -> None:
                if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
                    record(what)

            return listener

        for event in ("begin", "commit", "rollback"):
            sa.event.listen(engine, event, bracket(event.upper()))
        front = Finished()
        orch = Orchestrator(engine, {"waiting": parse_workflow(WORKFLOW)}, front_end=front)
        orch.start(recover=True, serving=True)
        time.sleep(2.0)
        counts, listing, latencies = [], [], []
        cpu = time.process_time()  # this process's CPU, all threads
        for run_id, iid in gate_of.items():
            log.clear()
            start = time.monotonic()
            orch.decide(iid, "U0001", "approve")
            with front.changed:
                front.changed.wait_for(lambda run_id=run_id: run_id in front.runs, timeout=30)
            at = next(s for s in front.runs[run_id].steps if s.step_id == "after").outputs["at"]
            before = [e for e in log if e[0] <= at]
            counts.append(len(before))
            latencies.append((at - start) * 1000)
            listing = [(round((t - start) * 1000, 2), who, what, t <= at) for t, who, what in log]
        cpu = (time.process_time() - cpu) / len(gate_of) * 1000
        orch.close()
        engine.dispose()
    print(f"{args.database}: {len(counts)} answers; statements before the next step starts "
          f"(BEGIN/COMMIT included): median {statistics.median(counts)}, min {min(counts)}, "
          f"max {max(counts)}; latency median {statistics.median(latencies):.1f} ms; "
          f"CPU per answer (the whole run, every thread) {cpu:.1f} ms")  # fmt: skip
    print("the last answer's statements (ms from decide(), thread, statement):")
    for ms, who, what, critical in listing:
        print(f"  {'' if critical else '(after) '}{ms:7.2f}  {who[:22]:22}  {what}")


if __name__ == "__main__":
    main()


__all__: list[Any] = []
