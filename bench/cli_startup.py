"""Benchmark `opsloop runs` against a lean script doing the same query with Python and
SQLAlchemy alone (issue 16: 0.87 s against 0.15 s when read commands imported LangGraph
and migrated the database).

Both run as fresh processes, alternating, `--repeat` times (default 15) against the same
SQLite file holding `--runs` runs (default 200) made by the real engine; the lean script
selects the newest 20 runs with their open-gate counts, as `opsloop runs` does, and prints
them. Reported: median and p90 wall time of each, and the ratio of the medians.
Target: `opsloop runs` <= 2x the lean script.

`--before CHECKOUT` also times `runs`, `report` and `schedules` of both checkouts the
same way (`python -S`, the checkout first on the path), in the same rounds.

    .venv/bin/python bench/cli_startup.py [--repeat 15] [--runs 200] [--before /work/main]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LEAN = """
import sys
import sqlalchemy as sa
engine = sa.create_engine(sys.argv[1])
query = sa.text(
    "SELECT r.id, r.workflow, r.status, r.started_by, r.created_at, r.finished_at,"
    " (SELECT count(*) FROM interaction i WHERE i.run_id = r.id AND i.status = 'pending')"
    " FROM workflow_run r ORDER BY r.created_at DESC, r.id LIMIT 20")
with engine.connect() as conn:
    rows = conn.execute(query).all()
for row in rows:
    print("  ".join(str(v) for v in row))
"""


def populate(url: str, runs: int) -> None:
    sys.path.insert(0, str(ROOT))
    from orchestrator.engine import Orchestrator
    from orchestrator.workflow.loader import parse_workflow
    from storage.engine import create_engine
    from storage.schema import setup

    engine = create_engine(url)
    setup(engine)
    flow = parse_workflow("name: noop\nsteps:\n  - id: a\n    shell: ['true']\n")
    orch = Orchestrator(engine, {"noop": flow})
    orch.start(recover=False)
    try:
        for _ in range(runs):
            orch.wait(orch.start_run("noop", {}, started_by="U0BENCH"), 60)
    finally:
        orch.close()
        engine.dispose()


def copy_at_head_of(db: Path, checkout: str, site: str) -> str:
    """A copy of the database at `checkout`'s newest schema revision (downgraded with this
    checkout's migrations), so an older release does not refuse it as newer."""
    from alembic import command

    from storage.engine import create_engine, write_transaction
    from storage.schema import alembic_config

    code = (f"import sys; sys.path[:0] = [{checkout!r}, {site!r}]; from storage.schema "
            "import head_revision_fast; print(head_revision_fast())")  # fmt: skip
    head = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip
    copy = db.with_name(f"before-{db.name}")
    shutil.copyfile(db, copy)
    engine = create_engine(f"sqlite:///{copy}")
    with write_transaction(engine) as conn:
        command.downgrade(alembic_config(conn), head)
    engine.dispose()
    return f"sqlite:///{copy}"


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                          cwd=ROOT, text=True)  # fmt: skip
    if done.returncode:
        raise SystemExit(f"{' '.join(argv[:3])} failed: {done.stderr}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument(
        "--before",
        metavar="CHECKOUT",
        help="also time runs, report, schedules of another checkout (e.g. /work/main)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        populate(url, args.runs)
        env = {**os.environ, "DATABASE_URL": url}
        opsloop = [str(Path(sys.executable).with_name("opsloop")), "runs"]
        lean = [sys.executable, "-c", LEAN, url]
        timed(lean, env), timed(opsloop, env)  # warm the page cache
        times: dict[str, list[float]] = {"lean": [], "opsloop": []}
        # Another checkout's code cannot win over this one's editable install on sys.path,
        # so both are run without `site`, on [checkout, site-packages]: the same footing.
        checkouts = {"before": str(args.before), "after": str(ROOT)} if args.before else {}
        site = sysconfig.get_paths()["purelib"]
        commands = ("runs", "report", "schedules") if args.before else ()
        envs = {"after": env}
        if args.before:
            before_url = copy_at_head_of(Path(tmp) / "bench.db", str(args.before), site)
            envs["before"] = {**env, "DATABASE_URL": before_url}
        for command in commands:
            for name in checkouts:
                times[f"{command} {name}"] = []
        for _ in range(args.repeat):
            times["lean"].append(timed(lean, env))
            times["opsloop"].append(timed(opsloop, env))
            for command in commands:
                for name, checkout in checkouts.items():
                    code = (f"import sys; sys.path[:0] = [{checkout!r}, {site!r}]; "
                            f"from bot.cli import main; sys.exit(main([{command!r}]))")  # fmt: skip
                    times[f"{command} {name}"].append(
                        timed([sys.executable, "-S", "-c", code], envs[name])
                    )
    for name, got in times.items():
        got.sort()
        p90 = got[int(0.9 * (len(got) - 1))]
        median = statistics.median(got)
        print(f"  {name:16} median {median * 1000:6.0f} ms  p90 {p90 * 1000:6.0f} ms")
    ratio = statistics.median(times["opsloop"]) / statistics.median(times["lean"])
    verdict = "met" if ratio <= 2 else "NOT met"
    print(f"opsloop runs / lean script: {ratio:.2f}x (target <= 2x: {verdict})")


if __name__ == "__main__":
    main()
