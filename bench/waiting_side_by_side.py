"""Side by side with DBOS: 1,000 runs waiting for an answer; idle CPU, and answer -> next step.

Each system runs in its own child process, on the same PostgreSQL (127.0.0.1:5432,
database `test`, a fresh schema each), one after the other:

- opsloop: `--waiting` runs (bench/_waiting_runs.py) wait at an approval gate; the child
  starts an Orchestrator as `serve` does (`recover=True`, the system clock) and, once
  it is ready, waits `--idle` seconds doing nothing. Then it answers `--gates` of them,
  one at a time: the latency is from calling `decide()` to the function of the step
  after the gate starting (it stamps `time.monotonic()`). Also run on a SQLite file.
- DBOS (`pip install dbos` into a separate venv; `--dbos-python`, default
  /tmp/dbos-venv/bin/python): as many workflows wait in `DBOS.recv()`; the child
  waits `--idle` seconds, then `DBOS.send()`s answers one at a time, timed to the
  start of the step after `recv`. DBOS wakes the waiting workflow by LISTEN/NOTIFY.
  Skipped, with a message, when that python has no `dbos`.

Idle CPU is the child's own CPU time (all threads) over the idle window, as a percent
of one core, and separately that of the PostgreSQL backends serving it (found by
`application_name`). The window should cover a sweep (every 30 s) and a heartbeat.

    .venv/bin/python bench/waiting_side_by_side.py [--waiting 1000] [--gates 200]
        [--idle 60] [--skip-sqlite] [--skip-dbos] [--dbos-python PATH] [--json PATH]
        [--base /path/to/other/checkout] [--rounds N]

`--base` measures another checkout too (the code before a change), `--rounds` repeats
every system that many times, in turn (a different one first each round), and prints
medians with the load average: the machine may be shared.

`OPSLOOP_BENCH_CODE=/path/to/checkout` measures another checkout of opsloop (its
processes run that code with this venv's packages).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = Path(os.environ.get("OPSLOOP_BENCH_CODE") or BENCH.parent)  # another checkout to measure
PG = "postgresql://postgres@127.0.0.1:5432/test"
SETTLE_S = 3.0  # after start: let start-up work (reminders due now, first loads) end


# -- measuring, shared by both children (stdlib and psycopg only) -------------------


def backend_cpu(app: str) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend whose application_name is `app`."""
    import psycopg

    with psycopg.connect(PG.replace("postgresql://", "postgres://"), autocommit=True) as conn:
        pids = [r[0] for r in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (app,))]  # fmt: skip
    tick = os.sysconf("SC_CLK_TCK")
    cpu = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        cpu[pid] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return cpu


def idle_cpu(app: str | None, seconds: float) -> dict[str, float]:
    """This process's and (on PostgreSQL) its backends' CPU over `seconds` of idleness."""
    before, pg_before = time.process_time(), backend_cpu(app) if app else {}
    time.sleep(seconds)
    used = time.process_time() - before
    pg_after = backend_cpu(app) if app else {}
    pg = sum(t - pg_before.get(pid, 0.0) for pid, t in pg_after.items())
    return {"idle_cpu_pct": used / seconds * 100, "idle_pg_cpu_pct": pg / seconds * 100}


def summary(latencies: list[float]) -> dict[str, float]:
    ms = sorted(x * 1000 for x in latencies)
    return {"p50_ms": statistics.median(ms), "p99_ms": ms[min(len(ms) - 1, int(len(ms) * 0.99))],
            "max_ms": ms[-1], "gates": len(ms)}  # fmt: skip


# -- opsloop's child ---------------------------------------------------------------


def child_ours(url: str, app: str | None, waiting: int, gates: int, idle: float) -> dict[str, Any]:
    sys.path[:0] = [str(ROOT), str(BENCH)]
    import sqlalchemy as sa
    from _waiting_runs import WORKFLOW, Finished

    from orchestrator.engine import Orchestrator
    from orchestrator.workflow.loader import parse_workflow
    from storage.engine import create_engine

    engine = create_engine(url)
    with engine.connect() as conn:
        gate_of = dict(conn.execute(sa.text(
            "SELECT run_id, id FROM interaction WHERE status = 'pending' ORDER BY run_id"
        )).all())  # fmt: skip
    front = Finished()
    orch = Orchestrator(engine, {"waiting": parse_workflow(WORKFLOW)}, front_end=front)
    began = time.monotonic()
    orch.start(recover=True, serving=True)
    result: dict[str, Any] = {"ready_s": time.monotonic() - began, "waiting": len(gate_of)}
    time.sleep(SETTLE_S)
    result.update(idle_cpu(app, idle))
    latencies = []
    for run_id in list(gate_of)[: gates + 2]:
        start = time.monotonic()
        orch.decide(gate_of[run_id], "U0001", "approve")
        with front.changed:
            front.changed.wait_for(lambda run_id=run_id: run_id in front.runs, timeout=30)
        after = next(s for s in front.runs[run_id].steps if s.step_id == "after")
        latencies.append(after.outputs["at"] - start)
    orch.close()
    engine.dispose()
    return {**result, **summary(latencies[2:])}  # the first two warm up


# -- DBOS's child (runs in DBOS's venv: no opsloop imports) -------------------------


def child_dbos(schema: str, app: str, waiting: int, gates: int, idle: float) -> dict[str, Any]:
    from dbos import DBOS

    parked, stamps, waiting_ids = threading.Semaphore(0), {}, []
    done = threading.Condition()

    @DBOS.step()
    def after() -> float:
        return time.monotonic()

    @DBOS.workflow()
    def gated() -> None:
        waiting_ids.append(DBOS.workflow_id)
        parked.release()
        DBOS.recv("answer", timeout_seconds=3 * 86400)
        at = after()
        with done:
            stamps[DBOS.workflow_id] = at
            done.notify_all()

    DBOS(config={"name": "bench-waiting", "dbos_system_schema": schema,
                 "system_database_url": PG,
                 # A waiting sync workflow holds a thread (the default pool has 6 here).
                 "max_executor_threads": waiting + 16,
                 "log_level": "WARNING"})  # fmt: skip
    DBOS.launch()
    ids = [DBOS.start_workflow(gated).workflow_id for _ in range(waiting)]
    deadline, parked_n = time.monotonic() + 180, 0
    while parked_n < len(ids) and parked.acquire(timeout=max(0.0, deadline - time.monotonic())):
        parked_n += 1  # seen here: past ~780 waiting sync workflows, no more started
    time.sleep(SETTLE_S)
    result: dict[str, Any] = {"waiting": parked_n, **idle_cpu(app, idle)}
    latencies = []
    for wf in list(waiting_ids)[: gates + 2]:  # only workflows that reached recv()
        start = time.monotonic()
        DBOS.send(wf, "approve", "answer")
        with done:
            done.wait_for(lambda wf=wf: wf in stamps, timeout=30)
        latencies.append(stamps[wf] - start)
    # Printed before DBOS.destroy(), which was seen to hang for minutes with hundreds of
    # workflows still waiting in recv(); the process then exits without it.
    print(json.dumps({**result, **summary(latencies[2:])}), flush=True)
    os._exit(0)


# -- the parent ----------------------------------------------------------------------


def run_child(python: str, *args: str, code: Path | None = None) -> dict[str, Any]:
    env = None if code is None else {**os.environ, "OPSLOOP_BENCH_CODE": str(code.resolve())}
    out = subprocess.run([python, __file__, "--child", *args], capture_output=True, text=True,
                         cwd=code or ROOT, timeout=900, env=env)  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"child {args[0]} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure_ours(kind: str, args: argparse.Namespace, code: Path | None = None) -> dict[str, Any]:
    sys.path[:0] = [str(ROOT), str(BENCH)]
    from _databases import database_url
    from _waiting_runs import populate

    with database_url(kind, "bench-side-") as url:
        populate(url, args.waiting, code=code)
        app = f"bench-ours-{uuid.uuid4().hex[:6]}"
        child_url = f"{url}&application_name={app}" if kind == "postgres" else url
        return run_child(sys.executable, "ours", child_url, app if kind == "postgres" else "",
                         str(args.waiting), str(args.gates), str(args.idle),
                         code=code)  # fmt: skip


def measure_dbos(args: argparse.Namespace) -> dict[str, Any] | None:
    python = args.dbos_python
    if not Path(python).exists() or subprocess.run([python, "-c", "import dbos"],
                                                   capture_output=True).returncode:  # fmt: skip
        print(
            f"DBOS skipped: {python} cannot import dbos (python -m venv /tmp/dbos-venv && "
            "/tmp/dbos-venv/bin/pip install dbos psycopg[binary]; or --dbos-python PATH)"
        )
        return None
    import sqlalchemy as sa

    # DBOS names its connections itself; no other DBOS process runs here.
    schema, app = f"bench_dbos_{uuid.uuid4().hex[:8]}", "dbos_transact"
    try:
        return run_child(python, "dbos", schema, app, str(args.waiting), str(args.gates),
                         str(args.idle))  # fmt: skip
    finally:
        admin = sa.create_engine(PG.replace("postgresql://", "postgresql+psycopg://"))
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        who, *rest = sys.argv[2:]
        if who == "ours":
            url, app, *numbers = rest
            got = child_ours(url, app or None, int(numbers[0]), int(numbers[1]), float(numbers[2]))
        else:
            schema, app, *numbers = rest
            got = child_dbos(schema, app, int(numbers[0]), int(numbers[1]), float(numbers[2]))
        print(json.dumps(got))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waiting", type=int, default=1000)
    parser.add_argument("--gates", type=int, default=200)
    parser.add_argument("--idle", type=float, default=60.0)
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--dbos-python", default="/tmp/dbos-venv/bin/python")
    parser.add_argument("--skip-dbos", action="store_true")
    parser.add_argument("--base", type=Path, help="another checkout, measured in each round too")
    parser.add_argument("--rounds", type=int, default=1, help="each system once per round")
    parser.add_argument("--json", type=Path)
    args, _ = parser.parse_known_args()
    rows: dict[str, list[dict[str, Any]]] = {}
    for n in range(args.rounds):
        systems = [("opsloop, PostgreSQL", lambda: measure_ours("postgres", args))]
        if args.base is not None:
            systems.append((f"opsloop {args.base.name}, PostgreSQL",
                            lambda: measure_ours("postgres", args, args.base)))  # fmt: skip
        if not args.skip_dbos:
            systems.append(("DBOS, PostgreSQL", lambda: measure_dbos(args)))
        if not args.skip_sqlite:
            systems.append(("opsloop, SQLite", lambda: measure_ours("sqlite", args)))
        for name, measure in systems[n % len(systems) :] + systems[: n % len(systems)]:
            got = measure()
            if got is None:
                continue
            got["load"] = os.getloadavg()[0]
            rows.setdefault(name, []).append(got)
            print(f"round {n + 1}: {name}: {got}", flush=True)
    print(f"{args.waiting} waiting; idle {args.idle:g} s; {args.gates} answers, one at a time; "
          f"median of {args.rounds} round(s), systems in turn")  # fmt: skip
    print(
        "| system | answer -> next step p50 ms | p99 ms | idle CPU % (process) | "
        "idle CPU % (its PostgreSQL backends) | load average |"
    )
    print("|---|---|---|---|---|---|")
    for name, runs in rows.items():
        med = {k: statistics.median(r[k] for r in runs) for k in
               ("p50_ms", "p99_ms", "idle_cpu_pct", "idle_pg_cpu_pct", "load")}  # fmt: skip
        print(
            f"| {name} | {med['p50_ms']:.1f} | {med['p99_ms']:.1f} | {med['idle_cpu_pct']:.2f} | "
            f"{med['idle_pg_cpu_pct']:.2f} | {med['load']:.1f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
